"""Keyed pseudonyms and the key: stable, key-dependent, not a plain hash, loud when missing."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from lovitura_crawl.privacy.pseudonym import (
    KEY_ENV,
    KEY_FILE_ENV,
    PhoneNumberError,
    PseudonymKeyError,
    demo_key,
    ensure_key_file,
    is_pseudonym,
    key_id,
    load_key,
    normalise_phone,
    phone_query_pseudonym,
    pseudonymise,
    pseudonymise_phone,
)
from tests.privacy_data import KEY, OTHER_KEY

PHONE = "+31612345678"


def test_stable_with_one_key_and_different_with_another() -> None:
    first = pseudonymise_phone(PHONE, KEY)
    assert first == pseudonymise_phone(PHONE, KEY)
    assert first != pseudonymise_phone(PHONE, OTHER_KEY)
    assert first != pseudonymise_phone("+31612345679", KEY)
    assert first.startswith("ph_") and is_pseudonym(first)


def test_not_a_plain_hash_of_the_number() -> None:
    pseudonym = pseudonymise_phone(PHONE, KEY)
    digest = pseudonym.removeprefix("ph_")
    for plain in (
        hashlib.sha256(PHONE.encode()).hexdigest(),
        hashlib.md5(PHONE.encode()).hexdigest(),
    ):
        assert digest not in plain
    assert PHONE[1:] not in pseudonym


def test_kinds_never_share_a_pseudonym() -> None:
    assert (
        pseudonymise("phone", "x@example.org", KEY)[3:]
        != pseudonymise("email", "x@example.org", KEY)[3:]
    )


def test_phone_needs_e164() -> None:
    with pytest.raises(PhoneNumberError, match=r"E\.164"):
        pseudonymise_phone("0612345678", KEY)


@pytest.mark.parametrize(
    ("typed", "region", "e164"),
    [
        ("06-12345678", "NL", PHONE),
        ("+31 6 1234 5678", "NL", PHONE),
        ("0031612345678", "NL", PHONE),
        ("+32 470 12 34 56", "NL", "+32470123456"),
        ("0470 12 34 56", "BE", "+32470123456"),
    ],
)
def test_query_numbers_are_normalised(typed: str, region: str, e164: str) -> None:
    assert normalise_phone(typed, region) == e164
    assert phone_query_pseudonym(typed, KEY, region) == pseudonymise_phone(e164, KEY)


@pytest.mark.parametrize("typed", ["geen nummer", "06-123", ""])
def test_unreadable_query_numbers_are_refused(typed: str) -> None:
    with pytest.raises(PhoneNumberError, match="0612345678"):
        normalise_phone(typed)


def test_key_from_environment_variable() -> None:
    assert load_key(env={KEY_ENV: KEY.decode()}) == KEY


def test_key_file_wins_over_environment_key(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(OTHER_KEY + b"\n")
    path.chmod(0o600)
    assert load_key(env={KEY_FILE_ENV: str(path), KEY_ENV: KEY.decode()}) == OTHER_KEY
    assert load_key(path, env={}) == OTHER_KEY


def test_missing_key_names_both_variables() -> None:
    with pytest.raises(PseudonymKeyError) as info:
        load_key(env={})
    assert KEY_FILE_ENV in str(info.value) and KEY_ENV in str(info.value)


def test_short_key_is_refused() -> None:
    with pytest.raises(PseudonymKeyError, match="at least 32"):
        load_key(env={KEY_ENV: "kort"})


def test_key_file_readable_by_everyone_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(KEY)
    path.chmod(0o644)
    with pytest.raises(PseudonymKeyError, match="chmod 600"):
        load_key(path, env={})


def test_missing_key_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(PseudonymKeyError, match="does not exist"):
        load_key(tmp_path / "nope", env={})


def test_generated_key_file_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "key"
    key = ensure_key_file(path)
    assert len(key) == 64
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert ensure_key_file(path) == key
    assert demo_key(tmp_path) == demo_key(tmp_path) != key


def test_key_id_names_the_key_without_showing_it() -> None:
    assert key_id(KEY) != key_id(OTHER_KEY)
    assert len(key_id(KEY)) == 16 and key_id(KEY) not in KEY.hex()
