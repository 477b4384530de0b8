"""Tests of pipelines.fields: precision and recall per field kind on hand-labelled ads, offsets,
the documented decisions, and the item pipeline.

The labelled ads are in tests/data/fields.jsonl, one JSON object per line:

    {"id": "nl-001", "lang": "nl", "split": "dev" | "heldout" | "heldout2",
     "observed_on": "2026-11-05", "title": ..., "text": ...,
     "nickname"?, "age"?, "posted_at"?      (the site's own fields, when the ad has them)
     "expect": {"nickname", "age", "nationalities", "languages", "prices": [[euros, unit]],
                "posted_on", "movement", "emails", "handles", "urls"},
     "cues": [[kind, item field, exact text of the evidence], ...]}

Every "expect" is a complete label: an empty list claims the ad has no such value. Print the
figures per kind and split with ``.venv/bin/python tests/test_fields.py``.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from scrapy.utils.test import get_crawler

from lovitura_crawl.items import AdItem
from pipelines.fields import (
    KINDS,
    MOVEMENT_KINDS,
    AdFields,
    FieldsPipeline,
    extract_fields,
    fold,
    observed_day,
)

CORPUS = Path(__file__).parent / "data" / "fields.jsonl"
SCALAR_KINDS = {"nickname": "nickname", "age": "age", "posted_on": "posted_on"}
LIST_KINDS = {
    "nationality": "nationalities",
    "language": "languages",
    "price": "prices",
    "movement": "movement",
    "email": "emails",
    "handle": "handles",
    "url": "urls",
}
# Minimum precision and recall per kind over the whole corpus.
THRESHOLDS = {kind: (0.95, 0.95) for kind in KINDS}


# --------------------------------------------------------------------------- corpus scoring


@cache
def corpus() -> tuple[dict[str, Any], ...]:
    with CORPUS.open(encoding="utf-8") as lines:
        return tuple(json.loads(line) for line in lines if line.strip())


def extract(ad: dict[str, Any]) -> AdFields:
    return extract_fields(
        ad["title"],
        ad["text"],
        nickname=ad.get("nickname"),
        age=ad.get("age"),
        posted_at=ad.get("posted_at"),
        observed_on=date.fromisoformat(ad["observed_on"]),
    )


@dataclass
class Score:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def _comparable(kind: str, value: Any) -> Any:
    if kind == "nickname":
        return str(value).casefold()
    if kind == "price":
        return (value["amount_eur"], value["unit"]) if isinstance(value, dict) else tuple(value)
    return value


def score_ad(ad: dict[str, Any], scores: dict[str, Score]) -> list[str]:
    """Add the ad's counts to ``scores``; return a line per disagreement."""
    got = extract(ad).as_dict()
    want = ad["expect"]
    errors: list[str] = []
    for kind, key in SCALAR_KINDS.items():
        g, w = got[key], want[key]
        if g is not None and w is not None and _comparable(kind, g) == _comparable(kind, w):
            scores[kind].tp += 1
            continue
        scores[kind].fp += g is not None
        scores[kind].fn += w is not None
        if g != w:
            errors.append(f"{ad['id']} {kind}: got {g!r}, want {w!r}")
    for kind, key in LIST_KINDS.items():
        g_set = {_comparable(kind, v) for v in got[key]}
        w_set = {_comparable(kind, v) for v in want[key]}
        scores[kind].tp += len(g_set & w_set)
        scores[kind].fp += len(g_set - w_set)
        scores[kind].fn += len(w_set - g_set)
        if g_set != w_set:
            errors.append(f"{ad['id']} {kind}: extra {g_set - w_set}, missing {w_set - g_set}")
    return errors


@cache
def score_corpus(split: str | None = None) -> tuple[dict[str, Score], list[str]]:
    scores = {kind: Score() for kind in KINDS}
    errors: list[str] = []
    for ad in corpus():
        if split is None or ad["split"] == split:
            errors += score_ad(ad, scores)
    return scores, errors


# --------------------------------------------------------------------------- the corpus itself


def test_corpus_is_large_complete_and_covers_three_languages() -> None:
    ads = corpus()
    assert len(ads) >= 120
    assert len({ad["id"] for ad in ads}) == len(ads)
    per_language = Counter(ad["lang"] for ad in ads)
    assert set(per_language) == {"nl", "en", "ro"} and min(per_language.values()) >= 30
    keys = set(SCALAR_KINDS.values()) | set(LIST_KINDS.values())
    for ad in ads:
        assert set(ad["expect"]) == keys, ad["id"]
        assert set(ad["expect"]["movement"]) <= set(MOVEMENT_KINDS), ad["id"]


# --------------------------------------------------------------------------- precision and recall


@pytest.mark.parametrize("kind", KINDS)
def test_precision_and_recall_per_kind(kind: str) -> None:
    scores, errors = score_corpus()
    min_precision, min_recall = THRESHOLDS[kind]
    mine = "\n".join(e for e in errors if f" {kind}:" in e)
    assert scores[kind].precision >= min_precision, mine
    assert scores[kind].recall >= min_recall, mine


# --------------------------------------------------------------------------- offsets


def _source_text(ad: dict[str, Any], source: str) -> str:
    return str(ad.get(source) or "")


def test_labelled_cues_are_found_with_their_exact_offsets() -> None:
    missing = []
    for ad in corpus():
        evidence = extract(ad).evidence
        found = {(f.kind, f.source, _source_text(ad, f.source)[f.start : f.end]) for f in evidence}
        missing += [(ad["id"], cue) for cue in ad["cues"] if tuple(cue) not in found]
    assert not missing


def _evidence_supports_value(kind: str, value: str, cue: str) -> bool:
    folded = fold(cue)
    if kind == "nickname":
        return folded == fold(value)
    if kind in ("age", "price"):
        amount = value.split("/")[0]
        return amount in cue.replace(".", "") or amount in cue
    if kind == "email":
        return value.split("@")[0] in folded
    if kind == "handle":
        return value.split(":", 1)[1] in folded
    if kind == "url":
        return value.split("://", 1)[1].split("/")[0] in folded
    return bool(cue.strip())


def test_every_evidence_slice_is_the_cue_of_its_value() -> None:
    wrong = []
    for ad in corpus():
        for f in extract(ad).evidence:
            text = _source_text(ad, f.source)
            cue = text[f.start : f.end]
            inside = 0 <= f.start < f.end <= len(text)
            if not inside or not _evidence_supports_value(f.kind, f.value, cue):
                wrong.append((ad["id"], f, cue))
    assert not wrong


def test_every_value_has_evidence() -> None:
    for ad in corpus():
        fields = extract(ad)
        values = {(f.kind, f.value) for f in fields.evidence}
        assert all(("nationality", v) in values for v in fields.nationalities)
        assert all(("handle", v) in values for v in fields.handles)
        assert all(("url", v) in values for v in fields.urls)
        if fields.age is not None:
            assert ("age", str(fields.age)) in values


# --------------------------------------------------------------------------- decisions


def test_years_of_experience_and_stays_are_not_ages() -> None:
    text = "Ik heb 23 jaar ervaring en woon al 15 jaar in Nederland. 20 years experience."
    assert extract_fields("", text).age is None
    assert extract_fields("", "Roxana, 23 jaar, ervaring met alles.").age == 23
    assert extract_fields("", "Am 15 ani de experiență.").age is None


def test_a_claimed_age_under_18_is_reported() -> None:
    assert extract_fields("Nieuw meisje 16 jaar", "").age == 16


def test_phone_numbers_are_left_to_the_phone_module() -> None:
    text = (
        "Bel 06-00123456 of +31 6 00 98 76 54, app 0031600112233. tel:+31600123456 "
        "https://wa.me/31600123456 whatsapp.com/send?phone=31600123456 telegram: 0600123456"
    )
    fields = extract_fields("Bel 06 00 12 34 56", text)
    assert (fields.prices, fields.age, fields.urls, fields.handles) == ([], None, [], [])


def test_a_price_is_not_an_age_and_an_age_is_not_a_price() -> None:
    fields = extract_fields("Alina 23 jaar", "Kwartier 50, half uur 80, 1 uur 23 euro extra")
    assert fields.age == 23
    assert (50, "15min") in fields.prices and (23, "60min") in fields.prices
    assert all(amount != 23 or unit for amount, unit in fields.prices)


def test_an_at_sign_in_an_email_is_not_a_handle() -> None:
    fields = extract_fields("", "Mail alina.demo@example.com of @alina_demo op insta")
    assert fields.emails == ["alina.demo@example.com"]
    assert fields.handles == ["instagram:alina_demo"]


def test_slang_needs_a_person_to_be_a_nationality() -> None:
    assert extract_fields("", "French kiss, Greek, Spanish, Thai massage").nationalities == []
    assert extract_fields("", "Spaanse dame en Thai girl").nationalities == ["ES", "TH"]


def test_regional_cues_use_un_m49_codes() -> None:
    fields = extract_fields("Latina", "Aziatische meid of Oost-Europese dame")
    assert fields.nationalities == ["419", "142", "151"]


@pytest.mark.parametrize(
    ("text", "price"),
    [
        ("150 euro", (150, "")),
        ("€150", (150, "")),
        ("€ 200,-", (200, "")),
        ("1 uur 150", (150, "60min")),
        ("100/30min", (100, "30min")),
        ("half uur 80", (80, "30min")),
        ("kwartier 50", (50, "15min")),
        ("anderhalf uur 200", (200, "90min")),
        ("1,5 uur 200", (200, "90min")),
        ("hele nacht 1.000 euro", (1000, "night")),
        ("150 per hour", (150, "60min")),
        ("250 euro pe oră", (250, "60min")),
        ("100 euro jumătate de oră", (100, "30min")),
        ("vanaf 20 uur 150 euro", (150, "")),
    ],
)
def test_price_units(text: str, price: tuple[int, str]) -> None:
    assert extract_fields("", text).prices == [price]


def test_clock_times_and_pay_are_not_prices() -> None:
    text = "Open van 10 uur tot 22 uur, om 20 uur 150? Verdien 1000 euro per week."
    assert extract_fields("", text).prices == []


@pytest.mark.parametrize(
    ("posted_at", "posted_on"),
    [
        ("3 november 2026", date(2026, 11, 3)),
        ("03-11-2026", date(2026, 11, 3)),
        ("2026-11-03T21:14:00+01:00", date(2026, 11, 3)),
        ("Nov 3, 2026", date(2026, 11, 3)),
        ("3 noiembrie 2026", date(2026, 11, 3)),
        ("3. März 2026", date(2026, 3, 3)),
        ("gisteren", date(2026, 11, 4)),
        ("vandaag 14:32", date(2026, 11, 5)),
        ("2 dagen geleden", date(2026, 11, 3)),
        ("posted 3 days ago", date(2026, 11, 2)),
        ("acum 2 zile", date(2026, 11, 3)),
        ("a week ago", date(2026, 10, 29)),
        ("30 oktober", date(2026, 10, 30)),
        ("30 december", date(2025, 12, 30)),
    ],
)
def test_posting_dates(posted_at: str, posted_on: date) -> None:
    fields = extract_fields("", "", posted_at=posted_at, observed_on=date(2026, 11, 5))
    assert fields.posted_on == posted_on


def test_relative_dates_need_the_day_of_observation() -> None:
    assert extract_fields("", "", posted_at="gisteren").posted_on is None
    assert extract_fields("", "", posted_at="3 november 2026").posted_on == date(2026, 11, 3)


def test_a_posting_date_after_the_observation_is_refused() -> None:
    fields = extract_fields("", "", posted_at="20-11-2026", observed_on=date(2026, 11, 5))
    assert fields.posted_on is None


def test_dates_in_text_need_a_posting_phrase() -> None:
    text = "Zaterdag 8 november ben ik er niet. Gisteren was ik in Utrecht."
    assert extract_fields("", text, observed_on=date(2026, 11, 5)).posted_on is None


def test_the_sites_own_fields_win_over_the_text() -> None:
    fields = extract_fields("Ik ben Bianca", "Bianca, 25 jaar", nickname=" Alina ", age="23")
    assert (fields.nickname, fields.age) == ("Alina", 23)
    first = fields.evidence[0]
    assert (first.source, first.start, first.end) == ("nickname", 1, 6)


def test_words_in_capitals_are_not_taken_for_names() -> None:
    title = "PRIVE ONTVANGST ALKMAAR DIVERSE DAMES AANWEZIG"
    assert extract_fields(title, "OPEN MA T/M ZA").nickname is None
    assert extract_fields("", "HOI IK BEN ALINA 22 JAAR").nickname == "Alina"


def test_codes_references_and_measurements_are_not_ages_names_or_prices() -> None:
    text = (
        "Code 46 0507. Ref 0618153773933. Maten: 86-69-83. Aanbetaling op NL53 ABNA 4640 3800 84."
    )
    fields = extract_fields("", text)
    assert (fields.age, fields.nickname, fields.prices) == (None, None, [])
    fields = extract_fields("", "Leeftijd: (44). Age: 23 ani.")
    assert (fields.age, fields.nickname) == (44, None)


def test_demo_world_ads_agree_with_the_generators_truth() -> None:
    """Text only, no site fields: what is found must be what the world wrote into the ad."""
    from fixtures.model import SITES
    from fixtures.world import build_world

    world = build_world(seed=7, scale="tiny")
    movement_by_stage = {
        "new": {"new_in_town", "this_week_only", "today_only"},
        "last": {"last_days", "few_days", "leaving_soon"},
        "other": set(),
    }
    checked = 0
    for day in range(world.days):
        for site in SITES:
            for shown in world.ads_on(site, day):
                ad = world.ad(site, shown.site_ad_id)
                face = world.persona(ad.victim if ad.kind == "scam" else ad.persona)
                fields = extract_fields(shown.title, shown.text)
                if fields.nickname is not None:
                    assert fields.nickname.casefold() in ad.nickname.casefold(), shown.text
                nationality = "419" if face.nationality == "LA" else face.nationality
                assert set(fields.nationalities) <= {nationality}, shown.text
                assert set(fields.languages) <= set(face.languages), shown.text
                version = ad.versions[ad.version_on(day)]
                stage = "other"
                if ad.kind in ("network", "scam"):
                    stage = "last" if version.last_days else "new" if version.new_in_town else stage
                assert set(fields.movement) <= movement_by_stage[stage], shown.text
                assert not (fields.emails or fields.handles or fields.urls), shown.text
                checked += 1
    assert checked > 100


def test_fold_keeps_one_character_per_character() -> None:
    for text in ("Sunt nouă în Iași, româncă", "İstanbul", "Oekraïense", "ŞŢşţȘȚșț"):
        assert len(fold(text)) == len(text)
    assert fold("Sunt NOUĂ în Iași") == "sunt noua in iasi"


def test_as_dict_is_json_serialisable() -> None:
    fields = extract_fields(
        "Nieuw in Zwolle: Alina 23",
        "1 uur 150. alina@example.com",
        posted_at="gisteren",
        observed_on=date(2026, 11, 5),
    )
    data = json.loads(json.dumps(fields.as_dict()))
    assert data["posted_on"] == "2026-11-04"
    assert data["prices"] == [{"amount_eur": 150, "unit": "60min"}]
    assert {e["kind"] for e in data["evidence"]} >= {"nickname", "age", "price", "email"}


# --------------------------------------------------------------------------- the pipeline


def _item(**fields: Any) -> AdItem:
    base = {
        "site": "roodlicht",
        "site_ad_id": "rl-1",
        "url": "http://127.0.0.1:8001/ad/rl-1",
        "observed_at": "2026-11-05T12:00:00+01:00",
    }
    return AdItem(**{**base, **fields})


def test_pipeline_adds_fields_and_counts_kinds() -> None:
    crawler = get_crawler()
    pipeline = FieldsPipeline.from_crawler(crawler)
    item = _item(title="Nieuw in Zwolle: Alina, 23", text="1 uur 150", posted_at="gisteren")
    out = pipeline.process_item(item)
    assert out["fields"]["posted_on"] == "2026-11-04"
    assert out["fields"]["age"] == 23
    stats = crawler.stats.get_stats()
    assert stats["lovitura/fields/age"] == 1
    assert stats["lovitura/fields/movement"] == 1
    assert "lovitura/fields/email" not in stats


def test_pipeline_accepts_numbers_and_missing_fields() -> None:
    out = FieldsPipeline(None).process_item({"age": 24, "observed_at": "2026-11-05T10:00:00Z"})
    assert out["fields"]["age"] == 24


def test_pipeline_records_an_unreadable_observation_time() -> None:
    crawler = get_crawler()
    item = _item(observed_at="yesterday", posted_at="gisteren", title="Alina 23 jaar")
    out = FieldsPipeline.from_crawler(crawler).process_item(item)
    assert out["fields"]["posted_on"] is None and out["fields"]["age"] == 23
    assert crawler.stats.get_value("lovitura/fields/bad-observed-at") == 1


def test_observed_day_is_the_day_in_the_netherlands() -> None:
    assert observed_day("2026-11-04T23:30:00+00:00") == date(2026, 11, 5)
    assert observed_day("2026-11-05T00:30:00+01:00") == date(2026, 11, 5)


# --------------------------------------------------------------------------- report


def main() -> None:
    """Print precision and recall per kind for each split and for the whole corpus."""
    splits = [*sorted({ad["split"] for ad in corpus()}), None]
    for split in splits:
        scores, _ = score_corpus(split)
        n = sum(1 for ad in corpus() if split is None or ad["split"] == split)
        print(f"\n{split or 'all'} ({n} ads)")
        print(f"{'kind':12} {'tp':>4} {'fp':>3} {'fn':>3} {'precision':>9} {'recall':>6}")
        for kind, s in scores.items():
            print(f"{kind:12} {s.tp:4} {s.fp:3} {s.fn:3} {s.precision:9.3f} {s.recall:6.3f}")
    if "-v" in sys.argv:
        print("\n".join(["", *score_corpus()[1]]))


if __name__ == "__main__":
    main()
