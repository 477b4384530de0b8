"""Ad-field extraction: what an ad claims about the person, her prices and her movements.

``extract_fields`` reads an ad's title, body text and the site's own nickname, age and posting
date fields, and returns an ``AdFields``: nickname, stated age, nationality and language cues,
prices, posting date, movement phrases ("nieuw in", "laatste dagen", "deze week"), e-mail
addresses, messaging handles and other URLs. Every value comes with its evidence: a ``Field``
naming the item field it was read from and the character offsets of the cue in that field.
``FieldsPipeline`` runs it on every item and stores the result as ``item["fields"]``.

Ads are written in Dutch, English and Romanian. All patterns run on a *folded* copy of the text
(lower case, diacritics removed, one character for one character), so offsets found in the
folded copy are offsets in the original text, and "nouă", "noua" and "NOUA" read alike.

Decisions an analyst should know (also in docs/pipelines.md, "Ad fields"):

* "23 jaar ervaring", "for 5 years", "al 10 jaar in NL" are durations, not age claims. A number
  with a year unit is an age unless experience, a stay or "ago" follows it, or "al", "since",
  "for" ... precedes it. Claimed ages from 13 to 79 are kept: a claim under 18 is exactly what
  an analyst must see, so it is reported, never filtered out.
* Phone numbers are not extracted here, and ``tel:`` and WhatsApp links are not URLs: both
  belong to ``pipelines.phones``.
* Regional cues ("Latina", "Aziatische", "Oost-Europese") have no ISO 3166 code; they get the
  UN M49 region code ("419", "142", "151", "002", "029").
* Words that are also sex-work slang or service names ("French", "Spaanse", "Thai massage")
  count as a nationality only when a person noun follows ("Spaanse dame", "Thai girl").
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import date, datetime, timedelta
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from itemadapter import ItemAdapter

from lovitura_crawl import gazetteer
from lovitura_crawl.anomalies import Anomaly, note_anomaly
from lovitura_crawl.dates import MONTHS
from lovitura_crawl.db.store import is_listing_only

logger = logging.getLogger(__name__)

KINDS: tuple[str, ...] = (
    "nickname",
    "age",
    "nationality",
    "language",
    "price",
    "posted_on",
    "movement",
    "email",
    "handle",
    "url",
)
MOVEMENT_KINDS: tuple[str, ...] = (
    "new_in_town",
    "back_again",
    "on_tour",
    "today_only",
    "this_week_only",
    "few_days",
    "last_days",
    "leaving_soon",
)
MIN_AGE = 13
MAX_AGE = 79
MIN_PRICE_EUR = 10
MAX_PRICE_EUR = 10_000
SITE_TIME_ZONE = "Europe/Amsterdam"  # all sites the product follows are on Central European time


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Field:
    """One extracted value and where it was read.

    ``source`` is the item field ("title", "text", "nickname", "age", "posted_at"); ``start``
    and ``end`` are offsets into that field's text, so ``text[start:end]`` is the cue.
    """

    kind: str
    value: str
    start: int
    end: int
    source: str


@dataclass
class AdFields:
    """Everything ``extract_fields`` found in one ad; values deduplicated, in reading order."""

    nickname: str | None = None
    age: int | None = None
    nationalities: list[str] = dataclass_field(default_factory=list)  # ISO 3166 / UN M49
    languages: list[str] = dataclass_field(default_factory=list)  # ISO 639-1
    prices: list[tuple[int, str]] = dataclass_field(default_factory=list)  # (euros, unit)
    posted_on: date | None = None
    movement: list[str] = dataclass_field(default_factory=list)  # MOVEMENT_KINDS
    emails: list[str] = dataclass_field(default_factory=list)
    handles: list[str] = dataclass_field(default_factory=list)  # "platform:name"
    urls: list[str] = dataclass_field(default_factory=list)
    evidence: list[Field] = dataclass_field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: dates as ISO strings, prices as dicts."""
        return {
            "nickname": self.nickname,
            "age": self.age,
            "nationalities": list(self.nationalities),
            "languages": list(self.languages),
            "prices": [{"amount_eur": amount, "unit": unit} for amount, unit in self.prices],
            "posted_on": self.posted_on.isoformat() if self.posted_on else None,
            "movement": list(self.movement),
            "emails": list(self.emails),
            "handles": list(self.handles),
            "urls": list(self.urls),
            "evidence": [
                {
                    "kind": f.kind,
                    "value": f.value,
                    "start": f.start,
                    "end": f.end,
                    "source": f.source,
                }
                for f in self.evidence
            ],
        }


# --------------------------------------------------------------------------- folding


def _fold_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0xC0, 0x250):
        base = unicodedata.normalize("NFKD", chr(code))[0]
        if base != chr(code) and base.isascii() and base.isalpha():
            table[code] = base.lower()
    extra = {
        "ł": "l",
        "Ł": "l",
        "ø": "o",
        "Ø": "o",
        "đ": "d",
        "ı": "i",
        "\u2019": "'",
        "\u2018": "'",
        "`": "'",
        "\u2013": "-",
        "\u2014": "-",
        "\u00a0": " ",
        "\u202f": " ",
    }
    table.update({ord(k): v for k, v in extra.items()})
    return table


_FOLD_TABLE = _fold_table()


def fold(text: str) -> str:
    """Lower-case ``text`` and strip diacritics, keeping exactly one character per character."""
    lowered = text.lower()
    if len(lowered) != len(text):  # "İ" and a few others lower-case to two characters
        lowered = "".join(ch.lower() if len(ch.lower()) == 1 else ch for ch in text)
    return lowered.translate(_FOLD_TABLE)


@dataclass(frozen=True)
class _Source:
    name: str
    raw: str
    folded: str

    @classmethod
    def of(cls, name: str, raw: str) -> _Source:
        return cls(name, raw, fold(raw))

    def field(self, kind: str, value: str, start: int, end: int) -> Field:
        return Field(kind, value, start, end, self.name)


def _words(text: str) -> list[str]:
    """The words of a whitespace-separated list written as one string."""
    return text.split()


def _alternation(words: Iterable[str]) -> str:
    """A regex alternation of folded words, longest first; a space or hyphen matches either."""
    ordered = sorted(set(words), key=len, reverse=True)
    return "|".join(
        re.escape(w).replace(r"\ ", r"[\s-]+").replace(r"\-", r"[\s-]*") for w in ordered
    )


def _squash(text: str) -> str:
    return re.sub(r"[\s-]+", " ", text).strip()


# --------------------------------------------------------------------------- lexicons

# Folded nationality cues in Dutch, English and Romanian, by ISO 3166 alpha-2 or UN M49 code.
# Country names count ("uit Roemenië", "din Moldova"), except those of the countries the ads are
# placed in (NL, BE, DE): there they name the ad's location, not the person's origin.
_NATIONALITY_FORMS: dict[str, tuple[str, ...]] = {
    "RO": (
        "roemeense", "roemeens", "roemeen", "roemeentje", "roemenie", "romanian", "romania",
        "romanca", "romancuta", "romanita", "romana", "romaneasca", "romance",
    ),
    "MD": (
        "moldavische", "moldavisch", "moldavie", "moldova", "moldovan", "moldavian", "moldovian",
        "moldoveanca", "moldoveancuta", "moldoveanka", "basarabeanca", "moldovaanse",
    ),
    "BG": ("bulgaarse", "bulgarije", "bulgarian", "bulgaria", "bulgaroaica", "bulgarca"),
    "HU": (
        "hongaarse", "hongarije", "hungarian", "hungary", "unguroaica", "ungureanca", "maghiara",
    ),
    "NL": ("nederlandse", "hollandse", "dutch", "olandeza", "olandezca"),
    "PL": ("poolse", "polen", "polish", "poland", "poloneza", "polonezca"),
    "UA": (
        "oekraiense", "oekraine", "ukrainian", "ukraine", "ucraineanca", "ucrainianca", "ucraina",
    ),
    "RU": ("russische", "rusland", "russian", "russia", "rusoaica", "rusia"),
    "LT": ("litouwse", "litouwen", "lithuanian", "lithuania", "lituanianca"),
    "LV": ("letse", "letland", "latvian", "latvia", "letona"),
    "EE": ("estlandse", "estland", "estonian", "estonia"),
    "CZ": ("tsjechische", "tsjechie", "czech", "ceha", "cehoaica"),
    "SK": ("slowaakse", "slowakije", "slovak", "slovakian", "slovakia", "slovaca"),
    "RS": ("servische", "servie", "serbian", "serbia", "sarboaica"),
    "HR": ("kroatische", "kroatie", "croatian", "croatia", "croata"),
    "AL": ("albanese", "albanie", "albanian", "albania", "albaneza"),
    "GR": ("griekse", "griekenland", "greece", "greaca"),
    "TR": ("turkse", "turkije", "turkish", "turkey", "turcoaica"),
    "ES": ("spaanse", "spanje", "spanish", "spain", "spanioloaica", "spaniola"),
    "IT": ("italiaanse", "italie", "italian", "italy", "italianca"),
    "FR": ("franse", "frankrijk", "french", "france", "frantuzoaica"),
    "DE": ("duitse", "german", "germana", "nemtoaica"),
    "BE": ("belgische", "belgian", "belgianca"),
    "GB": ("engelse", "britse", "british", "englishwoman", "englezoaica"),
    "BR": ("braziliaanse", "brazilie", "brazilian", "brazil", "braziliana", "brazilianca"),
    "CO": ("colombiaanse", "colombia", "colombian", "columbiana", "columbia"),
    "VE": ("venezolaanse", "venezuela", "venezuelan", "venezueleana"),
    "DO": ("dominicaanse", "dominican", "dominicana"),
    "CU": ("cubaanse", "cuban", "cubaneza", "cubana"),
    "SR": ("surinaamse", "suriname", "surinamese"),
    "TH": ("thaise", "thai", "thailand", "thailandeza"),
    "CN": ("chinese", "china", "chinezoaica", "chinezoaca"),
    "JP": ("japanse", "japanese", "japan", "japoneza"),
    "PH": ("filipijnse", "filipina", "filipino", "philippines", "filipineza"),
    "VN": ("vietnamese", "vietnam", "vietnameza"),
    "NG": ("nigeriaanse", "nigerian", "nigeria"),
    "GH": ("ghanese", "ghanaian", "ghana"),
    "MA": ("marokkaanse", "moroccan", "marokko", "morocco"),
    "419": (
        "latina", "latinas", "latin", "latino", "latijns amerikaanse", "latijnse",
        "latin american", "latinoamericana", "sudamericana", "zuid amerikaanse",
        "south american",
    ),
    "029": ("antilliaanse", "antilliaans", "caribische", "caribbean"),
    "142": ("aziatische", "asian", "asiatica", "aziatisch"),
    "002": ("afrikaanse", "african", "africana"),
    "151": (
        "oost europese", "oosteuropese", "eastern european", "east european",
        "est europeana", "din estul europei",
    ),
}  # fmt: skip

# Forms that are also sex-work slang or service names ("French", "Spaanse", "Thai massage"), or
# that describe things as often as people ("Engelse les"): a nationality only before a person.
# Folded forms that are another word without their diacritics: "românce" but not "romance".
_DIACRITIC_ONLY_NATIONALITY = frozenset({"romance"})
_AMBIGUOUS_NATIONALITY = frozenset(
    {
        "french", "franse", "spanish", "spaanse", "russian", "russische", "thai", "thaise",
        "chinese", "turkish", "turkse", "latin", "asian", "aziatische", "aziatisch", "polish",
        "african", "afrikaanse", "greece", "china", "japan", "brazil", "cuban", "engelse",
        "britse",
    }
)  # fmt: skip
_PERSON_NOUNS = (
    r"girl|girls|lady|ladies|woman|women|babe|beauty|escort|student|studente|model|milf|blonde|"
    r"brunette|doll|dame|dames|meid|meiden|meisje|meisjes|vrouw|vrouwen|schoonheid|studentin|"
    r"fata|fete|femeie|domnisoara|frumusete|bruneta|blonda|lieverd|sweetheart|princess|prinses|"
    r"mature|teen|tiener|mama|mom|mother|moeder|transsexual|transgender|trans|ts|shemale|"
    r"masseuse|masseuses|companion|queen|goddess|godin|mistress|meesteres|chick|hottie|lover|"
    r"escorts|models|students|studentes"
)

_LANGUAGE_FORMS: dict[str, tuple[str, ...]] = {
    "en": ("engels", "english", "engleza", "englezeste", "englisch"),
    "nl": ("nederlands", "hollands", "dutch", "vlaams", "olandeza", "neerlandeza"),
    "ro": ("roemeens", "romanian", "romana", "romaneste", "rumaans"),
    "de": ("duits", "german", "germana", "deutsch", "nemteste"),
    "fr": ("frans", "french", "franceza", "frantuzeste"),
    "es": ("spaans", "spanish", "spaniola", "espanol"),
    "it": ("italiaans", "italian", "italiana"),
    "ru": ("russisch", "russian", "rusa", "ruseste"),
    "bg": ("bulgaars", "bulgarian", "bulgara"),
    "hu": ("hongaars", "hungarian", "maghiara"),
    "pl": ("pools", "polish", "poloneza"),
    "uk": ("oekraiens", "ukrainian", "ucraineana"),
    "pt": ("portugees", "portuguese", "portugheza"),
    "tr": ("turks", "turkish", "turca"),
    "hr": ("kroatisch", "croatian", "croata"),
    "sr": ("servisch", "serbian", "sarba"),
    "cs": ("tsjechisch", "czech", "ceha"),
    "sk": ("slowaaks", "slovak", "slovaca"),
    "el": ("grieks", "greek", "greaca"),
    "sq": ("albanees", "albanian", "albaneza"),
    "lt": ("litouws", "lithuanian", "lituaniana"),
    "lv": ("lets", "latvian", "letona"),
    "th": ("thai", "thais"),
    "zh": ("chinees", "chinese", "chineza", "mandarin"),
    "vi": ("vietnamees", "vietnamese", "vietnameza"),
    "ar": ("arabisch", "arabic", "araba"),
    "tl": ("tagalog", "filipino"),
}

_MONTHS = {fold(name): number for name, number in MONTHS.items()}
# English writes the month first ("Nov 3, 2026"); Dutch and Romanian never do.
_EN_MONTHS = {
    name: n
    for name, n in _MONTHS.items()
    if name
    in _words(
        "january february march april may june july august september october november december "
        "jan feb mar apr jun jul aug sep sept oct nov dec"
    )
}

# Words an ad capitalises that are not names.
_NOT_NAMES = frozenset(
    _words(
        """
    nieuw nieuwe new noua nou sexy hot top vip echt real super mooie mooi lieve lief geile geil
    jonge jong young escort escorta escorts prive privehuis massage masaj ontvangst thuis hotel
    bezoek service services girl girls meisje meid dame dames lady ladies vrouw woman babe fata
    hier here aici ready klaar beschikbaar available disponibila alleen only doar vandaag today
    azi morgen tomorrow maine week weekend deze this de het een the a an ik i je jij you mij me
    bel call sms whatsapp telegram snap snapchat insta instagram onlyfans email mail contact tel
    telefoon phone info welkom welcome bine hallo hello hi hoi hey salut buna dag day night
    nacht noapte laatste last ultimele ultima terug back weer again sunt ben am is ja yes nee no
    niet not wel foto fotos photos pics echte genuine prijs prijzen price prices rates tarief
    tarieven pret euro eur incall outcall vanaf from tot until open geopend student studente
    studenta blond blonde brunette bruneta petite slank slim curvy bbw milf mature teen party
    kom come vind find zoek lees read meer more lekker lekkere heerlijke nice sweet zoete dulce
    frumoasa beautiful lovely gorgeous stunning elegant exclusive elite independent mooiste
    discreet discrete schone clean sfeervol gezellig ontspanning relax tantra erotische erotic
    sensual sensuele natuurlijke natural helemaal nu now acum straks soon binnenkort luxe lux
    maandag dinsdag woensdag donderdag vrijdag zaterdag zondag monday tuesday wednesday
    thursday friday saturday sunday luni marti miercuri joi vineri sambata duminica centrum
    center centre station noord zuid oost west north south east kamer room nr nummer number
    maat size cup ts trans transsexual shemale lieverd schat darling baby honey iubi iubitule
    visiting bezoekt kiss zoenen french greek gfe pse duo trio actie action korting discount
    boekingen booking bookings website site web services diensten extra extras ervaren
    experienced professional professionele wij we our ons mijn my zij she hallo heren gentlemen
    guys mannen iubitilor ciao hola echtpaar koppel couple club bar salon agency bureau
    age leeftijd varsta code cod ref nr maten masuri measurements actie special oferta
    vermeld mention mentioneaza program tarif rates deposit aanbetaling avans kvk btw iban
    """
    )
)
# Street names carry numbers ("Industrieweg 12"): not a name with an age.
_STREET_SUFFIX_RE = re.compile(
    r"(?:straat|weg|laan|plein|dreef|kade|gracht|singel|dijk|hof|park|pad|steeg|markt|strasse)$"
)

# Common words of the three languages that are never a messaging handle's name.
_NOT_HANDLES = frozenset(
    _words(
        "en and of or si sau ook also me mij ma op on pe at via bij for voor only alleen doar is "
        "are the de het een a an to naar la in mijn my meu nu now acum app add je jij it ik i"
    )
)

# Top-level domains accepted in addresses written without "http" or "www" ("alina-escort.nl").
# A short list on purpose: the full public-suffix list holds ".in", ".me", ".it" and other words.
# The RFC 2606 names are listed because the demo world and the tests use them.
_BARE_TLDS = _words(
    "nl be de com net org eu info biz ro md uk fr es pl bg hu ua ru cz sk lt lv xxx sex sexy "
    "porn adult escort app site online club vip top xyz link live fun love page website "
    "example test invalid"
)

_PHONE_HOSTS = frozenset(
    {"wa.me", "api.whatsapp.com", "whatsapp.com", "chat.whatsapp.com", "web.whatsapp.com"}
)


# --------------------------------------------------------------------------- regexes

# A word that can be a nickname: letters only, not glued to an address or a longer word.
_NAME = r"(?<![\w@.'’-])[^\W\d_]{2,20}+(?:-[^\W\d_]{2,20}+)?(?!\w|[@.'’-]\w)"
_NAME_RE = re.compile(_NAME)
_TWO_NAMES_RE = re.compile(rf"(?P<first>{_NAME})[ \t]+(?P<second>{_NAME})")
_INTRO_RE = re.compile(
    r"\b(?:ik\s+ben|ik\s+heet|mijn\s+naam\s+is|noem\s+me|i\s?'?m|i\s+am|my\s+name\s+is|"
    r"call\s+me|this\s+is|ma\s+numesc|ma\s+cheama|numele\s+meu\s+(?:este|e)|eu\s+sunt|sunt)"
    r"\s+(?:(?:de|het|the|o|a)\s+)?(?:(?:mooie|lieve|sexy|hot|sweet|geile|jonge|young|"
    r"beautiful|lovely|frumoasa|dulce|tanara|noua|nieuwe|new)\s+)*(?=[^\W\d_])"
)
_NOUN_NAME_RE = re.compile(
    r"\b(?:girl|girls|meisje|meisjes|meid|meiden|dame|dames|vrouw|lady|ladies|babe|woman|fata|"
    r"fete|fatuca|femeie|domnisoara|studente|studentin|studenta)\s+(?=[^\W\d_])"
)
# "Sophie hier", "Alina here", "Irina from Moldova", "Roos uit Hongarije".
_NAME_FOLLOWER_RE = re.compile(
    rf"(?P<name>{_NAME})[ \t]+(?:(?i:hier|here|aici)\b|(?i:from|uit|din)[ \t]+[A-ZÀ-ÖØ-ÞĂÂÎȘȚŞŢ])"
)
# Words that put a place, not a name, after them: "from Madrid, 31", "in Zwolle, 23".
_PLACE_PREPOSITION_BEFORE_RE = re.compile(
    r"\b(?:from|uit|din|in|naar|to|near|bij|nabij|te|regio|around|rond|la|spre|van|omgeving)"
    r"[ \t]+$"
)
# "Alina și Bianca, 21 și 23 de ani": the first of two names.
_FIRST_OF_TWO_RE = re.compile(rf"(?P<name>{_NAME})[ \t]+(?:en|and|si|și|&)[ \t]+$", re.IGNORECASE)
_NAME_BEFORE_RE = re.compile(rf"(?P<name>{_NAME})(?:[ \t]+(?:hier|here|aici))?[ \t,(:|-]{{0,4}}$")
_TITLE_START_NAME_RE = re.compile(rf"^\s*(?P<name>{_NAME})\s*(?:[,!:|(-]|$)")

_AGE_RE = re.compile(
    r"""
    (?<![\w.,/€+:-])(?P<n>\d{2})(?:\s*(?:en|and|si|&)\s*\d{2})?\s?-?\s?
        (?:jarige|jaar\s+oud|jaartjes|jaar|jaren|jr\.?|j|years?\s+old|years?|yrs?\s+old|yrs?
          |y\.o\.?|y/o|yo|y|de\s+ani|ani)(?![\w/])
  | \b(?:age|aged|leeftijd|varsta|virsta|edad)\s*[:=]?\s*\(?\s*(?P<m>\d{2})(?![\w.,/:]?\d)
        (?![ \t]*\d)
  | \b(?:i\s?'?m|i\s+am|ik\s+ben|sunt)\s+(?P<k>\d{2})(?![\w.,/:]?\d)
        (?!\s*(?:€|eur|euro|min|uur|u\b|h\b|cm|kg|%|x\b|\+|/))
    """,
    re.VERBOSE,
)
# After a year unit, a duration: "23 jaar ervaring", "5 years in NL", "2 jaar geleden".
_AGE_DURATION_AFTER_RE = re.compile(
    r"\s*(?:(?:de|of|met|with)\s+)?(?:ervaring|werkervaring|experience|experienta|in\s+(?:het\s+"
    r"vak|the\s+business|dit\s+werk|this\s+work|nederland|nl|holland|olanda|the\s+netherlands|"
    r"europa|europe)|hier|here|aici|geleden|ago|lang|long|getrouwd|married|samen|together)\b"
)
# Before the number, a duration: "al 5 jaar", "for 5 years", "sinds 3 jaar", "din 2 ani".
_AGE_DURATION_BEFORE_RE = re.compile(
    r"\b(?:al|sinds|since|for|already|din|voor|over|na|binnen|within|after|meer\s+dan|"
    r"more\s+than|peste|deja|ruim|bijna|almost|nearly)\s*$"
)
# "Alina, 23", "Bianca (25)", "Sandra 38", "Sofia here, 26": a name and a bare number.
_NAME_AGE_RE = re.compile(
    rf"(?P<name>{_NAME})(?:[ \t]+(?:hier|here|aici))?[ \t]*(?:[,(|-][ \t]*)?(?P<n>\d{{2}})"
    r"(?![\w.,:/]?\d)(?![ \t]*(?:\d|€|eur|euro|min|uur|u\b|h\b|cm|kg|jaar|years|ani|x\b|%|\+"
    r"|m\b|e\b|ste\b|st\b|nd\b|rd\b|th\b|/))",
    re.IGNORECASE,
)

_AMOUNT = r"(?:[1-9]\d{0,2}\.\d{3}(?!\d)|[1-9]\d{1,4})(?:,(?:-|\d{2})|\.\d{2}(?!\d))?"
_CURRENCY_BEFORE = r"(?:€|\beur\b|\beuro\b)"
_CURRENCY_AFTER = r"(?:€|euros?\b|eur\b)"
_NIGHT_WORDS = (
    r"(?:(?:de\s+)?hele\s+nacht|all\s+night|whole\s+night|overnight|toata\s+noaptea|nacht|night|"
    r"noapte|noaptea)"
)
_DURATION_WORDS = (
    rf"(?:(?:een\s+)?half\s*uur|half\s+(?:an\s+)?hour|half-hour|(?:o\s+)?jumatate\s+de\s+ora|"
    rf"kwartier|(?:a\s+)?quarter|sfert\s+de\s+ora|"
    rf"anderhalf\s+uur|(?:een|one|an|o)\s+(?:uur|hour|ora)|{_NIGHT_WORDS})"
)
_DURATION = (
    r"(?:\d{1,2}(?:[.,]5)?\s*(?:minuten|minutes|minute|mins|min|m|uren|uur|u|hours|hour|hrs|hr|"
    rf"h|ore|ora)|1/2\s*(?:uur|u|h|hour|ora)|{_DURATION_WORDS}|uur|hour|ora)"
)
_PER_UNIT = r"(?:uur|u|h|hour|hr|ora|nacht|night|noapte)"
_PER = r"(?:/|\bper\b|\bp/|\bp\.|\bpe\b|\bvoor\b|\bfor\b)"
_NOT_UNIT_AHEAD = r"(?!\s*(?:min|m\b|uur|uren|u\b|h\b|hours?|hrs?|ore|ora|jaar|years?|ani|x\b|%))"
_PRICE_RE = re.compile(
    rf"""
      (?<![\w.,/])(?P<d1>{_DURATION})(?!\w)\s*[:=-]?\s*(?:{_CURRENCY_BEFORE}\s*)?
          (?P<a1>{_AMOUNT})(?:\s*{_CURRENCY_AFTER})?(?![\w.,/:]?\d)
    | (?<![\w.,/])(?:{_CURRENCY_BEFORE}\s*)?(?P<a2>{_AMOUNT})\s*(?:{_CURRENCY_AFTER}\s*)?
          {_PER}\s*(?P<d2>{_DURATION}|{_PER_UNIT})(?!\w)
    | (?:{_CURRENCY_BEFORE}\s*(?P<a7>{_AMOUNT})|(?<![\w.,/])(?P<a9>{_AMOUNT})\s*{_CURRENCY_AFTER})
          \s*\(?\s*(?P<d7>{_DURATION}|{_PER_UNIT})(?!\w)
    | (?<![\w.,/])(?P<a8>{_AMOUNT})\s*(?P<d8>{_DURATION_WORDS})(?!\w)
    | {_CURRENCY_BEFORE}\s*(?P<a3>{_AMOUNT})(?![\w.,/:]?\d)
    | (?<![\w.,/])(?P<a4>{_AMOUNT})\s*{_CURRENCY_AFTER}
    | (?<![\w.,/])(?P<a5>[1-9]\d{{1,4}}),-
    | \b(?P<d10>uurtarief|uurprijs|hourly\s+rate|tarif\s+orar|pret\s+pe\s+ora|(?:prijs|price|
          tarief|pret)\s+(?:per\s+uur|p\.?\s?u\.?|per\s+hour|pe\s+ora))\s*[:=]?\s*
          (?:{_CURRENCY_BEFORE}\s*)?(?P<a10>{_AMOUNT})(?:\s*{_CURRENCY_AFTER})?(?![\w.,/:]?\d)
    | \b(?:prijs|prijzen|price|prices|tarief|tarieven|rate|rates|pret|preturi|tarif|donatie|
          donation)\s*[:=]?\s*(?:vanaf\s+|from\s+|de\s+la\s+)?(?P<a6>{_AMOUNT}){_NOT_UNIT_AHEAD}
          (?:\s*{_CURRENCY_AFTER})?(?:\s*{_PER}\s*(?P<d6>{_DURATION}|{_PER_UNIT})(?!\w)
          |\s*(?P<d11>{_DURATION_WORDS}|{_PER_UNIT})(?!\w))?(?![\w.,/:]?\d)
    """,
    re.VERBOSE,
)
_AMOUNT_GROUPS = ("a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "a10")
_DURATION_GROUPS = ("d1", "d2", "d6", "d7", "d8", "d10", "d11")
_CURRENCY_RE = re.compile(r"€|\beur")
_CLOCK_BEFORE_RE = re.compile(
    r"\b(?:vanaf|van|tot|om|from|until|till|at|after|na|de\s+la|pana\s+la|la|before)\s*$"
)
# "1000 euro per week" is pay in a recruitment ad, not a price.
_PAY_PERIOD_RE = re.compile(r"\s*(?:per|/|p/|pe|a|in\s+de)\s*(?:week|maand|month|luna|jaar|year)")
_DURATION_PARTS_RE = re.compile(r"(?P<n>\d{1,2}(?:[.,]5)?)\s*(?P<unit>[a-z]+)")

_DATE = rf"""
      (?P<iy>\d{{4}})-(?P<im>\d{{1,2}})-(?P<id>\d{{1,2}})(?!\d)
    | (?P<dd>\d{{1,2}})[-/.](?P<dm>\d{{1,2}})[-/.](?P<dy>\d{{4}}|\d{{2}})(?!\d|\.\d)
    | (?P<td>\d{{1,2}})(?:st|nd|rd|th|ste|de|e)?\.?\s+(?:of\s+)?
          (?P<tm>{_alternation(_MONTHS)})\b(?:\.?,?\s+(?P<ty>\d{{4}})(?!\d))?
    | (?P<um>{_alternation(_EN_MONTHS)})\b\.?\s+(?P<ud>\d{{1,2}})(?:st|nd|rd|th)?\b
          (?:,?\s+(?P<uy>\d{{4}})(?!\d))?
    | (?P<rel>eergisteren|gisteren|vandaag|today|yesterday|alaltaieri|ieri|astazi|azi)\b
    | (?P<an>\d{{1,3}}|een|a|an|one)\s+(?P<au>dagen|dag|days|day|weken|week|weeks|uur|uren|
          hours|hour|minuten|minuut|minutes|minute|mins|min|seconden|seconds)\s+(?:geleden|ago)\b
    | acum\s+(?P<rn>\d{{1,3}}|o|un)\s+(?P<ru>zile|zi|saptamani|saptamana|ore|ora|minute|minut|
          secunde)\b
"""
_DATE_RE = re.compile(_DATE, re.VERBOSE)
_POSTED_IN_TEXT_RE = re.compile(
    rf"""
    \b(?:geplaatst|plaatsingsdatum|online\s+(?:sinds|since)|posted|placed|published|publicata?
       |postata?|adaugata?|(?:datum|date|data)\s*:)
    \s*[:-]?\s*(?:(?:op|on|pe|la|in|since|sinds)\s+)?(?:{_DATE})
    """,
    re.VERBOSE,
)
_RELATIVE_DAYS = {
    "vandaag": 0,
    "today": 0,
    "azi": 0,
    "astazi": 0,
    "gisteren": 1,
    "yesterday": 1,
    "ieri": 1,
    "eergisteren": 2,
    "alaltaieri": 2,
}
_ONE = frozenset({"een", "a", "an", "one", "o", "un"})

_MOVEMENT_RE = re.compile(
    r"""
    (?P<new_in_town>
        \bnieuwe?\s+(?:meisje|meid|dame|girl|vrouw)\s+in\b
      | \bnieuw\s+(?:in|hier|aangekomen)\b(?!\s+(?:het|dit)\s+(?:vak|werk))
      | \b(?:net|pas|vers)\s+(?:nieuw|aangekomen|binnen)\b
      | \b(?:eerste|1e|1ste)\s+(?:keer|dag|week|dagen)\s+(?:in|hier)\b
      | \bvoor\s+het\s+eerst\s+(?:in|hier)\b
      | \b(?:nieuw|new)\s+(?:deze|this)\s+week\b
      | \bfor\s+the\s+first\s+time\s+(?:in|here)\b
      | \b(?:pas|net)\s+(?:een\s+)?(?:paar|\d|twee|drie)\s+dagen\s+(?:in|hier)\b
      | \bnew\s+(?:girl\s+)?(?:in|here|to\s+(?:town|the\s+city)|arrival|arrived)\b
            (?!\s+(?:the|this)\s+(?:business|job|work))
      | \bjust\s+(?:arrived|landed|came\s+to)\b
      | \barrived\s+(?:today|yesterday|this\s+week)\b
      | \b(?:first|1st)\s+(?:time|day|week|days)\s+(?:in|here)\b
      | \b(?:sunt\s+)?(?:noua|nou)\s+(?:in|aici|venita|sosita)\b
      | \bproaspat\s+(?:sosita|venita|ajunsa)\b
      | \babia\s+(?:am\s+)?(?:sosit|venit|ajuns)\b
      | \bprima\s+(?:data|zi|saptamana|oara)\s+(?:in|aici)\b
    )
  | (?P<last_days>
        \blaatste\s+(?:(?:\d|paar|twee|drie)\s+)?(?:dagen|dag|week)\b
      | \blast\s+(?:(?:\d|few|two|three|couple\s+of)\s+)?days?\b
      | \bultimele\s+(?:mele\s+)?(?:(?:\d|doua|trei)\s+)?zile\b
      | \bultima\s+(?:mea\s+)?(?:zi|saptamana)\b
      | \b(?:my|mijn)\s+(?:last|final|laatste)\s+(?:days?|week|dagen|dag)\b
    )
  | (?P<few_days>
        \b(?:alleen|enkel|only|just|doar|numai)\s+(?:vandaag|today|azi|astazi)\s+(?:en|and|si)\s+
            (?:morgen|tomorrow|maine)\b
      | \b(?:(?:nog|maar|slechts|alleen)\s+)?(?:een\s+)?paar\s+dagen\b(?!\s+geleden)
      | \b(?:nog|maar|slechts|alleen)\s+(?:\d|twee|drie|vier)\s+dagen\b(?!\s+geleden)
      | \b(?:a\s+)?few\s+days\b(?!\s+ago)
      | \b(?:only|just|for)\s+(?:\d|two|three|four)\s+days\b(?!\s+ago)
      | \b(?:doar|numai|pentru)\s+(?:\d\s+|cateva\s+|doua\s+|trei\s+)?zile\b
      | \bcateva\s+zile\b
    )
  | (?P<today_only>
        \b(?:alleen|enkel|slechts)\s+vandaag\b
      | \bvandaag\s+(?:alleen|enkel)\b
      | \b(?:only|just)\s+today\b
      | \btoday\s+only\b
      | \b(?:doar|numai)\s+(?:azi|astazi)\b
    )
  | (?P<this_week_only>
        \b(?:(?:alleen|enkel|slechts|maar)\s+)?deze\s+week\b
      | \b(?:(?:only|just)\s+)?this\s+week(?:\s+only)?\b
      | \b(?:(?:doar|numai)\s+)?(?:saptamana|sapt\.?)\s+(?:aceasta|asta)\b
    )
  | (?P<leaving_soon>
        \bbinnenkort\s+(?:weg|vertrek|vertrekken)\b
      | \bvertrek\s+(?:binnenkort|morgen|snel)\b
      | \b(?:ga|ben)\s+(?:ik\s+)?(?:binnenkort|morgen|snel)\s+weg\b
      | \b(?:volgende|komende)\s+week\s+(?:ben|ga)\s+ik\s+weg\b
      | \bmorgen\s+weg\b
      | \b(?:daarna|dan|morgen)\s+(?:vertrek|ga)\s+ik\s+(?:naar|weg)\b
      | \b(?:then|after\s+that|tomorrow)\s+i\s+(?:go|leave|am\s+going|travel)\s+to\b
      | \bi\s+leave\s+(?:tomorrow|on|next)\b
      | \bbefore\s+i\s+(?:go|leave|travel|fly)\b
      | \b(?:go|going|ga)\s+(?:back\s+home|terug\s+naar\s+huis)\b
      | \b(?:ma\s+intorc|plec)\s+acasa\b
      | \b(?:apoi|dupa\s+aceea|maine)\s+plec\b
      | \bplec\s+(?:in|la|spre)\s+(?=[^\W\d_])
      | \bleaving\s+(?:town|on\b|(?:[a-z]+\s+)?(?:soon|tomorrow|next\s+week))\b
      | \blaatste\s+kans\b
      | \blast\s+chance\b
      | \bplec\s+(?:curand|maine|in\s+curand|de\s+maine)\b
      | \bultima\s+(?:sansa|ocazie)\b
    )
  | (?P<back_again>
        \b(?:weer|terug)\s+(?:terug|in|hier)\b
      | \bben\s+(?:weer\s+)?terug\b
      | \bweer\s+beschikbaar\b
      | \bback\s+(?:in|again)\b
      | \bi\s?'?m\s+back\b
      | \b(?:again|once\s+more)\s+in\b
      | \bavailable\s+again\b
      | \bm\s?-?\s?am\s+intors\b
      | \bam\s+revenit\b
      | \bsunt\s+inapoi\b
      | \bdin\s+nou\s+(?:in|aici|disponibila)\b
    )
  | (?P<on_tour>
        \bop\s+(?:doorreis|tournee|tour)\b
      | \bon\s+tour\b
      | \btouring\b
      | \bpassing\s+through\b
      | \bin\s+(?:turneu|tranzit)\b
      | \bdoorreis\b
    )
    """,
    re.VERBOSE,
)

_NATIONALITY_BY_FORM = {
    _squash(form): code for code, forms in _NATIONALITY_FORMS.items() for form in forms
}
_NATIONALITY_RE = re.compile(rf"\b(?:{_alternation(_NATIONALITY_BY_FORM)})\b")
# Words that stand between a name and a bare age: "Chloe, British, 29", "schoonheid, 23".
_AGE_LEAD_WORDS = frozenset(_NATIONALITY_BY_FORM) | frozenset(_PERSON_NOUNS.split("|"))
_PERSON_FOLLOWS_RE = re.compile(
    rf"[\s,-]+(?:(?:[a-z]+|\d{{2}})[\s,-]+){{0,2}}(?:{_PERSON_NOUNS})\b"
)
_SERVICE_FOLLOWS_RE = re.compile(
    r"[\s-]*(?:massage|massages|masaj|kiss|kissing|zoen|zoenen|style|stijl|stil|sex|seks|bad|"
    r"bath|baie|position|standje|sauna|manicure|pedicure|food|eten|keuken|cuisine|les|lessen|"
    r"lessons?|humor|humour|wijn|wine|taal|language|limba)\b"
)
_ORIGIN_LEAD_RE = re.compile(
    r"\b(?:din|uit|from|originally\s+from|afkomstig\s+uit|originara\s+din)\s+(?=[^\W\d_])"
)
_ORIGIN_WORDS_RE = re.compile(r"[^\W\d_]+(?:[ -][^\W\d_]+)?")

_LANGUAGE_BY_FORM = {form: code for code, forms in _LANGUAGE_FORMS.items() for form in forms}
_LANGUAGE_WORD_RE = re.compile(rf"(?:{_alternation(_LANGUAGE_BY_FORM)})\b")
_LANGUAGE_TRIGGER_RE = re.compile(
    r"\b(?:spreek|spreekt|spreken|praat|speak|speaks|hablo|vorbesc|vorbeste|vorbim|stiu|talen|"
    r"languages?|limbi|limba|vorbitoare\s+de|fluent\s+in|vloeiend\s+in)\b[ \t]*:?"
)
_LANGUAGE_FILLER_RE = re.compile(
    r"(?:[ \t,/&+:;()'-]+|\b(?:en|and|si|ook|also|a|an|een|beetje|bit|of|little|some|goed|good|"
    r"well|perfect|perfectly|fluent|fluently|vloeiend|un|pic|putin|bine|foarte|very|wat|basic|"
    r"basis|native|moedertaal|nativ|de|limba|plus|ca|mother|tongue|redelijk|mostly|vooral|y|"
    r"alleen|only|doar|numai|je|jij|u|ik|i|we|wij|you|ze|zij|she|much|veel|mult|prea|klein|"
    r"kleine|putina|putine|bisschen|ok|okay|ook|nog)\b)*"
)
# "Engelstalig", "English spoken", "Dutch, English and Spanish speaking".
_LANGUAGE_SUFFIX_RE = re.compile(
    rf"\b(?P<list>(?:{_alternation(_LANGUAGE_BY_FORM)})(?:\s*(?:,|/|&|\band\b|\ben\b|\bsi\b|"
    rf"\bor\b|\bof\b)\s*(?:{_alternation(_LANGUAGE_BY_FORM)}))*)[\s-]?"
    r"(?:sprekend|sprekende|talig|talige|spoken|speaking|speaker|speakers)\b"
)

_AT = r"(?:@|\s*[\[({]\s*(?:at|@)\s*[\])}]\s*)"
_DOT = r"(?:\.|\s*[\[({]\s*(?:dot|punt|punct)\s*[\])}]\s*)"
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_EMAIL_RE = re.compile(
    rf"(?<![\w.%+-])(?P<local>[a-z0-9](?:[a-z0-9._%+-]{{0,62}}[a-z0-9_])?){_AT}"
    rf"(?P<domain>{_LABEL}(?:{_DOT}{_LABEL})*{_DOT}[a-z]{{2,12}})(?![\w-])"
)
_OBFUSCATED_DOT_RE = re.compile(r"\s*[\[({]\s*(?:dot|punt|punct)\s*[\])}]\s*")

_HANDLE_URL_RE = re.compile(
    r"(?<![\w.-])(?:https?://)?(?:www\.)?"
    r"(?P<host>t\.me|telegram\.me|telegram\.dog|instagram\.com|instagr\.am|snapchat\.com/add|"
    r"onlyfans\.com|fansly\.com|twitter\.com|x\.com|tiktok\.com/@|kik\.me)"
    r"/@?(?P<name>[a-z0-9_](?:[a-z0-9_.]{0,38}[a-z0-9_])?)(?![\w/])"
)
_HANDLE_HOSTS = {
    "t.me": "telegram",
    "telegram.me": "telegram",
    "telegram.dog": "telegram",
    "instagram.com": "instagram",
    "instagr.am": "instagram",
    "snapchat.com/add": "snapchat",
    "onlyfans.com": "onlyfans",
    "fansly.com": "fansly",
    "twitter.com": "twitter",
    "x.com": "twitter",
    "tiktok.com/@": "tiktok",
    "kik.me": "kik",
}
# Paths of those hosts that are pages or invitations, not accounts: they stay URLs.
_NOT_ACCOUNT_PATHS = frozenset(
    _words(
        "joinchat share s p reel reels explore stories tv add home login signup search hashtag "
        "i intent about help privacy terms"
    )
)
_PLATFORM = (
    r"telegram|snapchat|instagram|insta|onlyfans|only\s?fans|twitter|tiktok|fansly|threema|wickr"
)
# Short or common-word platform names ("snap je?", "signal", "of") need a ":" or "@" after them.
_HANDLE_LABEL_RE = re.compile(
    rf"""
    \b(?P<platform>{_PLATFORM}|(?:snap|kik|signal|tg|sc|ig)(?=[ \t]*[:=@-])|of(?=[ \t]*:))
    (?:[ \t]*(?:id|username|user|naam|name|nume)\b)?
    [ \t]*(?:[:=]|-(?!\d))?[ \t]*@?[ \t]*
    (?P<name>[a-z0-9_](?:[a-z0-9_.]{{0,30}}[a-z0-9_])?)(?![\w@]|\.[a-z])
    """,
    re.VERBOSE,
)
_PLATFORMS = {
    "telegram": "telegram",
    "tg": "telegram",
    "snapchat": "snapchat",
    "snap": "snapchat",
    "sc": "snapchat",
    "instagram": "instagram",
    "insta": "instagram",
    "ig": "instagram",
    "onlyfans": "onlyfans",
    "only fans": "onlyfans",
    "of": "onlyfans",
    "kik": "kik",
    "signal": "signal",
    "twitter": "twitter",
    "tiktok": "tiktok",
    "fansly": "fansly",
    "threema": "threema",
    "wickr": "wickr",
}
_BARE_HANDLE_RE = re.compile(
    r"(?<![\w.@/])@(?P<name>[a-z0-9_](?:[a-z0-9_.]{1,30}[a-z0-9_])?)(?![\w@]|\.[a-z])"
    rf"(?:\s+(?:on|op|pe)\s+(?P<platform>{_PLATFORM}|snap|kik|signal)\b)?"
)

_URL_RE = re.compile(
    rf"""
      (?P<full>(?:https?://|www\.)[^\s<>"'()\[\]{{}}]+)
    | (?<![\w@.-])(?P<bare>(?:{_LABEL}\.)+(?:{"|".join(_BARE_TLDS)})(?![\w-])
          (?:/[^\s<>"'()\[\]{{}}]*)?)
    """,
    re.VERBOSE,
)
_URL_PARTS_RE = re.compile(r"(?P<scheme>https?)://(?P<host>[^/?#]+)(?P<rest>.*)", re.IGNORECASE)
_URL_TRAILING = ".,;:!?'\"»)"
_NUMBER_RE = re.compile(r"\d{1,3}")


# --------------------------------------------------------------------------- small helpers

_Span = tuple[str, int, int]


def _overlaps(start: int, end: int, spans: Iterable[_Span], source: str) -> bool:
    return any(s == source and start < e and b < end for s, b, e in spans)


def _spans(fields: Iterable[Field]) -> list[_Span]:
    return [(f.source, f.start, f.end) for f in fields]


def _unique(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


@cache
def _place_names() -> frozenset[str]:
    """Folded names of Dutch places and provinces and of large foreign places."""
    names: set[str] = set()
    for place in gazetteer.woonplaatsen():
        names.update(fold(n) for n in (place.name, place.alias, place.province) if n)
    names.update(fold(m.name) for m in gazetteer.municipalities())
    for foreign in (*gazetteer.border_places(), *gazetteer.origin_places()):
        if foreign.population >= 20_000:  # villages include common first names
            names.add(fold(foreign.name))
    return frozenset(names)


@cache
def _origin_places() -> dict[str, str]:
    """Folded names of Romanian and Moldovan towns over 15,000 people, to their country code.

    Used after "din", "uit", "from": "din Constanța" is a Romanian origin cue. Codes, short
    transliterations and names shared with Dutch places are left out.
    """
    dutch = {fold(p.name) for p in gazetteer.woonplaatsen()}
    index: dict[str, str] = {}
    for place in gazetteer.origin_places():
        if place.population < 15_000:
            continue
        for name in (place.name, *place.alternate_names):
            key = fold(name)
            if len(key) >= 4 and not name.isupper() and key.isascii() and key not in dutch:
                index.setdefault(key, place.country)
    return index


@cache
def _not_names() -> frozenset[str]:
    """Folded words that are never a nickname: cue words and place names."""
    cue_words = set(_NATIONALITY_BY_FORM) | set(_LANGUAGE_BY_FORM)
    return frozenset(_NOT_NAMES | cue_words | _place_names())


def _is_name(word: str, *, before_number: bool = False) -> bool:
    """Whether ``word`` as written looks like a nickname: capitalised, not a cue or a place.

    Before a number, month names are dates ("Mei 27"); elsewhere they can be names ("girl Mei").
    """
    parts = word.split("-")
    for part in parts:
        if not part[0].isupper() or not (part[1:].islower() or part.isupper()):
            return False
    folded = fold(word)
    if folded in _not_names() or any(fold(p) in _NOT_NAMES for p in parts):
        return False
    if before_number and folded in _MONTHS:
        return False
    return not _STREET_SUFFIX_RE.search(folded)


def _after_place_preposition(src: _Source, start: int) -> bool:
    return bool(_PLACE_PREPOSITION_BEFORE_RE.search(src.folded, max(0, start - 12), start))


def _name_value(word: str) -> str:
    """Capitals to title case ("ALINA" to "Alina"); other spellings are kept as written."""
    if not word.isupper():
        return word
    return " ".join("-".join(p.capitalize() for p in w.split("-")) for w in word.split())


# --------------------------------------------------------------------------- nickname


def _nickname_field(raw: str | None) -> list[Field]:
    if not raw or not raw.strip():
        return []
    start = len(raw) - len(raw.lstrip())
    end = len(raw.rstrip())
    return [Field("nickname", " ".join(raw[start:end].split()), start, end, "nickname")]


def _name_at(src: _Source, pos: int) -> Field | None:
    """The nickname starting at ``pos``: one name word, or two ("Maria José")."""
    two = _TWO_NAMES_RE.match(src.raw, pos)
    if two and _is_name(two["first"]) and _is_name(two["second"]):
        return src.field("nickname", _name_value(two.group()), two.start(), two.end())
    one = _NAME_RE.match(src.raw, pos)
    if one and _is_name(one.group()):
        return src.field("nickname", _name_value(one.group()), one.start(), one.end())
    return None


def _name_before(src: _Source, pos: int) -> Field | None:
    """The nickname just before ``pos`` ("Alina, " before "23 jaar")."""
    m = _NAME_BEFORE_RE.search(src.raw, max(0, pos - 40), pos)
    if m and fold(m["name"]) in _AGE_LEAD_WORDS:  # "Chloe, British, 29": skip "British"
        m = _NAME_BEFORE_RE.search(src.raw, max(0, m.start() - 40), m.start())
    if not m or not _is_name(m["name"], before_number=True):
        return None
    if _after_place_preposition(src, m.start("name")):
        return None  # "from Madrid, 31"
    first = _FIRST_OF_TWO_RE.search(src.raw, max(0, m.start("name") - 30), m.start("name"))
    if first and _is_name(first["name"]):  # "Alina și Bianca, 21 și 23 de ani"
        return src.field("nickname", _name_value(first["name"]), first.start(), first.end("name"))
    two = _TWO_NAMES_RE.search(src.raw, max(0, m.start("name") - 22), m.end("name"))
    if two and two.end() == m.end("name") and _is_name(two["first"]):
        return src.field("nickname", _name_value(two.group()), two.start(), two.end())
    return src.field("nickname", _name_value(m["name"]), m.start("name"), m.end("name"))


def _is_shouting(text: str) -> bool:
    letters = [ch for ch in text if ch.isalpha()]
    return len(letters) >= 12 and sum(ch.isupper() for ch in letters) > 0.8 * len(letters)


def _nickname_candidates(src: _Source, ages: list[Field]) -> Iterator[tuple[int, Field | None]]:
    """(priority, evidence) for each nickname cue; a lower priority is a surer cue."""
    for m in _INTRO_RE.finditer(src.folded):
        yield 1, _name_at(src, m.end())
    if _is_shouting(src.raw):
        return  # in capitals every word looks like a name: only "ik ben ALINA" is sure
    for m in _NOUN_NAME_RE.finditer(src.folded):
        yield 2, _name_at(src, m.end())
    for m in _NATIONALITY_RE.finditer(src.folded):  # "Roemeense Mirela", "Spanish Rosa"
        if src.raw[m.end() : m.end() + 1] in (" ", "\t"):
            yield 2, _name_at(src, m.end() + 1)
    for m in _NAME_FOLLOWER_RE.finditer(src.raw):
        yield 2, _name_at(src, m.start())
    for age in ages:
        if age.source == src.name:
            yield 3, _name_before(src, age.start)
    start = _TITLE_START_NAME_RE.match(src.raw) if src.name == "title" else None
    if start:
        yield 4, _name_at(src, start.start("name"))


def _find_nicknames(sources: list[_Source], ages: list[Field]) -> list[Field]:
    """Nickname cues in the title and text, surest first."""
    found: list[tuple[int, int, Field]] = []
    for order, src in enumerate(sources):
        for priority, cue in _nickname_candidates(src, ages):
            if cue is not None:
                found.append((priority, order, cue))
    found.sort(key=lambda t: (t[0], t[1], t[2].start))
    return _unique(cue for _, _, cue in found)


# --------------------------------------------------------------------------- age


def _age_field(raw: str | None) -> list[Field]:
    if not raw:
        return []
    m = _NUMBER_RE.search(raw)
    if m and MIN_AGE <= int(m.group()) <= MAX_AGE:
        return [Field("age", str(int(m.group())), m.start(), m.end(), "age")]
    return []


def _is_duration(src: _Source, m: re.Match[str]) -> bool:
    """Whether a number with a year unit is a duration ("5 jaar ervaring") rather than an age."""
    if m.group("n") is None:
        return False
    unit = m.group()[len(m.group("n")) :]
    says_old = "oud" in unit or "old" in unit  # "23 jaar oud hier" is an age after all
    if not says_old and _AGE_DURATION_AFTER_RE.match(src.folded, m.end()):
        return True
    return bool(_AGE_DURATION_BEFORE_RE.search(src.folded, max(0, m.start() - 20), m.start()))


def _is_bare_age(src: _Source, m: re.Match[str]) -> bool:
    """Whether "<word>, <number>" is a name or person word with an age ("Alina, 23")."""
    lead = m.group("name")
    # 69 after a word is the sex position far more often than an age.
    if not 18 <= int(m.group("n")) <= 59 or _after_place_preposition(src, m.start("name")):
        return False
    return _is_name(lead, before_number=True) or fold(lead) in _AGE_LEAD_WORDS


def _find_ages(src: _Source, prices: list[_Span]) -> list[Field]:
    found: list[Field] = []
    for m in _AGE_RE.finditer(src.folded):
        number = int(m.group("n") or m.group("m") or m.group("k"))
        if MIN_AGE <= number <= MAX_AGE and not _is_duration(src, m):
            found.append(src.field("age", str(number), m.start(), m.end()))
    for m in _NAME_AGE_RE.finditer(src.raw):
        taken = _spans(found) + prices  # "Kwartier 50" is a price, not Ms Kwartier aged 50
        if _is_bare_age(src, m) and not _overlaps(m.start("n"), m.end("n"), taken, src.name):
            found.append(src.field("age", m.group("n"), m.start("n"), m.end("n")))
    return sorted(found, key=lambda f: f.start)


# --------------------------------------------------------------------------- nationality, language


def _find_languages(src: _Source) -> list[Field]:
    """Languages named after "spreek", "speak", "vorbesc", "talen:" ..., or as "Engelstalig"."""
    found: list[Field] = []
    for m in _LANGUAGE_TRIGGER_RE.finditer(src.folded):
        pos = m.end()
        while True:
            filler = _LANGUAGE_FILLER_RE.match(src.folded, pos)
            pos = filler.end() if filler else pos
            word = _LANGUAGE_WORD_RE.match(src.folded, pos)
            if not word:
                break
            found.append(src.field("language", _LANGUAGE_BY_FORM[word.group()], pos, word.end()))
            pos = word.end()
    for m in _LANGUAGE_SUFFIX_RE.finditer(src.folded):
        if _overlaps(m.start(), m.end(), _spans(found), src.name):
            continue
        for word in _LANGUAGE_WORD_RE.finditer(src.folded, m.start(), m.end("list")):
            if word.start() == m.start() or not src.folded[word.start() - 1].isalpha():
                code = _LANGUAGE_BY_FORM[word.group()]
                found.append(src.field("language", code, word.start(), word.end()))
    return sorted(found, key=lambda f: f.start)


def _is_nationality(src: _Source, m: re.Match[str]) -> bool:
    if _SERVICE_FOLLOWS_RE.match(src.folded, m.end()):
        return False  # "Thai massage", "French kiss", "Engelse humor"
    if _squash(m.group()) in _DIACRITIC_ONLY_NATIONALITY:
        return not src.raw[m.start() : m.end()].isascii()
    if _squash(m.group()) in _AMBIGUOUS_NATIONALITY:
        return bool(_PERSON_FOLLOWS_RE.match(src.folded, m.end()))
    return True


def _find_origin_places(src: _Source) -> Iterator[Field]:
    """Romanian and Moldovan towns named as an origin: "din Iași", "uit Boekarest"."""
    places = _origin_places()
    for lead in _ORIGIN_LEAD_RE.finditer(src.folded):
        words = _ORIGIN_WORDS_RE.match(src.folded, lead.end())
        if not words:
            continue
        first = words.group().split()[0].split("-")[0]
        for text in (words.group(), first):
            if text in places:
                end = lead.end() + len(text)
                yield src.field("nationality", places[text], lead.end(), end)
                break


def _find_nationalities(src: _Source, languages: list[Field]) -> list[Field]:
    taken = _spans(languages)
    found = [
        src.field("nationality", _NATIONALITY_BY_FORM[_squash(m.group())], m.start(), m.end())
        for m in _NATIONALITY_RE.finditer(src.folded)
        if not _overlaps(m.start(), m.end(), taken, src.name) and _is_nationality(src, m)
    ]
    for origin in _find_origin_places(src):
        if not _overlaps(origin.start, origin.end, _spans(found), src.name):
            found.append(origin)
    return sorted(found, key=lambda f: f.start)


# --------------------------------------------------------------------------- movement


def _find_movement(src: _Source) -> list[Field]:
    return [
        src.field("movement", m.lastgroup, m.start(), m.end())
        for m in _MOVEMENT_RE.finditer(src.folded)
        if m.lastgroup
    ]


# --------------------------------------------------------------------------- prices


def _amount(text: str) -> int:
    digits = re.match(r"\d{1,3}(?:\.\d{3})+(?!\d)|\d+", text)
    if digits is None:
        raise ValueError(f"price amount {text!r} does not start with digits: fix _AMOUNT")
    return int(digits.group().replace(".", ""))


def _duration_unit(text: str) -> str | None:
    """A duration as written ("1 uur", "half uur", "30min", "hele nacht") as "<n>min" or "night".

    None when the duration is implausible for a booking ("20 uur" is a clock time).
    """
    t = _squash(text)
    if re.search(r"nacht|night|noapte", t):
        return "night"
    if re.search(r"kwartier|quarter|sfert", t):
        return "15min"
    if "anderhalf" in t:
        return "90min"
    if re.search(r"half|1/2|jumatate", t):
        return "30min"
    m = _DURATION_PARTS_RE.match(t)
    if not m:
        return "60min"  # "uur", "een uur", "per hour"
    number = float(m.group("n").replace(",", "."))
    if m.group("unit").startswith("m"):
        return f"{int(number)}min" if 10 <= number <= 240 else None
    return f"{int(number * 60)}min" if 0.5 <= number <= 12 else None


def _price_of(src: _Source, m: re.Match[str]) -> tuple[Field, int, str] | None:
    group = next(g for g in _AMOUNT_GROUPS if m.group(g))
    amount = _amount(m.group(group))
    if not MIN_PRICE_EUR <= amount <= MAX_PRICE_EUR or _PAY_PERIOD_RE.match(src.folded, m.end()):
        return None
    duration = next((m.group(g) for g in _DURATION_GROUPS if m.group(g)), None)
    unit = _duration_unit(duration) if duration else ""
    start = m.start()
    if m.group("d1") and _CLOCK_BEFORE_RE.search(src.folded, max(0, start - 12), start):
        unit = None  # "vanaf 20 uur 150 euro": a clock time, not a duration
    if unit is None:
        if not _CURRENCY_RE.search(m.group()):
            return None
        unit = ""
        if m.group("d1"):
            start = m.start(group)
    value = f"{amount}/{unit}" if unit else str(amount)
    return src.field("price", value, start, m.end()), amount, unit


def _find_prices(src: _Source, taken: list[_Span]) -> list[tuple[Field, int, str]]:
    found: list[tuple[Field, int, str]] = []
    for m in _PRICE_RE.finditer(src.folded):
        if not _overlaps(m.start(), m.end(), taken, src.name) and (price := _price_of(src, m)):
            found.append(price)
    return found


# --------------------------------------------------------------------------- posting date


def _year(text: str | None, month: int, day: int, observed_on: date | None) -> int | None:
    if text:
        year = int(text)
        return year + 2000 if year < 100 else year
    if observed_on is None:
        return None
    # Without a year: the latest such date not after the day of observation.
    try:
        if date(observed_on.year, month, day) > observed_on + timedelta(days=1):
            return observed_on.year - 1
    except ValueError:
        return None
    return observed_on.year


def _calendar_date(m: re.Match[str], observed_on: date | None) -> date | None:
    if m.group("iy"):
        year: int | None = int(m["iy"])
        month, day = int(m["im"]), int(m["id"])
    elif m.group("dd"):
        day, month = int(m["dd"]), int(m["dm"])
        if month > 12 >= day:  # "11/23/2026": month first
            day, month = month, day
        year = _year(m["dy"], month, day, observed_on)
    else:
        day = int(m["td"] or m["ud"])
        month = _MONTHS[m["tm"] or m["um"]]
        year = _year(m["ty"] or m["uy"], month, day, observed_on)
    if year is None:
        return None
    try:
        return date(year, month, day)
    except ValueError:
        return None


def _relative_date(m: re.Match[str], observed_on: date | None) -> date | None:
    if observed_on is None:
        return None
    if m.group("rel"):
        return observed_on - timedelta(days=_RELATIVE_DAYS[m["rel"]])
    count_text = m["an"] or m["rn"]
    count = 1 if count_text in _ONE else int(count_text)
    unit = m["au"] or m["ru"]
    if unit.startswith(("dag", "day", "zi")):
        return observed_on - timedelta(days=count)
    if unit.startswith(("wee", "sapt")):
        return observed_on - timedelta(weeks=count)
    return observed_on  # hours, minutes or seconds ago: the day of observation


def _date_of(m: re.Match[str], observed_on: date | None) -> date | None:
    if m.group("rel") or m.group("an") or m.group("rn"):
        when = _relative_date(m, observed_on)
    else:
        when = _calendar_date(m, observed_on)
    if when is None or when.year < 2000:
        return None
    if observed_on is not None and when > observed_on + timedelta(days=1):
        return None  # posted after it was seen: a typo, or a date of something else
    return when


def _find_posted(src: _Source, observed_on: date | None, pattern: re.Pattern[str]) -> list[Field]:
    found: list[Field] = []
    for m in pattern.finditer(src.folded):
        when = _date_of(m, observed_on)
        if when is not None:
            found.append(src.field("posted_on", when.isoformat(), m.start(), m.end()))
    return found


def _posted_field(raw: str | None, observed_on: date | None) -> list[Field]:
    if not raw:
        return []
    return _find_posted(_Source.of("posted_at", raw), observed_on, _DATE_RE)[:1]


# --------------------------------------------------------------------------- contacts


def _find_emails(src: _Source) -> list[Field]:
    found: list[Field] = []
    for m in _EMAIL_RE.finditer(src.folded):
        domain = _OBFUSCATED_DOT_RE.sub(".", m.group("domain"))
        found.append(src.field("email", f"{m.group('local')}@{domain}", m.start(), m.end()))
    return found


def _handle(src: _Source, platform: str, name: str, start: int, end: int) -> Field | None:
    name = name.rstrip("._")
    if len(name) < 2 or name in _NOT_HANDLES or not re.search(r"[a-z]", name):
        return None  # "telegram: 0612..." is a phone number, for pipelines.phones
    return src.field("handle", f"{platform}:{name}", start, end)


def _find_handles(src: _Source, taken: list[_Span]) -> list[Field]:
    found: list[Field] = []
    for m in _HANDLE_URL_RE.finditer(src.folded):
        if m["name"] in _NOT_ACCOUNT_PATHS or _overlaps(m.start(), m.end(), taken, src.name):
            continue
        if handle := _handle(src, _HANDLE_HOSTS[m["host"]], m["name"], m.start(), m.end()):
            found.append(handle)
    for m in _HANDLE_LABEL_RE.finditer(src.folded):
        if not _overlaps(m.start(), m.end(), taken + _spans(found), src.name):
            platform = _PLATFORMS[_squash(m["platform"])]
            if handle := _handle(src, platform, m["name"], m.start(), m.end()):
                found.append(handle)
    for m in _BARE_HANDLE_RE.finditer(src.folded):
        if not _overlaps(m.start(), m.end(), taken + _spans(found), src.name):
            platform = _PLATFORMS[_squash(m["platform"])] if m["platform"] else "unknown"
            if handle := _handle(src, platform, m["name"], m.start(), m.end()):
                found.append(handle)
    return sorted(found, key=lambda f: f.start)


def _without_unknown_duplicates(handles: list[str]) -> list[str]:
    """Drop "unknown:alina" when the ad also names the platform of "alina"."""
    named = {h.split(":", 1)[1] for h in handles if not h.startswith("unknown:")}
    return [h for h in handles if not (h.startswith("unknown:") and h[8:] in named)]


def _normalised_url(text: str) -> str | None:
    """Scheme and host in lower case, "http://" when none is written; None for phone links."""
    url = text if re.match(r"https?://", text, re.IGNORECASE) else f"http://{text}"
    m = _URL_PARTS_RE.match(url)
    if m is None:
        return None
    host = m["host"].lower()
    if host.removeprefix("www.") in _PHONE_HOSTS or "." not in host:
        return None
    rest = "" if m["rest"] == "/" else m["rest"]
    return f"{m['scheme'].lower()}://{host}{rest}"


def _find_urls(src: _Source, taken: list[_Span]) -> list[Field]:
    found: list[Field] = []
    for m in _URL_RE.finditer(src.folded):
        start = m.start()
        end = start + len(src.raw[start : m.end()].rstrip(_URL_TRAILING))
        if end <= start or _overlaps(start, end, taken, src.name):
            continue
        raw = src.raw[start:end]
        if m["bare"] and any(ch.isupper() for ch in raw.split("/")[0].rsplit(".", 1)[-1]):
            continue  # "langs.Be": a missing space after a full stop, not an address
        if url := _normalised_url(raw):
            found.append(src.field("url", url, start, end))
    return found


# --------------------------------------------------------------------------- assembly


def extract_fields(
    title: str,
    text: str,
    *,
    nickname: str | None = None,
    age: str | None = None,
    posted_at: str | None = None,
    observed_on: date | None = None,
) -> AdFields:
    """Extract an ad's claims, each with its evidence (item field and offsets).

    ``nickname``, ``age`` and ``posted_at`` are the site's own fields and win over what the
    title and text say. ``observed_on`` is the day the ad was seen: relative posting dates
    ("gisteren", "posted 3 days ago") and dates without a year need it, and are left out
    without it.
    """
    sources = [_Source.of("title", title or ""), _Source.of("text", text or "")]
    emails = [f for s in sources for f in _find_emails(s)]
    handles = [f for s in sources for f in _find_handles(s, _spans(emails))]
    urls = [f for s in sources for f in _find_urls(s, _spans(emails + handles))]
    languages = [f for s in sources for f in _find_languages(s)]
    nationalities = [f for s in sources for f in _find_nationalities(s, languages)]
    movement = [f for s in sources for f in _find_movement(s)]
    posted = _posted_field(posted_at, observed_on) + [
        f for s in sources for f in _find_posted(s, observed_on, _POSTED_IN_TEXT_RE)
    ]
    prices = [p for s in sources for p in _find_prices(s, _spans(emails + handles + urls + posted))]
    text_ages = [f for s in sources for f in _find_ages(s, _spans(f for f, _, _ in prices))]
    ages = _age_field(age) + text_ages
    names = _nickname_field(nickname) + _find_nicknames(sources, text_ages)
    return AdFields(
        nickname=names[0].value if names else None,
        age=int(ages[0].value) if ages else None,
        nationalities=_unique(f.value for f in nationalities),
        languages=_unique(f.value for f in languages),
        prices=_unique((amount, unit) for _, amount, unit in prices),
        posted_on=date.fromisoformat(posted[0].value) if posted else None,
        movement=_unique(f.value for f in movement),
        emails=_unique(f.value for f in emails),
        handles=_without_unknown_duplicates(_unique(f.value for f in handles)),
        urls=_unique(f.value for f in urls),
        evidence=[
            *names,
            *ages,
            *nationalities,
            *languages,
            *(f for f, _, _ in prices),
            *posted,
            *movement,
            *emails,
            *handles,
            *urls,
        ],
    )


# --------------------------------------------------------------------------- pipeline


def observed_day(observed_at: str) -> date:
    """The sites' local calendar day of an ISO 8601 observation time."""
    moment = datetime.fromisoformat(observed_at)
    if moment.tzinfo is None:
        return moment.date()
    try:
        return moment.astimezone(ZoneInfo(SITE_TIME_ZONE)).date()
    except ZoneInfoNotFoundError:  # no time zone database: the timestamp's own offset
        return moment.date()


def _as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return " ".join(str(v) for v in value if v is not None)
    return str(value)


class FieldsPipeline:
    """Adds ``item["fields"]`` (``AdFields.as_dict()``) and counts ads per kind found.

    The stat ``lovitura/fields/<kind>`` counts the items in which at least one value of that
    kind was found. An unreadable ``observed_at`` is counted and recorded as the anomaly
    ``fields/bad-observed-at``; the item keeps its fields, without relative posting dates.
    """

    def __init__(self, crawler: Any = None) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> FieldsPipeline:
        return cls(crawler)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        adapter = ItemAdapter(item)
        if is_listing_only(adapter):
            return item  # seen on its listing only: no content to read, nothing to count
        fields = extract_fields(
            _as_text(adapter.get("title")) or "",
            _as_text(adapter.get("text")) or "",
            nickname=_as_text(adapter.get("nickname")),
            age=_as_text(adapter.get("age")),
            posted_at=_as_text(adapter.get("posted_at")),
            observed_on=self._observed_on(adapter),
        )
        adapter["fields"] = fields.as_dict()
        self._count(fields)
        logger.debug("fields of %s: %s", adapter.get("url"), fields)
        return item

    def _observed_on(self, adapter: ItemAdapter) -> date | None:
        observed_at = adapter.get("observed_at")
        if not observed_at:
            return None
        try:
            return observed_day(str(observed_at))
        except ValueError:
            anomaly = Anomaly(
                "fields",
                "bad-observed-at",
                url=adapter.get("url"),
                site=adapter.get("site"),
                site_ad_id=adapter.get("site_ad_id"),
                detail="observed_at is not ISO 8601: relative posting dates were left out",
            )
            note_anomaly(self.crawler, anomaly)
            return None

    def _count(self, fields: AdFields) -> None:
        stats = getattr(self.crawler, "stats", None)
        if stats is None:
            return
        for kind in dict.fromkeys(f.kind for f in fields.evidence):
            stats.inc_value(f"lovitura/fields/{kind}")
