"""Phone extraction: recall and false numbers on the labelled corpus, the demo world's writer
round-tripping through the extractor, offsets, and the Scrapy pipeline."""

from __future__ import annotations

import json
import logging
import random
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import phonenumbers
import pytest
from scrapy.utils.test import get_crawler

from fixtures.phonetext import (
    LOOKALIKE_KINDS,
    STYLES,
    PhoneTextError,
    lookalike,
    write_phone,
)
from fixtures.world import build_world
from lovitura_crawl.items import AdItem, item_from_dict
from pipelines.phones import PhoneMatch, PhonesPipeline, extract_phones, find_phones

CORPUS = Path(__file__).parent / "data" / "phones.jsonl"
MIN_RECALL = 0.99
MIN_PRECISION_ON_POSITIVES = 0.99

# Made-up numbers in valid ranges, of the countries the demo world uses.
WORLD_NUMBERS = (
    "+31638274915",
    "+31652918374",
    "+31207943816",
    "+31297384192",
    "+31857382914",
    "+40723481957",
    "+37369482731",
    "+359887412935",
    "+36304827193",
    "+32470384192",
    "+4915148372915",
)


def _corpus() -> list[dict[str, Any]]:
    with CORPUS.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


CASES = _corpus()
POSITIVES = [case for case in CASES if case["expected"]]
NEGATIVES = [case for case in CASES if not case["expected"]]


def _recall_by_kind() -> dict[str, tuple[int, int]]:
    """kind -> (expected numbers found, expected numbers)."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for case in POSITIVES:
        found = set(extract_phones(case["text"], case["region"]))
        counts[case["kind"]][0] += len(found & set(case["expected"]))
        counts[case["kind"]][1] += len(case["expected"])
    return {kind: (hit, total) for kind, (hit, total) in counts.items()}


# --- the corpus itself --------------------------------------------------------------------------


def test_corpus_is_large_and_covers_every_style_and_lookalike_kind() -> None:
    kinds = {case["kind"] for case in CASES}
    assert len(CASES) >= 300
    assert set(STYLES) <= kinds, f"styles without cases: {set(STYLES) - kinds}"
    assert set(LOOKALIKE_KINDS) <= kinds, (
        f"look-alikes without cases: {set(LOOKALIKE_KINDS) - kinds}"
    )
    assert {"ad_nl", "ad_en", "ad_ro", "two_numbers", "hard_negative"} <= kinds


def test_corpus_labels_are_valid_e164_numbers() -> None:
    for case in POSITIVES:
        for e164 in case["expected"]:
            number = phonenumbers.parse(e164)
            assert phonenumbers.is_valid_number(number), (e164, case["text"])
            assert phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == e164


# --- recall and false numbers -------------------------------------------------------------------


def test_recall_per_kind_and_overall() -> None:
    recall = _recall_by_kind()
    low = {kind: hit / total for kind, (hit, total) in recall.items() if hit / total < MIN_RECALL}
    assert not low, f"kinds below recall {MIN_RECALL}: {low}"
    hits = sum(hit for hit, _ in recall.values())
    total = sum(total for _, total in recall.values())
    assert hits / total >= MIN_RECALL


def test_no_number_is_found_in_any_negative() -> None:
    false = {
        case["text"]: extract_phones(case["text"], case["region"])
        for case in NEGATIVES
        if extract_phones(case["text"], case["region"])
    }
    assert not false


def test_positives_hold_no_extra_numbers() -> None:
    found = extra = 0
    for case in POSITIVES:
        numbers = extract_phones(case["text"], case["region"])
        found += len(numbers)
        extra += len(set(numbers) - set(case["expected"]))
    assert found and 1 - extra / found >= MIN_PRECISION_ON_POSITIVES


def test_numbers_come_in_order_of_first_appearance_without_duplicates() -> None:
    text = "Tel 0618463927, whatsapp 0627384619, nogmaals: 0618463927"
    assert extract_phones(text) == ["+31618463927", "+31627384619"]
    assert [m.e164 for m in find_phones(text)] == ["+31618463927", "+31627384619", "+31618463927"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("€150 10:00-02:00 0638274915", ["+31638274915"]),
        ("0638274915 0652918374", ["+31638274915", "+31652918374"]),
        ("0638274915 23 jaar", ["+31638274915"]),
        ("1u 150 06 38274915 24/7", ["+31638274915"]),
        ("2026 0638274915", ["+31638274915"]),
        ("09.00-18.00", []),  # would read as the valid premium number 0900 1800
        ("0900 1800", ["+319001800"]),  # ... which it is when written like a number
        ("18+ 06 38274915", ["+31638274915"]),
    ],
)
def test_neighbouring_groups_are_not_glued_into_false_numbers(
    text: str, expected: list[str]
) -> None:
    assert extract_phones(text) == expected


def test_foreign_numbers_keep_their_country_and_region_sets_the_default() -> None:
    assert extract_phones("+40 723 481 957") == ["+40723481957"]
    assert extract_phones("0470 38 41 92", region="BE") == ["+32470384192"]
    assert extract_phones("0470 38 41 92", region="NL") == []
    # A bare number after the site's own country code reads as that country, never another.
    assert extract_phones("whatsapp 31638274915") == ["+31638274915"]
    assert extract_phones("whatsapp 40723481957") == []


def test_unknown_region_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="ISO 3166"):
        extract_phones("0638274915", region="XX")


def test_link_numbers_need_only_be_possible_but_text_numbers_valid() -> None:
    unallocated = "0698765432"  # right length, range not (yet) in use
    assert extract_phones(f'<a href="tel:{unallocated}">bel</a>') == ["+31698765432"]
    assert extract_phones(f"Tel:{unallocated}") == []
    assert extract_phones(unallocated) == []


def test_scripts_comments_and_attributes_other_than_links_are_not_read() -> None:
    html = (
        '<div data-id="0638274915"><script>x = "0652918374"</script>'
        "<!-- 0614739250 --><p>geen nummer</p></div>"
    )
    assert extract_phones(html) == []


# --- offsets and methods ------------------------------------------------------------------------


def _check_offsets(text: str, match: PhoneMatch, region: str) -> None:
    assert match.raw == text[match.start : match.end]
    if match.method.startswith("text"):
        # The span alone holds exactly the number, nothing more and nothing less.
        again = find_phones(match.raw, region)
        assert [(m.e164, m.start, m.end) for m in again] == [(match.e164, 0, len(match.raw))]
    else:
        national = str(phonenumbers.parse(match.e164).national_number)
        assert re.sub(r"[^0-9]", "", match.raw).endswith(national)


def test_offsets_point_at_the_number_in_the_original_text() -> None:
    for case in POSITIVES:
        for match in find_phones(case["text"], case["region"]):
            _check_offsets(case["text"], match, case["region"])


@pytest.mark.parametrize(
    ("text", "raw", "method"),
    [
        ("Bel 06-38274915 nu", "06-38274915", "text"),
        ("Bel +31 (0)6 38274915!", "+31 (0)6 38274915", "text"),
        ("bel O6 38274915", "O6 38274915", "text+letters"),
        ("belmij0638274915nu", "0638274915", "text"),
        ("hallo0638274915lol", "0638274915", "text"),
        ("0️⃣6️⃣3️⃣8️⃣2️⃣7️⃣4️⃣9️⃣1️⃣5️⃣ x", "0️⃣6️⃣3️⃣8️⃣2️⃣7️⃣4️⃣9️⃣1️⃣5️⃣", "text+symbols"),
        ("<b>06</b> 38274915", "06</b> 38274915", "text+markup"),
        (
            "bel nul zes drie acht twee zeven vier negen een vijf!",
            "nul zes drie acht twee zeven vier negen een vijf",
            "text+words",
        ),
        ('<a href="tel:+31638274915">x</a>', "+31638274915", "tel-link"),
        ("https://wa.me/31638274915?text=hoi", "31638274915", "whatsapp-link"),
    ],
)
def test_match_span_and_method(text: str, raw: str, method: str) -> None:
    (match,) = find_phones(text)
    assert (match.e164, match.raw, match.method) == ("+31638274915", raw, method)
    assert text.index(raw) == match.start


_FUZZ_PIECES = (
    *"0123456789",
    *"OolI+ .-/()*,:",
    "\n",
    "nul ",
    "zes ",
    "één",
    "șase",
    "<b>",
    "</p>",
    "<!--",
    "-->",
    "&#48;",
    "&nbsp;",
    "&amp",
    "0️⃣",
    "６",
    "💋",
    "tel:",
    "wa.me/",
    "KvK ",
    "NL91 ",
    "€",
    "uur",
)


def test_arbitrary_text_never_breaks_the_extractor() -> None:
    rng = random.Random(99)
    for _ in range(1500):
        text = "".join(rng.choice(_FUZZ_PIECES) for _ in range(rng.randint(0, 60)))
        region = rng.choice(("NL", "BE", "DE", "RO"))
        matches = find_phones(text, region)
        assert matches == sorted(matches, key=lambda m: (m.start, m.end))
        for match in matches:
            assert 0 <= match.start < match.end <= len(text)
            assert match.raw == text[match.start : match.end]
            assert phonenumbers.is_possible_number(phonenumbers.parse(match.e164))


# --- the demo world's writer round-trips through the extractor ---------------------------------


@pytest.mark.parametrize("style", STYLES)
def test_every_style_round_trips(style: str) -> None:
    rng = random.Random(f"round-trip-{style}")
    for e164 in WORLD_NUMBERS:
        for _ in range(12):
            text, used = write_phone(e164, rng, style)
            assert used == style
            assert extract_phones(text) == [e164], (style, text)


def test_writer_on_a_belgian_site_writes_belgian_numbers_nationally() -> None:
    rng = random.Random(5)
    for _ in range(40):
        text, style = write_phone("+32470384192", rng, region="BE")
        assert extract_phones(text, region="BE") == ["+32470384192"], (style, text)


def test_random_styles_round_trip_inside_ad_text() -> None:
    rng = random.Random(11)
    for _ in range(300):
        e164 = rng.choice(WORLD_NUMBERS)
        phone, style = write_phone(e164, rng)
        noise = [lookalike(rng)[0] for _ in range(3)]
        text = f"{noise[0]}. Nieuw in de stad! {noise[1]}, bel {phone} {noise[2]}"
        assert extract_phones(text) == [e164], (style, text)


@pytest.mark.parametrize("kind", LOOKALIKE_KINDS)
def test_lookalikes_are_never_read_as_numbers(kind: str) -> None:
    rng = random.Random(f"lookalike-{kind}")
    for _ in range(200):
        text, used = lookalike(rng, kind)
        assert used == kind
        assert extract_phones(text) == [], (kind, text)


def test_writer_is_deterministic_given_the_rng() -> None:
    first = [write_phone("+31638274915", random.Random(3)) for _ in range(3)]
    assert len(set(first)) == 1
    assert lookalike(random.Random(4)) == lookalike(random.Random(4))
    styles = {write_phone("+31638274915", random.Random(seed))[1] for seed in range(400)}
    assert styles == set(STYLES)


def test_writer_refuses_bad_input_with_a_reason() -> None:
    rng = random.Random(0)
    with pytest.raises(PhoneTextError, match=r"E\.164"):
        write_phone("06 38274915", rng)
    with pytest.raises(PhoneTextError, match="valid"):
        write_phone("+31673829146", rng)
    with pytest.raises(PhoneTextError, match="unknown phone style"):
        write_phone("+31638274915", rng, "smoke-signals")
    with pytest.raises(PhoneTextError, match="unknown look-alike"):
        lookalike(rng, "horoscope")


# --- the Scrapy pipeline ------------------------------------------------------------------------


def _pipeline(regions: dict[str, str] | None = None) -> tuple[PhonesPipeline, Any]:
    crawler = get_crawler(settings_dict={"LOVITURA_SITE_REGIONS": regions or {}})
    return PhonesPipeline.from_crawler(crawler), crawler


def _item(**fields: Any) -> AdItem:
    base = {
        "site": "roodlicht",
        "site_ad_id": "a1",
        "url": "http://127.0.0.1:8401/ad/a1",
        "observed_at": "2026-11-03T12:00:00+01:00",
    }
    return AdItem(**{**base, **fields})


def test_pipeline_reads_phone_field_title_and_text_with_offsets() -> None:
    pipeline, crawler = _pipeline()
    item = _item(
        phone_text="06-38274915",
        title="Nieuw! Bel 0652918374",
        text="Bel 06-38274915 of app +40 723 481 957.",
    )
    out = pipeline.process_item(item)
    assert out is item
    phones = item["phones"]
    assert [(p["field"], p["e164"]) for p in phones] == [
        ("phone_text", "+31638274915"),
        ("title", "+31652918374"),
        ("text", "+31638274915"),
        ("text", "+40723481957"),
    ]
    for entry in phones:
        assert set(entry) == {"e164", "start", "end", "field", "method"}
        assert extract_phones(item[entry["field"]][entry["start"] : entry["end"]]) == [
            entry["e164"]
        ]
    assert crawler.stats.get_value("lovitura/phone/found") == 3
    assert crawler.stats.get_value("lovitura/phone/none") is None


def test_pipeline_counts_ads_without_phone_and_records_invalid_phone_fields() -> None:
    pipeline, crawler = _pipeline()
    pipeline.process_item(_item(phone_text="toon nummer", text="Geen nummer, 150 euro"), None)
    pipeline.process_item(_item(text="ook niets"))
    assert crawler.stats.get_value("lovitura/phone/none") == 2
    assert crawler.stats.get_value("lovitura/phone/invalid-field") == 1
    (anomaly,) = crawler.lovitura_anomalies
    assert (anomaly.stage, anomaly.reason, anomaly.site_ad_id) == ("phone", "invalid-field", "a1")
    assert "toon" not in (anomaly.detail or "")


def test_pipeline_uses_the_region_of_the_site() -> None:
    pipeline, _ = _pipeline({"escortgids": "be"})
    item = pipeline.process_item(_item(site="escortgids", text="GSM 0470 38 41 92"))
    assert [p["e164"] for p in item["phones"]] == ["+32470384192"]
    nl_item = pipeline.process_item(_item(site="roodlicht", text="GSM 0470 38 41 92"))
    assert nl_item["phones"] == []


def test_pipeline_refuses_an_unknown_region_setting() -> None:
    with pytest.raises(ValueError, match="LOVITURA_SITE_REGIONS"):
        _pipeline({"prikbord": "Holland"})


def test_pipeline_never_logs_numbers_above_debug(caplog: pytest.LogCaptureFixture) -> None:
    pipeline, _ = _pipeline()
    with caplog.at_level(logging.INFO):
        pipeline.process_item(_item(phone_text="nothing", text="Bel 0638274915"))
    logged = " ".join(record.getMessage() for record in caplog.records)
    assert "38274915" not in logged


def test_pipeline_recovers_the_numbers_of_the_tiny_demo_world() -> None:
    """End to end: every observation of the demo world through the pipeline, against the truth."""
    world = build_world(seed=3, scale="tiny")
    truth = {(r["site"], r["site_ad_id"]): set(r["phones"].split()) for r in world.truth_ads()}
    pipeline, crawler = _pipeline()
    observations = 0
    for observation in world.iter_observations():
        item = pipeline.process_item(item_from_dict(observation))
        shown = truth[(observation["site"], observation["site_ad_id"])]
        found = {entry["e164"] for entry in item["phones"]}
        assert found <= shown, (found, shown)
        assert found or not shown, observation["site_ad_id"]
        observations += 1
    assert observations > 100
    assert crawler.stats.get_value("lovitura/phone/invalid-field") is None


def test_pipeline_works_without_a_crawler_on_plain_dicts() -> None:
    pipeline = PhonesPipeline()
    item = pipeline.process_item({"site": "prikbord", "phone_text": "geen", "text": "06 38274915"})
    assert [(p["field"], p["e164"]) for p in item["phones"]] == [("text", "+31638274915")]
