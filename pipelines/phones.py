"""Find the phone numbers in an ad, however the ad obfuscates them, with offsets as evidence.

1. *Links*: ``tel:``/``sms:``/``callto:`` links and WhatsApp/Telegram links are read straight from
   the original text (attributes included), since the number in a link is machine-readable.
2. *Normalisation*: HTML tags, scripts and entities are stripped; emoji keycaps, full-width and
   other Unicode digits and digit words (Dutch, English, Romanian) become ASCII digits. The
   result keeps a map back to the original text, so every match points at what the ad showed.
3. *Candidates*: digit groups joined by phone-like separators (space, dot, dash, slash, brackets)
   form chains; the letters O/o, l and I count as digits inside them. From each group on, the
   longest valid number is taken, so neighbouring groups (a price, an hour) are glued on only
   when the whole still validates; a sentence end, a long run with a short tail ("06650759 70")
   and a code that runs on ("06-1293-7458-12") are not read as one number.
4. *Never-a-phone runs*: a valid candidate that is part of an IBAN, a VAT or KvK number, a
   reference, a date or opening hours is dropped; some of these validate (``09.00-18.00`` reads
   as the premium number 0900 1800).
5. *Validation*: phonenumbers must call the number valid for its country. A national number must
   carry its trunk prefix (``0`` in NL), so a bare 9-digit ad id never reads as a mobile number.
   Link numbers need only be *possible*: the link itself says that it is a phone, and newly
   issued ranges reach the metadata late.

The pipeline class applies this to the item fields and never logs a number above DEBUG.
"""

from __future__ import annotations

import bisect
import functools
import html
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple
from urllib.parse import unquote

import phonenumbers
from itemadapter import ItemAdapter
from phonenumbers import PhoneNumber

from lovitura_crawl.anomalies import Anomaly, note_anomaly
from lovitura_crawl.db.store import is_listing_only

logger = logging.getLogger(__name__)

# Longest digit string a candidate may have: 15 E.164 digits plus a two-digit "00" prefix.
_MAX_DIGITS = 17
_MIN_DIGITS = 6
# Letters that ads write for digits: Latin, Cyrillic and Greek O for zero, l and I for one.
_SOFT_DIGITS = {
    "O": "0",
    "o": "0",
    "\u041e": "0",
    "\u043e": "0",
    "\u039f": "0",
    "\u03bf": "0",
    "l": "1",
    "I": "1",
    "\u0406": "1",
}
_SOFT_LETTERS = "".join(_SOFT_DIGITS)
# A word of these letters alone may stand for digits ("O 6 12 ...", "oIO 456 7890"); a lone
# "I" is the English pronoun, so a word may not begin with I.
_WORD_OPENERS = "Oo\u041e\u043e\u039f\u03bfl"
# ... but a lone small o may not end a number: "bel 061234567 o dată" is Romanian for "call
# ... once", not a tenth digit.
_LONE_SMALL = frozenset("o\u043e\u03bf")


@dataclass(frozen=True)
class PhoneMatch:
    """One phone number found in a text; ``start``/``end`` index the original text."""

    e164: str
    start: int
    end: int
    raw: str  # text[start:end]
    method: str  # "tel-link", "whatsapp-link", "telegram-link", or "text[+decodings]"


# --- links ----------------------------------------------------------------------------------------

_LINKS = re.compile(
    r"(?=[tcswa])(?:"  # the first letters of the alternatives, checked first for speed
    r"(?:\b(?:tel|callto|sms):(?://)?(?P<tel>\+?[0-9][0-9 ().\-]{3,30}[0-9]|%2B[0-9%A-F.\-]{5,40}))"
    r"|(?:\bwa\.me/(?P<wa>\+?[0-9]{6,17})\b)"
    r"|(?:\b(?:api\.whatsapp\.com|web\.whatsapp\.com|whatsapp:/)/send/?\?"
    r"(?:[^\s\"'<>]*?&(?:amp;)?)?phone=(?P<wa_api>(?:\+|%2B)?[0-9]{6,17})\b)"
    r"|(?:\bt\.me/\+(?P<tg>[0-9]{6,17})\b))",
    re.IGNORECASE,
)
_LINK_METHODS = {"tel": "tel-link", "wa": "whatsapp-link", "wa_api": "whatsapp-link"}


def _link_candidate(kind: str, value: str) -> str:
    """The dialable string inside a link; WhatsApp and Telegram numbers are always +CC."""
    value = unquote(value)
    if kind == "tel":
        return re.sub(r"[^0-9+]", "", value)
    return value if value.startswith("+") else "+" + value


_IN_ATTRIBUTE = re.compile(r"=\s*[\"']?$")


def _find_links(text: str, region: str) -> list[PhoneMatch]:
    found = []
    for m in _LINKS.finditer(text):
        kind = m.lastgroup
        if kind is None:
            continue
        start, end = m.span(kind)
        # "Tel:06..." in running text is a label, not a link: no leniency there.
        lenient = kind != "tel" or _IN_ATTRIBUTE.search(text, max(0, m.start() - 8), m.start())
        candidate = _link_candidate(kind, m.group(kind))
        e164 = _validate(candidate, region, lenient=bool(lenient))
        if e164 is not None:
            method = _LINK_METHODS.get(kind, "telegram-link")
            found.append(PhoneMatch(e164, start, end, text[start:end], method))
    return found


# --- normalisation --------------------------------------------------------------------------------

_DIGIT_WORDS: dict[str, str] = {
    # Dutch. Only single digits: pairs read as numbers ("twaalf", "vierendertig") are not decoded.
    "nul": "0",
    "een": "1",
    "één": "1",
    "eén": "1",
    "twee": "2",
    "drie": "3",
    "vier": "4",
    "vijf": "5",
    "zes": "6",
    "zeven": "7",
    "acht": "8",
    "negen": "9",
    # English
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    # Romanian (with and without diacritics, both cedilla and comma forms)
    "unu": "1",
    "doi": "2",
    "două": "2",
    "doua": "2",
    "trei": "3",
    "patru": "4",
    "cinci": "5",
    "șase": "6",
    "şase": "6",
    "sase": "6",
    "șapte": "7",
    "şapte": "7",
    "sapte": "7",
    "opt": "8",
    "nouă": "9",
    "noua": "9",
}
_BLOCK_TAGS = (
    "br|p|div|li|ul|ol|tr|td|th|table|h[1-6]|section|article|header|footer|hr|dd|dt|dl|"
    "blockquote|pre|option|select|form|nav|main|aside"
)
# Scripts where Unicode has decimal digits (Arabic-Indic to Tibetan, Myanmar, Khmer, Mongolian,
# Limbu ...), circled and dingbat digits, full-width digits and plus, mathematical digits. Only
# characters that really have a digit value are decoded; the rest of these ranges stays as is.
_OTHER_DIGITS = (
    "\u0660-\u0fff\u1040-\u109f\u17e0-\u17e9\u1810-\u1819\u1946-\u19d9\u2460-\u24ff"
    "\u2776-\u2793\uff0b\uff10-\uff19\U0001d7ce-\U0001d7ff\U0001fbf0-\U0001fbf9"
)
_NOT_LETTER_AFTER = r"(?![^\W\d_])"


def _caseless(word: str) -> str:
    """``word`` as a pattern of [xX] classes: unlike re.IGNORECASE this keeps the scan fast."""
    return "".join(
        f"[{c.lower()}{c.upper()}]" if c.lower() != c.upper() else re.escape(c) for c in word
    )


def _first_letter_branches(words: Iterable[str]) -> str:
    """A pattern for any of ``words`` as a whole word, any case, grouped by first letter.

    Every branch opens with a character class, which the regex engine skips at a glance; a
    lookbehind or a group there would be tried at every position, and re.IGNORECASE would
    slow every class down. That is what keeps scanning a long ad cheap.
    """
    by_first: dict[str, list[str]] = {}
    for word in words:
        by_first.setdefault(word[0], []).append(word[1:])
    branches = []
    for first, rests in sorted(by_first.items()):
        rest = "|".join(_caseless(r) for r in sorted(rests, key=len, reverse=True))
        # The lookbehind sees the character before the first letter: no letter may stand there.
        branches.append(f"{_caseless(first)}(?<![^\\W\\d_].)(?:{rest}){_NOT_LETTER_AFTER}")
    return "|".join(branches)


_TOKENS = re.compile(
    r"<(?:!--.*?-->|(?i:script|style)\b[^>]*>.*?</(?i:script|style)\s*>|/?[a-zA-Z][^<>]{0,2000}>)"
    r"|&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[a-zA-Z][a-zA-Z0-9]{1,31});"
    r"|[0-9]\ufe0f?\u20e3"
    rf"|[{_OTHER_DIGITS}]"
    rf"|{_first_letter_branches(_DIGIT_WORDS)}",
    re.DOTALL,
)
_DROPPED = re.compile(r"<(?:script|style)\b", re.IGNORECASE)
_BLOCK = re.compile(rf"</?(?:{_BLOCK_TAGS})\b", re.IGNORECASE)


def _fold_digits(text: str) -> str:
    return "".join(str(d) if (d := unicodedata.digit(ch, None)) is not None else ch for ch in text)


def _decode(token: str) -> tuple[str, str] | None:
    """(replacement, kind of decoding) for a token, or None when it stays as written."""
    first = token[0]
    if first == "<":
        # An empty comment or span between digits hides a number, so inline markup and
        # comments separate like a space; blocks and scripts end the line.
        return ("\n" if _DROPPED.match(token) or _BLOCK.match(token) else " "), "markup"
    if first == "&":
        decoded = html.unescape(token)
        return (_fold_digits(decoded) or " ", "symbols") if decoded != token else None
    if token.endswith("\u20e3"):
        return first, "symbols"
    if len(token) == 1 and not first.isascii():
        if first == "\uff0b":
            return "+", "symbols"
        folded = _fold_digits(first)
        return (folded, "symbols") if folded != first else None
    return _DIGIT_WORDS[token.lower()], "words"


class _Normalised:
    """The normalised text, and the map from its positions back to the original text."""

    __slots__ = ("_kind", "_norm_start", "_orig_end", "_orig_start", "text")

    def __init__(self, original: str) -> None:
        parts: list[str] = []
        self._norm_start: list[int] = []
        self._orig_start: list[int] = []
        self._orig_end: list[int] = []
        self._kind: list[str | None] = []
        norm_pos = orig_pos = 0
        for m in _TOKENS.finditer(original):
            decoded = _decode(m.group())
            if decoded is None:
                continue
            piece, kind = decoded
            if m.start() > orig_pos:
                self._add(norm_pos, orig_pos, m.start(), None)
                parts.append(original[orig_pos : m.start()])
                norm_pos += m.start() - orig_pos
            self._add(norm_pos, m.start(), m.end(), kind)
            parts.append(piece)
            norm_pos += len(piece)
            orig_pos = m.end()
        if not self._kind:
            self.text = original
            return
        if orig_pos < len(original):
            self._add(norm_pos, orig_pos, len(original), None)
            parts.append(original[orig_pos:])
        self.text = "".join(parts)

    def _add(self, norm_start: int, orig_start: int, orig_end: int, kind: str | None) -> None:
        self._norm_start.append(norm_start)
        self._orig_start.append(orig_start)
        self._orig_end.append(orig_end)
        self._kind.append(kind)

    def _piece(self, i: int) -> int:
        return bisect.bisect_right(self._norm_start, i) - 1

    def orig_start(self, i: int) -> int:
        """Where the normalised character ``i`` starts in the original text."""
        if not self._kind:
            return i
        k = self._piece(i)
        if self._kind[k] is None:
            return self._orig_start[k] + i - self._norm_start[k]
        return self._orig_start[k]

    def orig_end(self, i: int) -> int:
        """Where the normalised character ``i`` ends in the original text."""
        if not self._kind:
            return i + 1
        k = self._piece(i)
        if self._kind[k] is None:
            return self._orig_start[k] + i - self._norm_start[k] + 1
        return self._orig_end[k]

    def is_word(self, i: int) -> bool:
        """True if normalised character ``i`` was written as a digit word."""
        return bool(self._kind) and self._kind[self._piece(i)] == "words"

    def decodings(self, start: int, end: int) -> set[str]:
        """The decodings (words, symbols, markup) used inside normalised span [start, end)."""
        if not self._kind or end <= start:
            return set()
        first, last = self._piece(start), self._piece(end - 1)
        return {kind for kind in self._kind[first : last + 1] if kind is not None}


# --- never-a-phone digit runs ---------------------------------------------------------------------

_REGISTER_WORDS = (
    "kvk",
    "k.v.k.",
    "k.v.k",
    "btw",
    "vat",
    "iban",
    "rsin",
    "ondernemingsnummer",
    "advertentie",
    "advertentienummer",
    "ref",
    "referentie",
    "ad id",
    "ad-id",
    "advert id",
    "listing id",
    "bsn",
    "order",
    "ordernummer",
    "factuur",
    "factuurnummer",
)
# Placed after a first digit: no digit, and no digit group (06-50-22-02-30), stands before it.
_NOT_DIGIT_BEFORE = "(?<![0-9].)(?<![0-9][-./:].)"
_END = r"(?![0-9]|[-.:/][0-9])"
_MASKS = re.compile(
    # IBAN, written in blocks of four or in one piece
    r"[A-Z](?<!\w.)[A-Z][0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"
    # EU VAT numbers (NL123456789B01, BE0123456789)
    r"|[A-Z](?<!\w.)[A-Z](?<=NL|BE|DE|RO|BG|HU|FR|AT|LU|PL|ES|IT)[0-9]{8,12}(?:B[0-9]{2})?\b"
    # a register or reference number after its keyword
    rf"|(?:{_first_letter_branches(_REGISTER_WORDS)})"
    r"(?:[\s.:#-]*(?:nr|nummer|no|number|id)\b)?[\s.:#-]*"
    r"(?:[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?|[A-Z]{0,2}[0-9][0-9A-Z.\-/]*)"
    # opening hours: 09.00-18.00, 21:00 tot 02:00, 10.30 uur
    rf"|[0-9]{_NOT_DIGIT_BEFORE}[0-9]?[.:h][0-5][0-9]\s*"
    r"(?:-|–|—|tot|t/m|to|till|until|până la|pana la)\s*"
    rf"[0-9]{{1,2}}[.:h][0-5][0-9]{_END}"
    rf"|[0-9]{_NOT_DIGIT_BEFORE}[0-9]?[.:][0-5][0-9]\s*(?:[uU](?:ur)?|[hH]|[aApP][mM])\b"
    # full dates: 03-11-2026, 3.11.26
    rf"|[0-9]{_NOT_DIGIT_BEFORE}[0-9]?([-/.])(?:0?[1-9]|1[0-2])\1(?:19|20)?[0-9]{{2}}{_END}",
)


# How far around a number to look for the never-a-phone run it may be part of: an IBAN with its
# spaces is at most 42 characters, a keyword and its number some 30.
_MASK_BEFORE = 48
_MASK_AFTER = 24


def _masked(text: str, start: int, end: int) -> bool:
    """True if ``text[start:end]`` overlaps a digit run that is never a phone number.

    Checked only for numbers that validated, which are few, rather than masking every text.
    """
    low = max(0, start - _MASK_BEFORE)
    high = min(len(text), end + _MASK_AFTER)
    return any(m.start() < end and start < m.end() for m in _MASKS.finditer(text, low, high))


# --- candidates -----------------------------------------------------------------------------------

# A run of digits and digit-like letters with at least one real digit, maybe after a plus sign;
# or a short word of only such letters ("O", "oIO"). Every branch opens with a literal or a
# class, so the engine skips other characters at a glance.
_GROUPS = re.compile(
    rf"\+ ?[{_SOFT_LETTERS}]*[0-9][0-9{_SOFT_LETTERS}]*"
    rf"|[0-9][0-9{_SOFT_LETTERS}]*"
    rf"|[{_SOFT_LETTERS}]+[0-9][0-9{_SOFT_LETTERS}]*"
    rf"|[{_WORD_OPENERS}](?<![^\W\d_].)[{_SOFT_LETTERS}]{{0,3}}{_NOT_LETTER_AFTER}"
)
_SOFT_TABLE = str.maketrans(_SOFT_DIGITS)
# What may stand between two digit groups of one number; never a line break.
# Emoji and pictographs count too: "0️⃣6️⃣📞1️⃣2️⃣..." splits a number to hide it.
_SEPARATOR = re.compile(
    r"[ \t\u00a0\u00ad\u2000-\u200d\u202f\u205f\u2060\u3000\ufeff._,*\-\u2010-\u2014\u2212/()"
    r"\[\]\u00b7\u2022\uff08\uff09\uff0c\uff0d\uff0e\uff0f\u2190-\u21ff\u2300-\u27bf\ufe0f"
    r"\U0001f000-\U0001faff]{1,4}"
)
_TIGHT = re.compile(r"\S+")  # a separator without spaces glues its groups into one token


class _Group(NamedTuple):
    """A run of digits (and digit-like letters) in the normalised text."""

    start: int  # body start, after any plus sign
    end: int
    digits: str  # body with letters O/o/l/I read as digits
    lead: int  # letters before the first real digit
    trail: int  # letters after the last real digit
    plus: int  # position of a "+" before the body, or -1
    soft_only: bool  # a word of only the letters O, o, l and I ("O", "lol", "oIO")
    may_end: bool  # a number may end with this group


def _group(m: re.Match[str]) -> _Group:
    written = m.group()
    start = m.start()
    plus = -1
    if written[0] == "+":
        plus = start
        skip = 2 if written[1] == " " else 1
        written, start = written[skip:], start + skip
    body = written.strip(_SOFT_LETTERS)
    digits = written.translate(_SOFT_TABLE)
    if not body:
        may_end = written not in _LONE_SMALL
        return _Group(start, m.end(), digits, 0, 0, -1, True, may_end)
    lead = len(written) - len(written.lstrip(_SOFT_LETTERS))
    trail = len(written) - len(written.rstrip(_SOFT_LETTERS))
    return _Group(start, m.end(), digits, lead, trail, plus, False, True)


_SENTENCE_END = re.compile(r"[.,][\s\u00a0]")
_LOOSE_MARKS = re.compile(r"[*\u00b7\u2022\u2190-\u21ff\u2300-\u27bf\U0001f000-\U0001faff]")


def _joins(text: str, end: int, start: int, after_word: Callable[[int], bool]) -> bool:
    """True if the groups ending at ``end`` and starting at ``start`` may be one number.

    Ads end sentences and list items between numbers: "Code 0665075. 70 min" or "... 06650759 *
    70 euro" must not become 0665075970. So a full stop or comma followed by a space ends the
    number (except between digit words: "zero six, two seven"), and stars, bullets and emoji
    only join digits they touch ("06*12*34", "0️⃣6️⃣📞1️⃣2️⃣").
    """
    if text[start] == "+" or _SEPARATOR.fullmatch(text, end, start) is None:
        return False
    if _SENTENCE_END.match(text, end) and not after_word(end - 1):
        return False
    separator = text[end:start]
    return not (_LOOSE_MARKS.search(separator) and not _TIGHT.fullmatch(separator))


def _chains(text: str, after_word: Callable[[int], bool]) -> Iterator[list[_Group]]:
    """Digit groups of ``text``, in chains of groups that may belong to one number.

    ``after_word(i)`` tells whether normalised character ``i`` was written as a digit word.
    Chains too short to hold a number (a price, an age) are dropped before any group is built.
    """
    chain: list[re.Match[str]] = []
    for m in _GROUPS.finditer(text):
        joins = chain and _joins(text, chain[-1].end(), m.start(), after_word)
        if chain and not joins:
            if _long_enough(chain):
                yield [_group(c) for c in chain]
            chain = []
        chain.append(m)
    if chain and _long_enough(chain):
        yield [_group(c) for c in chain]


def _long_enough(chain: list[re.Match[str]]) -> bool:
    return sum(m.end() - m.start() for m in chain) >= _MIN_DIGITS


class _Candidate(NamedTuple):
    candidate: str  # what phonenumbers parses: digits, maybe with a leading "+"
    start: int  # normalised span of the number as written
    end: int
    last: int  # index of the last group used


class _RegionRules(NamedTuple):
    """How a number without "+" must begin for us to read it as a phone number of a region."""

    dialled: tuple[str, ...]  # trunk prefix ("0") and international prefix ("00")
    country_code: str  # "31": a bare 31612345678 is read as +31 6 12345678
    anything: bool  # no trunk prefix in this region (Italy ...): no telling first digits
    idd: str | None  # the international prefix, when it is plain digits
    trunk: str | None  # the trunk prefix, when dropping it is all national parsing does


def _simple_national_parsing(metadata: Any) -> bool:
    """True if reading a national number of this metadata only means dropping the trunk prefix.

    Not so where phonenumbers rewrites national numbers (Argentina's 15, Mexico's 1, carrier
    codes in Brazil ...): those numbers always go through phonenumbers.parse.
    """
    parsing = metadata.national_prefix_for_parsing
    return metadata.national_prefix_transform_rule is None and parsing in (
        None,
        metadata.national_prefix,
    )


@functools.lru_cache(maxsize=64)
def _rules(region: str) -> _RegionRules:
    metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if metadata is None:
        raise ValueError(
            f"unknown phone region {region!r}; use a two-letter ISO 3166 code such as 'NL'"
        )
    country_code = str(metadata.country_code)
    idd = metadata.international_prefix
    idd = idd if idd and idd.isdigit() else None
    if not metadata.national_prefix:
        return _RegionRules((), country_code, True, idd, None)
    dialled = (metadata.national_prefix, idd) if idd else (metadata.national_prefix,)
    trunk = metadata.national_prefix if _simple_national_parsing(metadata) else None
    return _RegionRules(dialled, country_code, False, idd, trunk)


def _starts(group: _Group) -> Iterator[tuple[str, int]]:
    """Ways a number can begin at ``group``: (its first digits, normalised start)."""
    if group.soft_only:
        # Only a trunk zero ("O 6 12 ...", "oIO 456 7890") may open a number with letters alone;
        # "I" and "lol" are words.
        if group.digits.startswith("0"):
            yield group.digits, group.start
        return
    if group.plus >= 0:
        yield "+" + group.digits, group.plus
    yield group.digits, group.start
    if group.lead:
        yield group.digits[group.lead :], group.start + group.lead


def _opening(digits: str, chain: list[_Group], first: int, rules: _RegionRules) -> str | None:
    """How a number beginning with ``digits`` at group ``first`` is dialled, or None if it can't be.

    "plus", "dialled" (trunk or international prefix) or "country" (bare own country code).
    """
    if digits.startswith("+"):
        return "plus"
    if rules.anything:
        return "dialled"
    head, following = digits, first + 1
    while len(head) < 4 and following < len(chain):
        head += chain[following].digits
        following += 1
    if head.startswith(rules.dialled):
        return "dialled"
    if head.startswith(rules.country_code):
        return "country"
    return None


def _ends(chain: list[_Group], first: int, digits: str, start: int) -> Iterator[_Candidate]:
    """Candidates of a possible length from ``digits`` at ``start`` on, the longest first."""
    plus = 1 if digits.startswith("+") else 0
    joined = [digits]
    for following in range(first + 1, len(chain)):
        if len(joined[-1]) - plus - chain[following - 1].trail > _MAX_DIGITS:
            break
        joined.append(joined[-1] + chain[following].digits)
    for offset in range(len(joined) - 1, -1, -1):
        last = first + offset
        group, written = chain[last], joined[offset]
        if group.may_end and _MIN_DIGITS <= len(written) - plus <= _MAX_DIGITS:
            yield _Candidate(written, start, group.end, last)
        if group.trail and group.end - group.trail > start:
            trimmed = written[: -group.trail]
            if _MIN_DIGITS <= len(trimmed) - plus <= _MAX_DIGITS:
                yield _Candidate(trimmed, start, group.end - group.trail, last)


# --- validation -----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _country_trunk(country_code: int) -> str | None:
    """The trunk prefix of a country code ("" if none), or None if parse() rewrites numbers."""
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None or not _simple_national_parsing(metadata):
        return None
    return metadata.national_prefix or ""


def _significant(country_code: int, national: str) -> PhoneNumber | None:
    trunk = _country_trunk(country_code)
    # A leading zero, or a trunk prefix written after the country code (+31 (0)6, +7 8...), is
    # for parse() to judge.
    if trunk is None or not national or national[0] == "0":
        return None
    if trunk and national.startswith(trunk):
        return None
    return PhoneNumber(country_code=country_code, national_number=int(national))


def _international(digits: str) -> PhoneNumber | None:
    """+CC followed by the national significant number; country codes are prefix-free."""
    if not digits or digits[0] == "0":
        return None
    for size in (1, 2, 3):
        code = int(digits[:size])
        if code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE:
            return _significant(code, digits[size:])
    return None


def _plain_reading(candidate: str, rules: _RegionRules) -> PhoneNumber | None:
    """The number a digit string plainly stands for, or None when only parse() can tell.

    parse() spends most of its time on what a digit string does not need (finding the number in
    free text, letters, extensions). The plain reading covers "+CC...", "00CC..." and trunk "0..."
    where nothing gets rewritten; whatever it cannot read, or reads as invalid in a way parse()
    might still save (a trunk zero after the country code, as in +31 (0)6), goes to parse().
    """
    if candidate.startswith("+"):
        return _international(candidate[1:])
    if rules.idd and candidate.startswith(rules.idd):
        return _international(candidate[len(rules.idd) :])
    if rules.trunk and candidate.startswith(rules.trunk):
        return _significant(int(rules.country_code), candidate[len(rules.trunk) :])
    return None


def _split_off_tail(cand: _Candidate, first_digits: int) -> bool:
    """True for a long first group with a short tail: "06650759 70", "065617522 1".

    Nobody writes 06 12345678 as 061234567 8; a run of seven or more digits followed by one to
    three more is a code or a short number next to a price or an hour.
    """
    head = first_digits - cand.candidate.startswith("+")
    tail = len(cand.candidate) - first_digits
    return head >= 7 and 0 < tail <= 3


@functools.lru_cache(maxsize=1 << 16)
def _validate(candidate: str, region: str, lenient: bool = False) -> str | None:
    """E.164 of ``candidate`` read in ``region`` if phonenumbers accepts it, else None."""
    number = None if lenient else _plain_reading(candidate, _rules(region))
    if number is None:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            return None
    ok = phonenumbers.is_valid_number(number)
    if not ok and lenient:
        ok = phonenumbers.is_possible_number(number)
    if not ok:
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _best_in_chain(
    text: str, chain: list[_Group], first: int, region: str
) -> tuple[_Candidate, str] | None:
    """The longest valid number starting at group ``first`` of ``chain``, if any.

    Known weakness: where number lengths vary (Germany, Austria), a short group right after a
    number ("+49 30 1234567 8 uur") can be glued on if the longer number also validates.
    """
    rules = _rules(region)
    for digits, start in _starts(chain[first]):
        opening = _opening(digits, chain, first, rules)
        if opening is None:
            continue
        for cand in _ends(chain, first, digits, start):
            if _split_off_tail(cand, len(digits)):
                continue
            e164 = _validate(cand.candidate, region)
            if e164 is None or _masked(text, cand.start, cand.end):
                continue
            # A bare 31... may be read as +31; a bare 40... must not become a Romanian number.
            if opening == "country" and not e164.startswith("+" + rules.country_code):
                continue
            return cand, e164
    return None


def _runs_on(text: str, chain: list[_Group], cand: _Candidate, region: str) -> bool:
    """True if the digits go on after ``cand`` within one token that is no number of its own.

    "06-1293-7458-12" holds the valid 06-12937458 but is one longer code; "0612937458/0684716293"
    is two numbers, and "06 12937458 24/7" a number and the hours.
    """
    following = cand.last + 1
    if following >= len(chain) or cand.end != chain[cand.last].end:
        return False
    separator = text[cand.end : chain[following].start]
    if not _TIGHT.fullmatch(separator):
        return False
    return _best_in_chain(text, chain, following, region) is None


def _chain_matches(text: str, chain: list[_Group], region: str) -> Iterator[tuple[_Candidate, str]]:
    first = 0
    while first < len(chain):
        best = _best_in_chain(text, chain, first, region)
        if best is None or _runs_on(text, chain, best[0], region):
            first += 1
            continue
        yield best
        first = best[0].last + 1


# --- putting it together --------------------------------------------------------------------------

_ANY_DIGIT = re.compile(r"[0-9]")


def _overlaps(start: int, end: int, spans: Iterable[tuple[int, int]]) -> bool:
    return any(start < s_end and s_start < end for s_start, s_end in spans)


def _text_method(norm: _Normalised, cand: _Candidate) -> str:
    """``text`` plus the decodings the number needed: letters, markup, symbols, words."""
    decodings = norm.decodings(cand.start, cand.end)
    if any(ch in _SOFT_DIGITS for ch in norm.text[cand.start : cand.end]):
        decodings.add("letters")
    return "+".join(["text", *sorted(decodings)])


def _find_in_text(text: str, region: str, taken: list[tuple[int, int]]) -> list[PhoneMatch]:
    norm = _Normalised(text)
    if _ANY_DIGIT.search(norm.text) is None:
        return []
    found = []
    for chain in _chains(norm.text, norm.is_word):
        for cand, e164 in _chain_matches(norm.text, chain, region):
            start, end = norm.orig_start(cand.start), norm.orig_end(cand.end - 1)
            if _overlaps(start, end, taken):
                continue
            method = _text_method(norm, cand)
            found.append(PhoneMatch(e164, start, end, text[start:end], method))
    return found


def find_phones(text: str, region: str = "NL") -> list[PhoneMatch]:
    """Every phone number in ``text`` (plain text or HTML), in order, with original offsets.

    ``region`` is the country a number without country code belongs to (the site's country).
    A number written twice gives two matches; use :func:`extract_phones` for the set.
    """
    region = region.upper()
    _rules(region)  # an unknown region fails here, with a message that says what to pass
    if not text:
        return []
    links = _find_links(text, region)
    # A link whose number did not validate is left to the text search: "tel:" may be followed
    # by two numbers, or by a national number the text search reads better.
    matches = links + _find_in_text(text, region, [(m.start, m.end) for m in links])
    matches.sort(key=lambda m: (m.start, m.end))
    return matches


def extract_phones(text: str, region: str = "NL") -> list[str]:
    """The E.164 numbers in ``text``, in order of first appearance, without duplicates."""
    return list(dict.fromkeys(m.e164 for m in find_phones(text, region)))


# --- the Scrapy pipeline --------------------------------------------------------------------------

_FIELDS = ("phone_text", "title", "text")


class PhonesPipeline:
    """Sets ``item["phones"]`` from the phone field, title and body text of every ad.

    Each entry is ``{"e164", "start", "end", "field", "method"}`` with offsets into that field;
    a number written twice gives two entries. The region of a site comes from the setting
    ``LOVITURA_SITE_REGIONS`` (site -> ISO country), default "NL". Stats: ``lovitura/phone/found``
    adds the distinct numbers of each ad, ``lovitura/phone/none`` counts ads without any, and
    ``lovitura/phone/invalid-field`` phone fields that held no valid number (also recorded as an
    anomaly).
    """

    def __init__(self, crawler: Any = None, regions: dict[str, str] | None = None) -> None:
        self.crawler = crawler
        self.regions = {site: region.upper() for site, region in (regions or {}).items()}
        for site, region in self.regions.items():
            try:
                _rules(region)
            except ValueError as exc:
                raise ValueError(f"LOVITURA_SITE_REGIONS[{site!r}]: {exc}") from exc

    @classmethod
    def from_crawler(cls, crawler: Any) -> PhonesPipeline:
        regions = crawler.settings.getdict("LOVITURA_SITE_REGIONS", {})
        return cls(crawler, regions)

    def process_item(self, item: Any, spider: Any = None) -> Any:
        adapter = ItemAdapter(item)
        if is_listing_only(adapter):
            return item  # seen on its listing only: no content to read, nothing to count
        region = self.regions.get(adapter.get("site") or "", "NL")
        phones: list[dict[str, Any]] = []
        for name in _FIELDS:
            value = adapter.get(name)
            if not value:
                continue
            matches = find_phones(str(value), region)
            if name == "phone_text" and not matches:
                self._note_invalid_field(adapter)
            phones.extend(_entry(m, name) for m in matches)
        adapter["phones"] = phones
        self._count(phones)
        logger.debug("phones in %s: %s", adapter.get("url"), [p["e164"] for p in phones])
        return item

    def _count(self, phones: list[dict[str, Any]]) -> None:
        stats = getattr(self.crawler, "stats", None)
        if stats is None:
            return
        if phones:
            stats.inc_value("lovitura/phone/found", len({p["e164"] for p in phones}))
        else:
            stats.inc_value("lovitura/phone/none")

    def _note_invalid_field(self, adapter: ItemAdapter) -> None:
        note_anomaly(
            self.crawler,
            Anomaly(
                "phone",
                "invalid-field",
                url=adapter.get("url"),
                site=adapter.get("site"),
                site_ad_id=adapter.get("site_ad_id"),
                detail="the phone field holds no valid phone number",
            ),
        )


def _entry(match: PhoneMatch, field: str) -> dict[str, Any]:
    return {
        "e164": match.e164,
        "start": match.start,
        "end": match.end,
        "field": field,
        "method": match.method,
    }
