"""Resolves the place an ad's location text refers to, down to the 2025 CBS municipality.

``locate(text)`` reads either a short place field ("Den Haag Laak", "Bergen NH", "1012 AB") or a
longer free text ("Nieuw in Zwolle! Prive ontvangst vlakbij station ...") and returns a
``Location``: the CBS code ``GMxxxx`` of the 2025 municipality, its name and province, a point,
the country, how the place was found and a confidence.

What it knows, all from the shipped gazetteer (``lovitura_crawl.gazetteer``) plus the hand-made
tables below: the 2,501 BAG woonplaatsen, the 2025 municipalities, municipalities merged away
since 2015 (Haren, Heerhugowaard, Weesp ...), spelling variants (CBS list), railway stations,
4-digit postcodes, districts of the big cities, common aliases ("A'dam", "Den Bosch", "a/d"),
Frisian and Dutch names of Frisian towns, and Belgian, German, Romanian and Moldovan places.

Decisions a reader of the results needs to know:

* A name that several municipalities share and that nothing in the text qualifies ("Bergen",
  "Velp", "Nes") gets no guessed municipality: ``locate`` returns a ``Location`` with
  ``code=None``, ``method="ambiguous"``, confidence 0.2 and the candidate codes in
  ``candidates``; its lat/lon is the mean of the candidates, not a place to put on a map.
* When the register itself disambiguates (the unqualified BAG name "Hengelo" is the one in
  Overijssel, "Hengelo (Gld)" the other), the unqualified name wins. When one of the places is
  the namesake of a municipality ("Hoorn", "Buren", "Beek", and "Beuningen" over the hamlet in
  Losser) or of a former one ("Haren"), that municipality wins with confidence 0.75.
* A Dutch place wins over a foreign place of the same name ("Hasselt", "Mechelen"), with
  confidence 0.6 when the foreign one is a city, unless the text names the country
  ("Hasselt, België").
* Belgian and German places return ``code=None`` and their country. Cities of 50,000 or more
  and the Dutch exonyms ("Aken", "Luik") are found anywhere; smaller places, and Romanian and
  Moldovan ones, only as the whole place field or with their country.
* Country and province names alone ("Nederland", "Zeeland", "regio Twente") are not places:
  ``None``. The woonplaatsen Nederland (Steenwijkerland) and Zeeland (Maashorst) are only found
  with a qualifier ("Zeeland NB").
* In free text, names that are also ordinary words ("Best", "Echt", "Heel", "Made", "Leiden",
  "Huizen") count only after a place cue ("in Best", "regio Echt") and, in mixed-case text, when
  capitalised. A place field that is nothing but the name counts as its own cue.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import cache, lru_cache
from statistics import fmean
from typing import Any

from itemadapter import ItemAdapter

from lovitura_crawl import gazetteer
from lovitura_crawl.anomalies import Anomaly, note_anomaly
from lovitura_crawl.db.store import is_listing_only

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    """The place a location text refers to (see the module docstring for the conventions)."""

    code: str | None  # CBS code of the 2025 municipality, None when foreign or ambiguous
    name: str  # the place as found: woonplaats, district, station, municipality or foreign name
    province: str | None
    lat: float
    lon: float
    country: str  # "NL", "BE", "DE", "RO" or "MD"
    method: str  # see METHODS
    confidence: float  # 0..1
    candidates: tuple[str, ...] = ()  # for method "ambiguous": the possible municipality codes

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "province": self.province,
            "lat": self.lat,
            "lon": self.lon,
            "country": self.country,
            "method": self.method,
            "confidence": self.confidence,
            "candidates": list(self.candidates),
        }


METHODS: tuple[str, ...] = (
    "woonplaats",  # a BAG woonplaats name
    "municipality",  # a 2025 municipality name
    "former-municipality",  # a municipality merged away since 2015
    "variant",  # a spelling variant from the CBS list
    "alias",  # "A'dam", "Den Bosch", "The Hague"
    "frisian",  # the Frisian or Dutch name where the register has the other
    "district",  # a district of a big city
    "station",  # "station X"
    "postcode",  # PC4 or PC6
    "qualified",  # a shared name with a province or municipality qualifier
    "regio",  # "regio X", "omgeving X", "X e.o."
    "foreign",  # a Belgian, German, Romanian or Moldovan place
    "ambiguous",  # a shared name with nothing to choose by
)

# --- hand-made tables -------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


def _phrases(text: str) -> frozenset[str]:
    return frozenset(" ".join(phrase.split()) for phrase in text.split(";") if phrase.strip())


_PROVINCE_QUALIFIERS: dict[str, str] = {
    "gr": "Groningen",
    "gn": "Groningen",
    "grn": "Groningen",
    "groningen": "Groningen",
    "fr": "Fryslân",
    "frl": "Fryslân",
    "fryslan": "Fryslân",
    "friesland": "Fryslân",
    "dr": "Drenthe",
    "drenthe": "Drenthe",
    "ov": "Overijssel",
    "o": "Overijssel",
    "ovl": "Overijssel",
    "overijssel": "Overijssel",
    "fl": "Flevoland",
    "flevoland": "Flevoland",
    "gld": "Gelderland",
    "gl": "Gelderland",
    "gelderland": "Gelderland",
    "u": "Utrecht",
    "ut": "Utrecht",
    "utr": "Utrecht",
    "utrecht": "Utrecht",
    "nh": "Noord-Holland",
    "n h": "Noord-Holland",
    "noord holland": "Noord-Holland",
    "zh": "Zuid-Holland",
    "z h": "Zuid-Holland",
    "zuid holland": "Zuid-Holland",
    "z": "Zeeland",
    "zl": "Zeeland",
    "zld": "Zeeland",
    "zeeland": "Zeeland",
    "nb": "Noord-Brabant",
    "n b": "Noord-Brabant",
    "brabant": "Noord-Brabant",
    "noord brabant": "Noord-Brabant",
    "l": "Limburg",
    "lb": "Limburg",
    "li": "Limburg",
    "lim": "Limburg",
    "limburg": "Limburg",
}

_COUNTRY_QUALIFIERS: dict[str, str] = {
    "belgie": "BE",
    "belgium": "BE",
    "belgique": "BE",
    "belgien": "BE",
    "be": "BE",
    "duitsland": "DE",
    "germany": "DE",
    "deutschland": "DE",
    "de": "DE",
    "roemenie": "RO",
    "romania": "RO",
    "ro": "RO",
    "moldavie": "MD",
    "moldova": "MD",
    "md": "MD",
    "nederland": "NL",
    "netherlands": "NL",
    "holland": "NL",
    "nl": "NL",
}

# Names of countries, provinces and regions: never a place on their own.
_REGION_WORDS: frozenset[str] = frozenset(
    {
        "nederland",
        "zeeland",
        "holland",
        "twente",
        "achterhoek",
        "veluwe",
        "betuwe",
        "randstad",
        "gooi",
        "het gooi",
        "limburg",
        "brabant",
        "friesland",
        "drenthe",
        "flevoland",
        "overijssel",
        "gelderland",
        "noord holland",
        "zuid holland",
        "noord brabant",
    }
)

# Place names that are also ordinary words or given names in the languages the ads are written
# in; in free text they need a place cue. Chosen by hand from the woonplaatsen and municipality
# names whose lower-case form is frequent in Dutch, English, German or French text.
_COMMON_WORDS: frozenset[str] = _words(
    """
    een est leur well echt heel rien made hem best anderen zetten america born ie dieren warten
    grave winkel hall waarde leek enter noorden neer huizen oranje hoek halle lies hoeven spui
    broek stein handel basse buren echten monster boer horst gauw loon helden mill bern opende
    sloten velden marken vries beek giessen horn axel rijen lent baard schijf wateren klimmen
    hee heide vuren putten erica groet veen amen dorst doorn sluis balk waal philippine wier
    hank linden blije ruinen spier linde winde herten dijken sumar rekken tinte nes ens thorn
    graft meeuwen leunen halfweg zegge baars wouw erm riel wetering nieuwland wedde hemmen ingen
    ell tuk overslag annen beets gees lith spijk reeve nuis nutter asch ane westhoek haren goes
    leiden houten kampen assen gouda edam weert dalen hoorn delft beers bath ee acht heer eext
    elp lage boven beneden midden laren bergen valkenburg velp oosterend noordeinde westeinde
    """
) | _phrases(
    """
    t waar; t harde; t veld; t zand; t loo; t goy; t haantje; t zandt; oude meer; ten post;
    de heen; de punt; de wijk; de hoef; de kiel; de steeg; de krim; de waal; de hoeve; de lier;
    de moer; de bult; de groeve; de klomp; de rips; de pol; de wilgen; de woude; de mortel;
    de rijp; de koog; de hoek; de weere; de kwakel; de heurne; den burg; den hout; den ham;
    den horn; den hoorn; den velde; den bommel; den oever; witte paarden; maria hoop;
    sint maarten; sint kruis; oude willem; lage vuursche
    """
)

# Names ads use for places instead of the register's name, keyed on the BAG woonplaats name.
_ALIASES: dict[str, tuple[str, ...]] = {
    "Amsterdam": ("Adam", "A-dam", "Mokum"),
    "Rotterdam": ("Rdam", "R-dam"),
    "'s-Gravenhage": ("Den Haag", "The Hague", "sGravenhage"),
    "'s-Hertogenbosch": ("Den Bosch", "Hertogenbosch", "sHertogenbosch"),
    "Capelle aan den IJssel": ("Capelle",),
    "Dordrecht": ("Dordt",),
}

# Municipalities merged away before 2015, which the CBS variants list no longer names, with
# the CBS code of their 2025 heir.
_FORMER: dict[str, str] = {
    "Skarsterlân": "GM1940",
    "Lemsterland": "GM1940",
    "Gaasterlân-Sleat": "GM1940",
    "Wymbritseradiel": "GM1900",
    "Wûnseradiel": "GM1900",
    "Nijefurd": "GM1900",
    "Zeevang": "GM0385",
    "Zevenhuizen-Moerkapelle": "GM1892",
}

# Frisian names where the register is Dutch, and Dutch names where the register is Frisian,
# keyed on the BAG woonplaats name.
_FRISIAN: dict[str, tuple[str, ...]] = {
    "Leeuwarden": ("Ljouwert",),
    "Sneek": ("Snits",),
    "Heerenveen": ("It Hearrenfean", "Hearrenfean"),
    "Joure": ("De Jouwer", "Jouwer"),
    "Lemmer": ("De Lemmer",),
    "Bolsward": ("Boalsert",),
    "Harlingen": ("Harns",),
    "Franeker": ("Frjentsjer",),
    "Workum": ("Warkum",),
    "Hindeloopen": ("Hylpen",),
    "Stavoren": ("Starum",),
    "IJlst": ("Drylts",),
    "Sloten": ("Sleat",),
    "Wolvega": ("Wolvegea",),
    "Buitenpost": ("Bûtenpost",),
    "Gorredijk": ("De Gordyk", "Gordyk"),
    "Surhuisterveen": ("Surhústerfean",),
    "Beetsterzwaag": ("Beetstersweach",),
    "Oldeberkoop": ("Aldeberkeap",),
    "Appelscha": ("Appelskea",),
    "Witmarsum": ("Wytmarsum",),
    "Burgum": ("Bergum",),
    "Grou": ("Grouw",),
    "Damwâld": ("Damwoude",),
    "Feanwâlden": ("Veenwouden",),
    "De Westereen": ("Zwaagwesteinde",),
    "Holwert": ("Holwerd",),
    "Berltsum": ("Berlikum",),
    "Hurdegaryp": ("Hardegarijp",),
    "Garyp": ("Garijp",),
    "Earnewâld": ("Eernewoude",),
    "Wergea": ("Warga",),
    "Jirnsum": ("Irnsum",),
    "Raerd": ("Rauwerd",),
    "Gytsjerk": ("Giekerk",),
    "Oentsjerk": ("Oenkerk",),
    "Tytsjerk": ("Tietjerk",),
    "Ryptsjerk": ("Rijperkerk",),
    "Aldtsjerk": ("Oudkerk",),
    "Suwâld": ("Suawoude",),
    "Eastermar": ("Oostermeer",),
    "Noardburgum": ("Noordbergum",),
    "Wâlterswâld": ("Wouterswoude",),
    "Broeksterwâld": ("Broeksterwoude",),
    "Rinsumageast": ("Rinsumageest",),
    "Driezum": ("Driesum",),
    "Eanjum": ("Anjum",),
    "Peazens": ("Paesens",),
    "Ferwert": ("Ferwerd",),
    "Wytgaard": ("Wijtgaard",),
    "St.-Annaparochie": ("Sint-Anne", "Sint Anne"),
    "St.-Jacobiparochie": ("Sint-Jabik", "Sint Jabik"),
    "Oosterwolde (Ooststellingwerf)": ("Easterwâlde",),
    "Menaam": ("Menaldum",),
    "Dronryp": ("Dronrijp",),
    "Tzum": ("Tsjom",),
}

# Districts of the big cities ("; "-separated), keyed on the BAG woonplaats name of the city. A
# district written alone ("Scheveningen") is found when its name is no woonplaats and belongs to
# one city only; the compass districts ("Noord", "Zuidoost") only after the city ("Rotterdam-Zuid").
_DISTRICTS: dict[str, str] = {
    "Amsterdam": (
        "Centrum; Noord; Oost; West; Zuid; Nieuw-West; Zuidoost; Westpoort; Bijlmer; "
        "Bijlmermeer; De Pijp; Jordaan; De Jordaan; Osdorp; Slotervaart; Slotermeer; "
        "Geuzenveld; Buitenveldert; IJburg; Watergraafsmeer; Bos en Lommer; Oud-West; "
        "Oud-Zuid; De Baarsjes; Zeeburg; Gaasperdam; De Wallen; Wallen; Rivierenbuurt; "
        "Indische Buurt; Dapperbuurt; Westerpark; Holendrecht; Reigersbos; Ganzenhoef; "
        "Kraaiennest; Venserpolder; Zuidas; Sloterdijk; Nieuwendam; Overtoomse Veld; "
        "Oud-Noord; Centraal"
    ),
    "Rotterdam": (
        "Centrum; Noord; Zuid; West; Oost; Delfshaven; Kralingen; Crooswijk; "
        "Kralingen-Crooswijk; Feijenoord; Charlois; IJsselmonde; Prins Alexander; Alexander; "
        "Ommoord; Zevenkamp; Nesselande; Hillegersberg; Schiebroek; "
        "Hillegersberg-Schiebroek; Overschie; Blijdorp; Spangen; Katendrecht; Kop van Zuid; "
        "Lombardijen; Beverwaard; Carnisse; Tarwewijk; Pendrecht; Zuidwijk; Hillesluis; "
        "Bloemhof; Afrikaanderwijk; Oude Westen; Stadsdriehoek; Noordereiland; Bergpolder; "
        "Liskwartier; Oud-Charlois; Bospolder; Tussendijken; Vreewijk; Groot-IJsselmonde; "
        "Alexanderpolder; Hoogvliet; Pernis"
    ),
    "'s-Gravenhage": (
        "Centrum; Laak; Escamp; Loosduinen; Scheveningen; Segbroek; Haagse Hout; "
        "Leidschenveen; Ypenburg; Leidschenveen-Ypenburg; Transvaal; Schilderswijk; "
        "Moerwijk; Bezuidenhout; Statenkwartier; Duinoord; Mariahoeve; Zuiderpark; Kijkduin; "
        "Duindorp; Wateringse Veld; Morgenstond; Bouwlust; Vrederust; Waldeck; "
        "Regentessekwartier; Zeeheldenkwartier; Archipelbuurt; Benoordenhout; Spoorwijk; "
        "Houtwijk; Bohemen; Laakkwartier; Binckhorst; Kraayenstein; Zuidwest; Noord; Zuid; "
        "West; Oost"
    ),
    "Utrecht": (
        "Centrum; Noord; Oost; West; Zuid; Noordoost; Noordwest; Zuidwest; Overvecht; "
        "Kanaleneiland; Leidsche Rijn; Vleuten-De Meern; Lombok; Zuilen; Hoograven; "
        "Lunetten; Tuindorp; Wittevrouwen; Oog in Al; Ondiep; Transwijk; Rivierenwijk; "
        "Terwijde; De Uithof; Uithof; Dichterswijk; Tolsteeg; Oudwijk; Voordorp"
    ),
    "Eindhoven": (
        "Centrum; Woensel; Woensel-Noord; Woensel-Zuid; Strijp; Strijp-S; Stratum; Gestel; "
        "Tongelre; Meerhoven; Noord; Zuid; Oost; West"
    ),
    "Groningen": (
        "Centrum; Paddepoel; Vinkhuizen; Selwerd; Beijum; Lewenborg; Oosterpoort; Helpman; "
        "Corpus den Hoorn; De Hoogte; Korrewegwijk; Hoogkerk; Zernike; Oosterparkwijk; "
        "Meerstad; Noord; Zuid; Oost; West"
    ),
    "Tilburg": ("Centrum; Noord; Oud-Noord; West; Oud-Zuid; Zuid; Oost; Reeshof"),
    "Almere": ("Stad; Buiten; Haven; Poort; Hout; Pampus; Centrum"),
    "Breda": (
        "Centrum; Noord; Zuid; Oost; West; Haagse Beemden; Princenhage; Ginneken; "
        "Hoge Vucht; Tuinzigt; Brabantpark"
    ),
    "Nijmegen": (
        "Centrum; Oost; Noord; Zuid; West; Dukenburg; Lindenholt; Hatert; Bottendaal; "
        "Neerbosch-Oost; Brakkenstein; Hengstdal"
    ),
    "Arnhem": (
        "Centrum; Noord; Zuid; Oost; West; Presikhaaf; Malburgen; Rijkerswoerd; Klarendal; "
        "Geitenkamp; Spijkerkwartier; Schuytgraaf; Elderveld; Kronenburg"
    ),
    "Haarlem": ("Centrum; Noord; Oost; West; Zuid; Schalkwijk"),
    "Enschede": (
        "Centrum; Noord; Zuid; Oost; West; Deppenbroek; Twekkelerveld; Velve-Lindenhof; "
        "Wesselerbrink; Stroinkslanden; Roombeek; Pathmos"
    ),
    "Apeldoorn": ("Centrum; Noord; Zuid; Oost; West; De Maten; Osseveld"),
    "Zwolle": ("Centrum; Noord; Zuid; Stadshagen; Holtenbroek; Assendorp; Diezerpoort; Aalanden"),
    "Amersfoort": ("Centrum; Noord; Vathorst; Kattenbroek; Schothorst; Liendert"),
    "Leiden": ("Centrum; Noord; Zuid; Stevenshof; Merenwijk"),
    "Dordrecht": ("Centrum; Sterrenburg; Crabbehof; Stadspolders; Krispijn; Wielwijk"),
    "Zoetermeer": ("Centrum; Rokkeveen; Seghwaert; Meerzicht; Oosterheem; Buytenwegh"),
    "Maastricht": (
        "Centrum; Wyck; Randwyck; Malberg; Caberg; Pottenberg; Wittevrouwenveld; Daalhof; "
        "Mariaberg; Noord; Zuid; Oost; West"
    ),
    "'s-Hertogenbosch": (
        "Centrum; De Muntel; Graafsewijk; Maaspoort; Boschveld; Kruiskamp; Noord; Zuid; Oost; West"
    ),
    "Heerlen": ("Centrum; Heerlerheide; Meezenbroek; Noord"),
}

# Dutch and other common names of foreign places that may stand in free text.
_FOREIGN_EXONYMS: frozenset[str] = _words(
    """
    antwerpen brussel bruxelles brussels aken keulen luik gent brugge leuven mechelen
    kortrijk oostende doornik namen bergen kleef emmerik dusseldorf munster koln
    monchengladbach aachen cologne liege boekarest bucharest bucuresti kisjinau chisinau
    """
)

# Words before a place that say "this is where": "Nieuw in Zwolle", "regio Breda".
_CUES_BEFORE: frozenset[str] = _words(
    """
    in te regio omgeving omg gemeente gem vlakbij nabij bij dichtbij rond rondom near
    around centrum city stad locatie location plaats woonplaats area region zona oras
    station prive ontvangst incall visit at bezoek omstreken
    """
)
_REGIO_CUES: frozenset[str] = _words(
    """
    regio omgeving omg rond rondom around area region zona
    """
)
# Words before "van" that make "van X" a place ("in de buurt van Zwolle", "10 min van Ede").
_CUES_BEFORE_VAN: frozenset[str] = _words(
    """
    buurt omgeving centrum min minuten km kilometer regio richting
    """
)
# Words after a place that say "this is where": "Zwolle centrum", "Breda e.o.".
_CUES_AFTER: frozenset[str] = _words(
    """
    centrum eo omgeving area city region regio omstreken stad cs hbf hauptbahnhof zentrum
    centre center
    """
)
# Words before a place that say it is elsewhere in time: "volgende week in Breda".
_ELSEWHERE_CUES: frozenset[str] = _words(
    """
    volgende binnenkort next naar morgen tomorrow later straks
    """
)
# Words before a place that say it is where someone comes from, not where the ad is.
_ORIGIN_CUES: frozenset[str] = _words(
    """
    uit from din afkomstig origin
    """
)
# Words a place field may hold besides the place.
_FILLER: frozenset[str] = _words(
    """
    en and of or the nl prive ontvangst escort thuis hotel incall outcall ook also alleen
    only ns nabij vlakbij bij het de dichtbij in te near gemeente
    gem postcode pc regio omgeving centrum eo station
    """
)
# "Nieuw Amsterdam" in an ad is "new in Amsterdam"; only "Nieuw-Amsterdam" is the place.
_NEW_PREFIXES: frozenset[str] = frozenset({"nieuw", "nieuwe", "new"})
_STANDALONE_NEVER: frozenset[str] = _words(
    """
    centrum noord zuid oost west noordoost noordwest zuidoost zuidwest nieuw west oud west
    oud zuid oud noord centraal stad buiten haven poort hout pampus alexander zuilen ondiep
    tuindorp transvaal bohemen waldeck westpoort zuiderpark
    """
)

_CONFIDENCE: dict[str, float] = {
    "woonplaats": 0.95,
    "municipality": 0.95,
    "district": 0.95,
    "alias": 0.9,
    "frisian": 0.9,
    "station": 0.9,
    "postcode": 0.9,
    "qualified": 0.9,
    "variant": 0.85,
    "former-municipality": 0.85,
    "foreign": 0.85,
    "regio": 0.7,
    "ambiguous": 0.2,
}
_NAMESAKE_CONFIDENCE = 0.75  # a shared name given to the municipality of that name
_FOREIGN_NAMESAKE_CONFIDENCE = 0.6  # a Dutch name shared with a big foreign place
_UNCUED_FACTOR = 0.85  # a name in free text without a place cue
_ELSEWHERE_FACTOR = 0.8  # "volgende week in X"
_BIG_FOREIGN = 50_000  # inhabitants: a foreign place this big may stand in free text

# Most specific first: the kind that names the place when several kinds agree on a code.
_SPECIFICITY: tuple[str, ...] = (
    "postcode",
    "district",
    "station",
    "woonplaats",
    "frisian",
    "alias",
    "variant",
    "municipality",
    "former-municipality",
    "foreign",
)

# --- text to tokens ---------------------------------------------------------------------------

_APOSTROPHES = "'’‘`´"
# Abbreviations inside place names: "Hoek v Holland", "Nw-Vennep".
_ABBREVIATIONS: dict[str, str] = {"v": "van", "nw": "nieuw"}
_PRE_SUBSTITUTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"\b[aA] ?/ ?[dD]\b\.?"), " aan de "),
    (re.compile(r"\b[aA]\.[dD]\.?(?=\s)"), " aan de "),
    (re.compile(r"\b[sS][tT]\. *-? *(?=\w)"), "Sint "),
    (re.compile(r"\bSt\b *(?=[A-Z])"), "Sint "),
    (re.compile(r"\b[eE]\. ?[oO]\.?"), " eo "),
    (re.compile(r"\b[gG][eE][mM]\. *"), "gemeente "),
    (re.compile(r"\b[oO][mM][gG]\. *"), "omgeving "),
    (re.compile(r"\b([NZnz])\. ?([HBhb])\.?"), r"\1\2"),
)
_TOKEN = re.compile(r"[^\W_]+(?:['’‘`´][^\W_]+)*|(-)|([^\w\s'’‘`´])")
_SOFT_BREAKS = frozenset(",()[]{}/:-–—&+")  # may stand between a place and its qualifier
_NONE, _SOFT, _HARD = 0, 1, 2
_PC6_LETTERS = frozenset("abcdeghjklmnprstvwxz")
_POSTCODE_CUES = frozenset({"postcode", "pc", "postcodegebied", "zip"})
# Words before four digits that make them a postcode unless they could be a year: "in 5044".
_PC4_PLACE_CUES = frozenset({"in", "te", "town", "regio", "omgeving", "bij", "nabij", "vlakbij"})


@dataclass
class _Tokens:
    """The words of a text: folded form, original span, capitalisation, the break before."""

    norms: list[str] = field(default_factory=list)
    raws: list[str] = field(default_factory=list)
    breaks: list[int] = field(default_factory=list)  # _NONE, _SOFT or _HARD before the word
    hyphens: list[bool] = field(default_factory=list)  # joined to the word before by "-"

    def __len__(self) -> int:
        return len(self.norms)


@lru_cache(maxsize=200_000)
def _fold(word: str) -> str:
    decomposed = unicodedata.normalize("NFKD", word)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c) and c not in _APOSTROPHES)
    folded = kept.casefold()
    return _ABBREVIATIONS.get(folded, folded)


def _prepare(text: str) -> str:
    for pattern, replacement in _PRE_SUBSTITUTIONS:
        text = pattern.sub(replacement, text)
    return text


def _tokenize(text: str) -> _Tokens:
    tokens = _Tokens()
    pending = _NONE
    hyphen = False
    last_end = 0
    for match in _TOKEN.finditer(text):
        gap = text[last_end : match.start()]
        if "\n" in gap:
            pending = _HARD
        last_end = match.end()
        if match.group(1):
            # "Nieuw-Amsterdam", "Hei- en Boeicop": a hyphen right after a word joins; a spaced
            # one ("Walheim - Hahn", "Maastricht - Limburg") neither joins nor breaks.
            hyphen = bool(tokens.norms) and not gap and not pending
            continue
        if match.group(2):
            pending = max(pending, _SOFT if match.group(2) in _SOFT_BREAKS else _HARD)
            hyphen = False
            continue
        word = match.group(0)
        norm = _fold(word)
        if norm in ("de", "den") and tokens.norms and tokens.norms[-1] == "aan" and not pending:
            tokens.norms[-1] = "ad"
            tokens.raws[-1] = f"{tokens.raws[-1]} {word}"
            continue
        tokens.norms.append(norm)
        tokens.raws.append(word)
        tokens.breaks.append(pending)
        tokens.hyphens.append(hyphen and not pending)
        pending = _NONE
        hyphen = False
    return tokens


def _segments(name: str) -> list[str]:
    """The break-free runs of a name, folded: "Bergen (NH)" -> ["bergen", "nh"]."""
    tokens = _tokenize(_prepare(name))
    runs: list[list[str]] = []
    for norm, brk in zip(tokens.norms, tokens.breaks, strict=True):
        if brk or not runs:
            runs.append([])
        runs[-1].append(norm)
    return [" ".join(run) for run in runs]


def _key(name: str) -> str:
    """The index key of a name: all its words folded, punctuation dropped."""
    return " ".join(_segments(name))


# --- the index --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Target:
    """One thing a name can mean."""

    kind: str  # a METHODS entry
    rank: int  # 0: the name as the source writes it; 1: a name with its qualifier stripped
    code: str | None
    name: str
    province: str | None
    lat: float
    lon: float
    country: str = "NL"
    population: int = 0
    municipal: bool = False  # the name of a (former) municipality
    reach: int = 0  # 0 anywhere; 1 free text only after a cue; 2 place field or with country


@dataclass(frozen=True)
class _Index:
    names: dict[str, tuple[_Target, ...]]
    first_words: frozenset[str]
    longest: int  # words in the longest name
    needs_hyphen: frozenset[str]  # "nieuw amsterdam": only as "Nieuw-Amsterdam" in free text


# The qualifiers the register itself puts after duplicate names: "Bergen L", "Elst Ut".
_BAG_QUALIFIER = re.compile(r"\s+(?:L|AC|NB|Gld|GLD|NH|Ut|GN|Gn|gem\. S)$")
_PAREN_QUALIFIER = re.compile(r"\s*\([^)]*\)$")


class _Builder:
    def __init__(self) -> None:
        self.names: dict[str, list[_Target]] = defaultdict(list)
        self.municipalities = gazetteer.municipality_by_code()

    def add(self, name: str, target: _Target) -> None:
        key = _key(name)
        if key and target not in self.names[key]:
            self.names[key].append(target)

    def add_name(self, name: str, target: _Target) -> None:
        """Add a name as written, and without the qualifier it may carry."""
        if " / " in name:  # "Hoornsterzwaag / Hoarnstersweach": Dutch and Frisian
            for part in name.split(" / "):
                self.add_name(part, target)
            return
        self.add(name, target)
        base = _BAG_QUALIFIER.sub("", _PAREN_QUALIFIER.sub("", name))
        if base != name:
            self.add(base, replace(target, rank=1))
        municipality = self.municipalities.get(target.code or "")
        if municipality and name.endswith(" " + municipality.name):
            # "Hoogvliet Rotterdam", "Alteveer gem Hoogeveen"; not "Nieuwe Pekela"
            base = re.sub(r"\s+gem\.?$", "", name.removesuffix(" " + municipality.name))
            if " " not in base and _fold(base) not in _NEW_PREFIXES | {"klein", "oud", "oude"}:
                self.add(base, replace(target, rank=1))

    def nl_target(self, kind: str, code: str, name: str, lat: float, lon: float) -> _Target:
        municipality = self.municipalities[code]
        return _Target(
            kind,
            0,
            code,
            name,
            municipality.province,
            lat,
            lon,
            municipal=kind in ("municipality", "former-municipality"),
        )


@cache
def _index() -> _Index:
    builder = _Builder()
    woonplaatsen = _add_woonplaatsen(builder)
    _add_municipalities(builder)
    _add_variants(builder)
    _add_aliases(builder, woonplaatsen)
    _add_districts(builder, woonplaatsen)
    _add_stations(builder)
    _add_foreign(builder)
    names = {key: tuple(targets) for key, targets in builder.names.items()}
    return _Index(
        names=names,
        first_words=frozenset(key.split()[0] for key in names),
        longest=max(len(key.split()) for key in names),
        needs_hyphen=_needs_hyphen(names),
    )


def _add_woonplaatsen(builder: _Builder) -> dict[str, gazetteer.Woonplaats]:
    """Index every woonplaats; return the unique ones by name, for the hand-made tables."""
    by_name: dict[str, list[gazetteer.Woonplaats]] = defaultdict(list)
    for place in gazetteer.woonplaatsen():
        target = builder.nl_target("woonplaats", place.gm_code, place.name, place.lat, place.lon)
        builder.add_name(place.name, target)
        if place.alias:
            builder.add(place.alias, replace(target, kind="alias"))
        by_name[place.name].append(place)
    return {name: places[0] for name, places in by_name.items() if len(places) == 1}


def _add_municipalities(builder: _Builder) -> None:
    for municipality in gazetteer.municipalities():
        target = builder.nl_target(
            "municipality",
            municipality.code,
            municipality.name,
            municipality.lat,
            municipality.lon,
        )
        builder.add_name(municipality.name, target)


def _add_variants(builder: _Builder) -> None:
    """Spelling variants, and the municipalities merged away since 2015, from the CBS list."""
    successors = _successors()
    by_name = _woonplaatsen_by_key()
    former: dict[str, str] = {}
    for variant in gazetteer.spelling_variants():
        if variant.gm_code not in builder.municipalities:
            former[variant.municipality] = variant.gm_code
        if any(c in variant.variant for c in "(),.") or variant.variant in _STANDALONE_NEVER:
            continue  # "bergen (nh.)": the qualifier parser reads these; "zuidoost" is no place
        if not variant.woonplaats:
            _add_municipality_name(builder, variant.variant, variant.municipality, variant.gm_code)
            continue
        for place in _variant_places(variant, by_name, successors):
            builder.add(
                variant.variant,
                builder.nl_target("variant", place.gm_code, place.name, place.lat, place.lon),
            )
    for name, code in sorted(former.items()):
        _add_municipality_name(builder, name, name, code)
    for name, code in _FORMER.items():
        _add_municipality_name(builder, name, name, code)


def _add_municipality_name(builder: _Builder, key: str, name: str, code: str) -> None:
    """A name of a 2015 (or older) municipality, meaning its 2025 heir(s)."""
    heirs = _successors().get(code, (code,))
    for heir in heirs:
        municipality = builder.municipalities[heir]
        current = heir == code
        target = builder.nl_target(
            "municipality" if current else "former-municipality",
            heir,
            municipality.name if current else name,
            municipality.lat,
            municipality.lon,
        )
        if len(heirs) > 1:  # split up: a woonplaats of the same name says more
            target = replace(target, rank=1, municipal=False)
        builder.add(key, target)


def _variant_places(
    variant: gazetteer.SpellingVariant,
    by_name: dict[str, list[gazetteer.Woonplaats]],
    successors: dict[str, tuple[str, ...]],
) -> list[gazetteer.Woonplaats]:
    """The 2025 woonplaatsen a 2015 woonplaats variant names (several when it is ambiguous)."""
    places = by_name.get(_key(variant.woonplaats), [])
    if len(places) > 1:
        heirs = successors.get(variant.gm_code, ())
        places = [p for p in places if p.gm_code in heirs] or places
    return places


@cache
def _woonplaatsen_by_key() -> dict[str, list[gazetteer.Woonplaats]]:
    by_key: dict[str, list[gazetteer.Woonplaats]] = defaultdict(list)
    for place in gazetteer.woonplaatsen():
        by_key[_key(place.name)].append(place)
        base = _BAG_QUALIFIER.sub("", place.name)
        if base != place.name:
            by_key[_key(base)].append(place)
    return dict(by_key)


@cache
def _successors() -> dict[str, tuple[str, ...]]:
    """The 2025 municipality (or, for one split up, municipalities) of each 2015 code.

    A 2015 municipality is followed by the 2025 municipality that holds most of its
    woonplaatsen; one split with no clear heir (under half) keeps every heir holding a fifth.
    """
    current = gazetteer.municipality_by_code()
    by_key = _woonplaatsen_by_key()
    heirs: dict[str, Counter[str]] = defaultdict(Counter)
    for variant in gazetteer.spelling_variants():
        if variant.gm_code in current or not variant.woonplaats:
            continue
        places = by_key.get(_key(variant.woonplaats), [])
        if len({p.gm_code for p in places}) == 1:
            heirs[variant.gm_code][places[0].gm_code] += 1
    successors: dict[str, tuple[str, ...]] = {code: (code,) for code in current}
    for old, counts in heirs.items():
        total = sum(counts.values())
        (top, top_count), *_ = counts.most_common(1)
        if top_count * 2 >= total:
            successors[old] = (top,)
        else:
            successors[old] = tuple(sorted(c for c, n in counts.items() if n * 5 >= total))
    return successors


def _add_aliases(builder: _Builder, woonplaatsen: dict[str, gazetteer.Woonplaats]) -> None:
    for table, kind in ((_ALIASES, "alias"), (_FRISIAN, "frisian")):
        for register_name, names in table.items():
            place = _table_place(woonplaatsen, register_name)
            target = builder.nl_target(kind, place.gm_code, place.name, place.lat, place.lon)
            for name in names:
                builder.add(name, target)


def _table_place(woonplaatsen: dict[str, gazetteer.Woonplaats], name: str) -> gazetteer.Woonplaats:
    """The woonplaats a table names: "Sneek", or "Oosterwolde (Ooststellingwerf)" for a shared
    name."""
    shared = re.fullmatch(r"(.+) \((.+)\)", name)
    if shared:
        for place in gazetteer.woonplaatsen():
            if (place.name, place.municipality) == shared.groups():
                return place
    try:
        return woonplaatsen[name]
    except KeyError:
        raise LookupError(
            f"pipelines.geo names woonplaats {name!r}, which is not a unique woonplaats in "
            "nl_woonplaatsen_2025.csv; correct the table in pipelines/geo.py"
        ) from None


def _add_districts(builder: _Builder, woonplaatsen: dict[str, gazetteer.Woonplaats]) -> None:
    standalone: dict[str, list[_Target]] = defaultdict(list)
    for city_name, districts in _DISTRICTS.items():
        city = _table_place(woonplaatsen, city_name)
        city_forms = [city.name, *_ALIASES.get(city.name, ())]
        if city.alias:
            city_forms.append(city.alias)
        shown = city.alias or city.name
        for district in (d.strip() for d in districts.split(";")):
            target = builder.nl_target(
                "district", city.gm_code, f"{shown} {district}", city.lat, city.lon
            )
            for form in city_forms:
                builder.add(f"{form} {district}", target)
            standalone[_key(district)].append(target)
    for key, targets in standalone.items():
        if key in _STANDALONE_NEVER or key in _COMMON_WORDS or key in builder.names:
            continue
        if len({t.code for t in targets}) == 1:
            builder.names[key].append(targets[0])


def _add_stations(builder: _Builder) -> None:
    for station in gazetteer.stations():
        target = builder.nl_target(
            "station", station.gm_code, station.name, station.lat, station.lon
        )
        names = [station.name]
        if station.name.endswith(" Centraal"):
            city = station.name.removesuffix(" Centraal")
            names += [f"{city} CS", f"{city} Centraal Station", f"Centraal Station {city}"]
        for name in names:
            builder.add(f"station {name}", target)
            builder.add(name, replace(target, rank=1))


def _add_foreign(builder: _Builder) -> None:
    for place in gazetteer.border_places():
        big = place.population >= _BIG_FOREIGN
        _add_foreign_place(builder, place, reach=1 if big else 2, alternates=True)
    for place in gazetteer.origin_places():
        _add_foreign_place(builder, place, reach=2, alternates=place.population >= 100_000)


def _add_foreign_place(
    builder: _Builder, place: gazetteer.ForeignPlace, *, reach: int, alternates: bool
) -> None:
    target = _Target(
        "foreign",
        0,
        None,
        place.name,
        None,
        place.lat,
        place.lon,
        country=place.country,
        population=place.population,
        reach=1 if _key(place.name) in _FOREIGN_EXONYMS else reach,
    )
    builder.add(place.name, target)
    if not alternates:
        return
    for name in place.alternate_names:
        if _usable_alternate(name):
            key = _key(name)
            builder.add(name, replace(target, rank=1, reach=1 if key in _FOREIGN_EXONYMS else 2))


def _usable_alternate(name: str) -> bool:
    """A Latin-script name as a person writes it, not a code or a transliteration."""
    return (
        len(name) >= 3
        and name[0].isupper()
        and not name.isupper()
        and all(ord(c) < 0x250 for c in name)
        and not any(c in name for c in "()/0123456789")
    )


def _needs_hyphen(names: dict[str, tuple[_Target, ...]]) -> frozenset[str]:
    """Names like "nieuw amsterdam" whose second part is another place's name."""
    found = set()
    for key, targets in names.items():
        words = key.split()
        if len(words) < 2 or words[0] not in _NEW_PREFIXES:
            continue
        rest = names.get(" ".join(words[1:]), ())
        if {t.code for t in rest if t.country == "NL"} - {t.code for t in targets}:
            found.add(key)
    return frozenset(found)


# --- choosing among the meanings of a name ----------------------------------------------------


@dataclass(frozen=True)
class _Qualifier:
    province: str | None = None
    municipality: str | None = None  # CBS code
    country: str | None = None


@dataclass(frozen=True)
class _Decision:
    target: _Target | None  # None when the name stays ambiguous
    candidates: tuple[_Target, ...]
    method: str
    confidence: float


def _decide(
    targets: Iterable[_Target], qualifier: _Qualifier | None, municipal_first: bool
) -> _Decision | None:
    pool = list(targets)
    qualified = False
    if qualifier is not None:
        narrowed = _apply_qualifier(pool, qualifier)
        if narrowed:
            qualified = len({(t.country, t.code) for t in pool}) > 1
            pool = narrowed
    if municipal_first:
        pool = [t for t in pool if t.municipal] or pool
    dutch = [t for t in pool if t.country == "NL"]
    if dutch:
        decision = _decide_dutch(dutch, qualified)
        big_namesake = any(t.country != "NL" and t.population >= _BIG_FOREIGN for t in pool)
        if decision.target is not None and big_namesake:
            confidence = min(decision.confidence, _FOREIGN_NAMESAKE_CONFIDENCE)
            return _Decision(decision.target, decision.candidates, decision.method, confidence)
        return decision
    if not pool:
        return None
    best = min(pool, key=lambda t: (t.rank, -t.population))
    confidence = _CONFIDENCE["qualified" if qualified else "foreign"]
    return _Decision(best, (best,), "foreign", confidence)


def _apply_qualifier(pool: list[_Target], qualifier: _Qualifier) -> list[_Target]:
    if qualifier.country:
        return [t for t in pool if t.country == qualifier.country]
    if qualifier.province:
        return [t for t in pool if t.province == qualifier.province]
    return [t for t in pool if t.code == qualifier.municipality]


def _decide_dutch(dutch: list[_Target], qualified: bool) -> _Decision:
    best_rank = min(t.rank for t in dutch)
    best = [t for t in dutch if t.rank == best_rank]
    codes = {t.code for t in best}
    if len(codes) == 1:
        target = _most_specific(best)
        method = "qualified" if qualified else target.kind
        return _Decision(target, (target,), method, _CONFIDENCE[method])
    namesakes = {t.code for t in dutch if t.municipal}
    if len(namesakes) == 1 and namesakes <= codes:
        target = _most_specific([t for t in best if t.code in namesakes])
        return _Decision(target, tuple(best), target.kind, _NAMESAKE_CONFIDENCE)
    one_per_code = tuple({t.code: t for t in sorted(best, key=_specificity)}.values())
    return _Decision(None, one_per_code, "ambiguous", _CONFIDENCE["ambiguous"])


def _specificity(target: _Target) -> int:
    return -_SPECIFICITY.index(target.kind)


def _most_specific(targets: list[_Target]) -> _Target:
    return min(targets, key=lambda t: _SPECIFICITY.index(t.kind))


# --- finding the place in a text --------------------------------------------------------------


@dataclass(frozen=True)
class _Mention:
    start: int  # first word of the name
    end: int  # the word after the name, its qualifier and any cue after it
    name_end: int  # the word after the name
    decision: _Decision
    score: float
    factor: float  # multiplies the confidence
    regio: bool


@dataclass(frozen=True)
class _Cues:
    place: bool = False  # "in X", "regio X", "X centrum"
    near: bool = False  # "5 min van X", "in de buurt van X": close to X, maybe not in it
    regio: bool = False  # "regio X", "omgeving X", "X e.o."
    municipal: bool = False  # "gemeente X"
    surname: bool = False  # "van X" with nothing that makes it a place
    elsewhere: bool = False  # "volgende week in X"
    origin: bool = False  # "uit X"


class _Reader:
    """Reads one text: finds the names, their qualifiers and cues, and judges each mention."""

    def __init__(self, tokens: _Tokens) -> None:
        self.tokens = tokens
        self.index = _index()
        self.size = len(tokens)
        self.run_ends = self._run_ends()
        self.segment_starts = self._segment_starts()
        self.case_tells = self._case_tells()

    def _run_ends(self) -> list[int]:
        ends = [self.size] * self.size
        for i in range(self.size - 2, -1, -1):
            ends[i] = i + 1 if self.tokens.breaks[i + 1] else ends[i + 1]
        return ends

    def _segment_starts(self) -> list[int]:
        starts = [0] * self.size
        for i in range(1, self.size):
            starts[i] = i if self.tokens.breaks[i] else starts[i - 1]
        return starts

    def _case_tells(self) -> bool:
        """Whether capitals mean something here: mixed case, and not Every Word Capitalised."""
        words = [raw for raw in self.tokens.raws if raw[0].isalpha()]
        capitalised = sum(1 for raw in words if raw[0].isupper())
        lower = len(words) - capitalised
        return lower > 0 and capitalised > 0 and capitalised < lower

    def mentions(self) -> Iterator[_Mention]:
        i = 0
        while i < self.size:
            mention = self._postcode_at(i) or self._name_at(i)
            if mention is None:
                i += 1
                continue
            yield mention
            i = max(mention.end, i + 1)

    # -- names --

    def _name_at(self, start: int) -> _Mention | None:
        norms = self.tokens.norms
        if norms[start] not in self.index.first_words:
            return None
        longest = min(self.index.longest, self.run_ends[start] - start)
        for length in range(longest, 0, -1):
            key = " ".join(norms[start : start + length])
            if key not in self.index.names:
                continue
            if key in self.index.needs_hyphen and not self._hyphenated(start, length):
                continue
            return self._judge(start, start + length, key)
        return None

    def _hyphenated(self, start: int, length: int) -> bool:
        return self.tokens.hyphens[start + 1] or self._segment_exact(start, start + length)

    def _judge(self, start: int, name_end: int, key: str) -> _Mention | None:
        targets = self.index.names[key]
        qualifier, qualifier_end = self._qualifier_after(name_end, targets, key)
        before = self._cues_before(start)
        after, end = self._cues_after(qualifier_end)
        exact = self._segment_exact(start, end)
        named_cue = before.place or after.place or qualifier is not None
        cued = exact or named_cue
        country_given = qualifier is not None and qualifier.country is not None
        capitalised = self.tokens.raws[start][0].isupper()
        field_like = exact and self._field_like(start, end)
        allowed = [
            t
            for t in targets
            if (
                t.reach == 0
                or field_like
                or country_given
                or (t.reach == 1 and (cued or capitalised))
            )
            and not (before.origin and t.country != "NL")
        ]
        if not allowed or (key in _REGION_WORDS and qualifier is None):
            return None
        lower = self.case_tells and not any(
            raw[0].isupper() for raw in self.tokens.raws[start:name_end]
        )
        if key in _COMMON_WORDS and not self._common_word_is_place(
            start, end, named_cue, lower, before, allowed
        ):
            return None
        allowed = self._by_hyphenation(allowed, start, name_end)
        decision = _decide(allowed, qualifier, before.municipal)
        if decision is None:
            return None
        regio = before.regio or after.regio
        score = self._score(decision, exact, cued, lower, before, key)
        factor = (1.0 if cued else _UNCUED_FACTOR) * (_ELSEWHERE_FACTOR if before.elsewhere else 1)
        return _Mention(start, end, name_end, decision, score, factor, regio)

    def _common_word_is_place(
        self,
        start: int,
        end: int,
        named_cue: bool,
        lower: bool,
        before: _Cues,
        targets: list[_Target],
    ) -> bool:
        """Whether a name that is also a word ("Best", "Heel") is meant as the place here."""
        if lower:
            return False
        provinces = {t.province for t in targets}
        outside = self.tokens.norms[:start] + self.tokens.norms[end:]
        if all(
            word in _CUES_BEFORE
            or word in _CUES_AFTER
            or (len(word) > 1 and _PROVINCE_QUALIFIERS.get(word) in provinces)
            for word in outside
        ):
            return True  # the whole text is the name, maybe with its province: a place field
        return named_cue and not before.surname

    def _by_hyphenation(self, targets: list[_Target], start: int, end: int) -> list[_Target]:
        """Tell "Kapel-Avezaath" (Buren) from "Kapel Avezaath" (Tiel) by the hyphen."""
        names = {t.name for t in targets if t.rank == 0 and t.kind == "woonplaats"}
        if len({name.replace("-", " ") for name in names}) == len(names):
            return targets
        hyphenated = any(self.tokens.hyphens[start + 1 : end])
        return [t for t in targets if t.rank > 0 or ("-" in t.name) == hyphenated]

    def _score(
        self, decision: _Decision, exact: bool, cued: bool, lower: bool, before: _Cues, key: str
    ) -> float:
        score = 1.0 + 0.1 * key.count(" ")
        score += 2.0 if exact else 0.3 if before.near else 0.6 if cued else 0.0
        if self.case_tells:
            score += -0.3 if lower else 0.3
        if before.elsewhere:
            score -= 0.4
        if before.surname:
            score -= 0.3
        if decision.target is None:
            score -= 1.0
        elif decision.target.country != "NL":
            score -= 0.2
        elif decision.target.kind in ("station", "district"):
            score += 0.4
        return score

    def _qualifier_after(
        self, position: int, targets: tuple[_Target, ...], key: str
    ) -> tuple[_Qualifier | None, int]:
        """A province, municipality or country after a shared name: "Bergen NH", "Essen (BE)"."""
        if position >= self.size or self.tokens.breaks[position] == _HARD:
            return None, position
        codes = {t.code for t in targets if t.country == "NL"}
        if self.tokens.norms[position] == "gemeente":
            found = self._municipality_at(position + 1, codes)
            if found:
                return _Qualifier(municipality=found[0]), found[1]
        if len(codes) > 1 or key in _REGION_WORDS:
            province = self._province_at(position, targets)
            if province:
                return _Qualifier(province=province[0]), province[1]
            found = self._municipality_at(position, codes)
            if found and self.tokens.breaks[position] == _SOFT:  # "Beek (Montferland)"
                return _Qualifier(municipality=found[0]), found[1]
        countries = {t.country for t in targets}
        country = _COUNTRY_QUALIFIERS.get(self.tokens.norms[position])
        written_out = len(self.tokens.norms[position]) > 2 or self.tokens.raws[position].isupper()
        if country in countries and written_out and (len(countries) > 1 or country != "NL"):
            return _Qualifier(country=country), position + 1
        return None, position

    def _province_at(self, position: int, targets: tuple[_Target, ...]) -> tuple[str, int] | None:
        """A province qualifier ("NH", "N-H", "Gelderland") one of the targets lies in."""
        for length in (2, 1):
            if position + length > self.size or not self._in_run(position, length):
                continue
            key = " ".join(self.tokens.norms[position : position + length])
            province = _PROVINCE_QUALIFIERS.get(key)
            if province and any(t.province == province for t in targets):
                return province, position + length
        return None

    def _in_run(self, position: int, length: int) -> bool:
        return all(not self.tokens.breaks[p] for p in range(position + 1, position + length))

    def _municipality_at(self, position: int, codes: set[str | None]) -> tuple[str, int] | None:
        """A municipality name starting at ``position`` that is one of ``codes``."""
        if position >= self.size:
            return None
        longest = min(self.index.longest, self.run_ends[position] - position)
        for length in range(longest, 0, -1):
            key = " ".join(self.tokens.norms[position : position + length])
            found = {t.code for t in self.index.names.get(key, ()) if t.municipal}
            if len(found) == 1 and (code := next(iter(found))) in codes and code is not None:
                return code, position + length
        return None

    def _cues_before(self, start: int) -> _Cues:
        tokens = self.tokens
        if start == 0 or tokens.breaks[start] == _HARD:
            return _Cues()
        previous = tokens.norms[start - 1]
        second = tokens.norms[start - 2] if start >= 2 and not tokens.breaks[start - 1] else ""
        by_van = previous == "van" and second in _CUES_BEFORE_VAN
        place = previous in _CUES_BEFORE or previous in _POSTCODE_CUES or by_van
        first = start
        while first > max(0, start - 6) and not tokens.breaks[first]:
            first -= 1
        return _Cues(
            place=place,
            near=by_van,
            regio=previous in _REGIO_CUES or (by_van and second in ("omgeving", "buurt", "regio")),
            municipal=previous == "gemeente",
            surname=previous == "van" and not by_van,
            elsewhere=any(n in _ELSEWHERE_CUES for n in tokens.norms[first:start]),
            origin=previous in _ORIGIN_CUES,
        )

    def _cues_after(self, position: int) -> tuple[_Cues, int]:
        tokens = self.tokens
        if position >= self.size or tokens.breaks[position] == _HARD:
            return _Cues(), position
        word = tokens.norms[position]
        if word in _CUES_AFTER:
            return _Cues(place=True, regio=word in _REGIO_AFTER), position + 1
        following = tokens.norms[position + 1] if position + 1 < self.size else ""
        if word == "en" and following in ("omgeving", "omstreken"):
            return _Cues(place=True, regio=True), position + 2
        return _Cues(), position

    def _field_like(self, start: int, end: int) -> bool:
        """Whether the whole text is the name, besides cue and filler words: a place field."""
        return all(_is_filler(word) for word in self.tokens.norms[:start] + self.tokens.norms[end:])

    def _segment_exact(self, start: int, end: int) -> bool:
        """Whether the name is all its segment says, besides cue and filler words."""
        first = self.segment_starts[start]
        last = max(self.run_ends[end - 1] if end > start else end, end)
        others = self.tokens.norms[first:start] + self.tokens.norms[end:last]
        return all(_is_filler(word) for word in others)

    # -- postcodes --

    def _postcode_at(self, start: int) -> _Mention | None:
        tokens = self.tokens
        match = _POSTCODE_TOKEN.fullmatch(tokens.norms[start])
        if match is None:
            return None
        postcode = _postcodes().get(match.group(1))
        if postcode is None:
            return None
        letters, raw_letters, end = match.group(2), tokens.raws[start][4:], start + 1
        following = tokens.raws[end].casefold() if end < self.size else ""
        if letters is None and _LETTERS.fullmatch(following) and not tokens.breaks[end]:
            # the raw word: "NW" is postcode letters, not "nieuw"
            letters, raw_letters, end = following, tokens.raws[end], end + 1
        if letters is not None and not self._pc6_letters(
            letters, raw_letters, self._segment_exact(start, end)
        ):
            letters, end = None, start + 1
        exact = self._segment_exact(start, end)
        previous = tokens.norms[start - 1] if start > 0 and tokens.breaks[start] != _HARD else ""
        cued = previous in _POSTCODE_CUES or (
            previous in _PC4_PLACE_CUES and not 1900 <= int(postcode.pc4) <= 2099
        )
        if letters is None and not (cued or self._field_like(start, end)):
            return None  # four digits alone in a text are a price, a year, a phone number
        name = f"{postcode.pc4} {letters.upper()}" if letters else postcode.pc4
        target = _Target(
            "postcode", 0, postcode.gm_code, name, postcode.province, postcode.lat, postcode.lon
        )
        confidence = 0.95 if letters else _CONFIDENCE["postcode"]
        decision = _Decision(target, (target,), "postcode", confidence)
        score = 2.0 + (2.0 if exact else 0.6)
        return _Mention(start, end, end, decision, score, 1.0, False)

    def _pc6_letters(self, letters: str, raw: str, exact: bool) -> bool:
        """Whether two letters after four digits are a postcode's: "1012 AB", not "1500 en"."""
        if not set(letters) <= _PC6_LETTERS or letters in ("sa", "sd", "ss"):
            return False
        if raw.isupper() and (self.case_tells or exact):
            return True
        return not self.case_tells and letters not in _WORDS_LIKE_PC6


_REGIO_AFTER = frozenset({"eo", "omgeving", "omstreken", "area", "region", "regio"})
_POSTCODE_TOKEN = re.compile(r"([1-9][0-9]{3})([a-z]{2})?")
_LETTERS = re.compile(r"[a-z]{2}")
# Two-letter words that could pass for postcode letters: "1500 en 2000".
_WORDS_LIKE_PC6 = frozenset({"en", "de", "te", "at", "me", "we", "he", "ze", "as", "am", "an"})


def _is_filler(word: str) -> bool:
    return (
        word in _FILLER
        or word in _CUES_BEFORE
        or word in _CUES_AFTER
        or word in _COUNTRY_QUALIFIERS
        or (word in _PROVINCE_QUALIFIERS and len(word) > 1)
    )


@cache
def _postcodes() -> dict[str, gazetteer.Postcode]:
    return {p.pc4: p for p in gazetteer.postcodes()}


# --- the public function ----------------------------------------------------------------------


def locate(text: str) -> Location | None:
    """The place ``text`` refers to, or None when it names none (see the module docstring)."""
    if not text or not text.strip():
        return None
    tokens = _tokenize(_prepare(text))
    if not tokens:
        return None
    mentions = list(_Reader(tokens).mentions())
    if not mentions:
        return None
    agreement = Counter(m.decision.target.code for m in mentions if m.decision.target)
    best = max(
        mentions,
        key=lambda m: (m.score + 0.3 * (agreement[_code(m)] - 1 if _code(m) else 0), -m.start),
    )
    return _location(best, tokens)


def _code(mention: _Mention) -> str | None:
    return mention.decision.target.code if mention.decision.target else None


def _location(mention: _Mention, tokens: _Tokens) -> Location:
    decision = mention.decision
    target = decision.target
    if target is None:
        candidates = decision.candidates
        provinces = {t.province for t in candidates}
        return Location(
            code=None,
            name=" ".join(tokens.raws[mention.start : mention.name_end]),
            province=provinces.pop() if len(provinces) == 1 else None,
            lat=round(fmean(t.lat for t in candidates), 5),
            lon=round(fmean(t.lon for t in candidates), 5),
            country="NL",
            method="ambiguous",
            confidence=decision.confidence,
            candidates=tuple(sorted(t.code for t in candidates if t.code)),
        )
    method = decision.method
    confidence = decision.confidence * mention.factor
    if mention.regio and target.country == "NL":
        method = "regio"
        confidence = min(confidence, _CONFIDENCE["regio"])
    return Location(
        code=target.code,
        name=target.name,
        province=target.province,
        lat=target.lat,
        lon=target.lon,
        country=target.country,
        method=method,
        confidence=round(confidence, 3),
    )


def locate_ad(place: str, title: str = "", text: str = "") -> Location | None:
    """The place of an ad: its place field, else its title, else its body text.

    A place field that names nothing, or only an ambiguous name, gives way to a title or text
    that resolves; the ambiguous result is kept when nothing better is found.
    """
    fallback: Location | None = None
    for source in (place, title, text):
        location = locate(source)
        if location is not None and location.method != "ambiguous":
            return location
        fallback = fallback or location
    return fallback


# --- the Scrapy item pipeline -----------------------------------------------------------------


class GeoPipeline:
    """Sets ``item["location"]`` (a ``Location.as_dict()`` or None) from the place field, falling
    back to the title and text, and counts the outcome in the crawler stats under
    ``lovitura/place/found``, ``none``, ``ambiguous`` and ``foreign``. A place field that names
    nothing known is kept as a ``place/unresolved-place`` anomaly, to grow the gazetteer from.
    """

    def __init__(self, crawler: Any = None) -> None:
        self.crawler = crawler
        _index()  # built at start-up, not while the first item waits

    @classmethod
    def from_crawler(cls, crawler: Any) -> GeoPipeline:
        return cls(crawler)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        adapter = ItemAdapter(item)
        if is_listing_only(adapter):
            return item  # seen on its listing only: no content to read, nothing to count
        place = str(adapter.get("place") or "")
        location = locate_ad(place, str(adapter.get("title") or ""), str(adapter.get("text") or ""))
        adapter["location"] = location.as_dict() if location is not None else None
        outcome = _outcome(location)
        self._count(outcome)
        if location is None and place.strip():
            anomaly = Anomaly(
                "place",
                "unresolved-place",
                url=adapter.get("url"),
                site=adapter.get("site"),
                site_ad_id=adapter.get("site_ad_id"),
            )
            note_anomaly(self.crawler, anomaly)
        logger.debug("place of %s: %s", adapter.get("url"), outcome)
        return item

    def _count(self, outcome: str) -> None:
        stats = getattr(self.crawler, "stats", None)
        if stats is not None:
            stats.inc_value(f"lovitura/place/{outcome}")


def _outcome(location: Location | None) -> str:
    if location is None:
        return "none"
    if location.method == "ambiguous":
        return "ambiguous"
    return "found" if location.country == "NL" else "foreign"
