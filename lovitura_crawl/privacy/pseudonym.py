"""Keyed pseudonyms of direct identifiers, and the secret key they are made with.

A pseudonym is HMAC-SHA256 of the identifier under a secret key, shortened to 80 bits and
prefixed with its kind (``ph_`` for phone numbers). Without the key nobody can compute the
pseudonym of a guessed number, which is what makes it a pseudonym and not a plain hash: every
Dutch mobile number can be hashed in minutes. The key is read from a file
($LOVITURA_PSEUDONYM_KEY_FILE) or from $LOVITURA_PSEUDONYM_KEY and is never written to the
database or the repository.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

import phonenumbers

KEY_FILE_ENV = "LOVITURA_PSEUDONYM_KEY_FILE"
KEY_ENV = "LOVITURA_PSEUDONYM_KEY"
MIN_KEY_BYTES = 32
DIGEST_CHARS = 20  # 80 bits: no collision to expect below a trillion values
DEMO_KEY_NAME = "demo-pseudonym.key"

PREFIXES = {
    "phone": "ph_",
    "email": "em_",
    "handle": "hd_",
    "photo": "pf_",
    "text": "tx_",
}
OTHER_PREFIX = "id_"
PSEUDONYM_PATTERN = re.compile(rf"^[a-z]{{2}}_[0-9a-f]{{{DIGEST_CHARS}}}$")
MIN_NATIONAL_DIGITS = 7  # shorter "possible" numbers are service numbers, not a person's
E164_PATTERN = re.compile(r"^\+[1-9][0-9]{6,14}$")


class PseudonymKeyError(RuntimeError):
    """No usable pseudonym key: missing, too short, or readable by every user."""


class PhoneNumberError(ValueError):
    """A phone number given on the command line could not be read."""


def load_key(key_file: str | Path | None = None, env: Mapping[str, str] | None = None) -> bytes:
    """The pseudonym key: from ``key_file``, else $LOVITURA_PSEUDONYM_KEY_FILE, else
    $LOVITURA_PSEUDONYM_KEY. Raise :class:`PseudonymKeyError` saying what to set."""
    environ = os.environ if env is None else env
    path = key_file or environ.get(KEY_FILE_ENV)
    if path:
        return _read_key_file(Path(path))
    value = environ.get(KEY_ENV)
    if value:
        return _checked(value.strip().encode("utf-8"), f"${KEY_ENV}")
    raise PseudonymKeyError(
        f"no pseudonym key: set {KEY_FILE_ENV} to a file holding a secret of at least "
        f"{MIN_KEY_BYTES} bytes (create one with `python3 -c 'import secrets; "
        f"print(secrets.token_hex(32))' > FILE` and chmod 600 FILE), or set {KEY_ENV}"
    )


def _read_key_file(path: Path) -> bytes:
    try:
        mode = path.stat().st_mode
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise PseudonymKeyError(
            f"pseudonym key file {path} does not exist: check {KEY_FILE_ENV} or --key-file"
        ) from exc
    except PermissionError as exc:
        raise PseudonymKeyError(
            f"pseudonym key file {path} cannot be read by this user: ask the administrator "
            "for access (group read is enough)"
        ) from exc
    if mode & (stat.S_IROTH | stat.S_IWOTH):
        raise PseudonymKeyError(
            f"pseudonym key file {path} can be read or written by every user of this machine: "
            f"chmod 600 {path} (or 640 with a group of Lovitura's users)"
        )
    return _checked(data.strip(), str(path))


def _checked(key: bytes, source: str) -> bytes:
    if len(key) < MIN_KEY_BYTES:
        raise PseudonymKeyError(
            f"the pseudonym key in {source} has {len(key)} bytes; it needs at least "
            f"{MIN_KEY_BYTES} (e.g. 64 hex characters from secrets.token_hex(32))"
        )
    return key


def ensure_key_file(path: Path) -> bytes:
    """The key in ``path``, creating the file (mode 600, 256 random bits) if it is missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key_file(path)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return _read_key_file(path)


def demo_key(out_dir: Path) -> bytes:
    """The demo's own key, kept in its output folder: the demo needs no key configured."""
    return ensure_key_file(out_dir / DEMO_KEY_NAME)


def key_id(key: bytes) -> str:
    """A short public name of the key (not the key), so pseudonyms of two keys are told apart."""
    return hmac.new(key, b"lovitura key id", hashlib.sha256).hexdigest()[:16]


def pseudonymise(kind: str, value: str, key: bytes) -> str:
    """The pseudonym of ``value``; the kind is part of the input, so kinds never collide."""
    message = kind.encode("utf-8") + b"\x00" + value.encode("utf-8")
    digest = hmac.new(key, message, hashlib.sha256).hexdigest()
    return PREFIXES.get(kind, OTHER_PREFIX) + digest[:DIGEST_CHARS]


def pseudonymise_phone(e164: str, key: bytes) -> str:
    """The pseudonym of a phone number in E.164 form (``+31612345678``)."""
    if not E164_PATTERN.match(e164):
        raise PhoneNumberError(
            f"{e164!r} is not in E.164 form; use normalise_phone() first (e.g. +31612345678)"
        )
    return pseudonymise("phone", e164, key)


def is_pseudonym(value: str) -> bool:
    return bool(PSEUDONYM_PATTERN.match(value))


def normalise_phone(number: str, region: str = "NL") -> str:
    """A phone number as typed (``06-12345678``, ``+32 470 12 34 56``) in E.164 form."""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException as exc:
        raise PhoneNumberError(
            f"{number!r} is not a phone number: write it as 0612345678 or +31612345678"
        ) from exc
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    subscriber = phonenumbers.national_significant_number(parsed)
    if not phonenumbers.is_possible_number(parsed) or len(subscriber) < MIN_NATIONAL_DIGITS:
        raise PhoneNumberError(
            f"{number!r} has the wrong number of digits for a phone number of region "
            f"{region}: write it as 0612345678 or with its country code, +31612345678"
        )
    return e164


def phone_query_pseudonym(number: str, key: bytes, region: str = "NL") -> str:
    """The pseudonym to search for when an analyst asks about ``number``."""
    return pseudonymise_phone(normalise_phone(number, region), key)
