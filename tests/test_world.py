"""Tests of the demo world generator (fixtures.world) and its truth files (fixtures.truth)."""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import os
import re
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import date
from pathlib import Path

import phonenumbers
import pytest
from PIL import Image

from fixtures import photos as photo_maker
from fixtures.model import SITES
from fixtures.truth import write_truth
from fixtures.world import World, build_world
from fixtures.world_config import WorldConfigError
from fixtures.world_text import OBFUSCATED_PHONE_STYLES

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def demo() -> World:
    return build_world(seed=7, scale="demo")


@pytest.fixture(scope="module")
def demo_truth(demo: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    out = tmp_path_factory.mktemp("truth")
    write_truth(demo, out)
    return {name: _read(out / f"{name}.csv") for name in ("ads", "stays", "phones", "photos")}


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _digest(world: World, tmp: Path) -> str:
    """One hash over the truth files, every day's snapshots, and a few photos' bytes."""
    digest = hashlib.sha256()
    for path in write_truth(world, tmp):
        digest.update(path.name.encode() + path.read_bytes())
    for day in range(world.days):
        for site in SITES:
            for ad in world.ads_on(site, day):
                digest.update(repr(ad).encode())
    photo_ids = sorted({p for site in SITES for ad in world.ads_on(site, 0) for p in ad.photo_ids})
    for photo_id in photo_ids[:3]:
        digest.update(world.photo_bytes(photo_id)[0])
    return digest.hexdigest()


# --- determinism ------------------------------------------------------------------------------


def test_same_seed_gives_identical_truth_snapshots_and_photos(tmp_path: Path) -> None:
    first = _digest(build_world(seed=3, scale="tiny"), tmp_path / "a")
    second = _digest(build_world(seed=3, scale="tiny"), tmp_path / "b")
    assert first == second
    for name in ("ads.csv", "stays.csv", "phones.csv", "photos.csv", "world.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_same_seed_is_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    script = (
        "import sys; from pathlib import Path; from tests.test_world import _digest;"
        "from fixtures.world import build_world;"
        "print(_digest(build_world(seed=5, scale='tiny'), Path(sys.argv[1])))"
    )
    digests = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run(
            [sys.executable, "-c", script, str(tmp_path / hash_seed)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_different_seeds_give_different_worlds(tmp_path: Path) -> None:
    one, two = build_world(seed=1, scale="tiny"), build_world(seed=2, scale="tiny")
    write_truth(one, tmp_path / "1")
    write_truth(two, tmp_path / "2")
    assert (tmp_path / "1" / "ads.csv").read_bytes() != (tmp_path / "2" / "ads.csv").read_bytes()
    assert [a.text for a in one.ads_on("roodlicht", 0)] != [
        a.text for a in two.ads_on("roodlicht", 0)
    ]


# --- truth against what the sites show --------------------------------------------------------


def test_every_snapshot_is_a_truth_ad_online_that_day(demo: World, demo_truth: dict) -> None:
    truth = {(r["site"], r["site_ad_id"]): r for r in demo_truth["ads"]}
    seen: dict[tuple[str, str], set[int]] = defaultdict(set)
    for day in range(demo.days):
        for site in SITES:
            for ad in demo.ads_on(site, day):
                row = truth[(site, ad.site_ad_id)]
                assert int(row["day_posted"]) <= day <= int(row["day_removed"])
                assert ad.posted_on == demo.date_of(int(row["day_posted"]))
                seen[(site, ad.site_ad_id)].add(day)
    for key, row in truth.items():
        first = max(0, int(row["day_posted"]))
        last = min(demo.days - 1, int(row["day_removed"]))
        assert seen[key] == set(range(first, last + 1)), key


def test_listing_order_is_newest_bump_first(demo: World) -> None:
    for site in SITES:
        ads = demo.ads_on(site, 10)
        bumps = [ad.bumped_on for ad in ads]
        assert bumps == sorted(bumps, reverse=True)
        assert all(ad.posted_on <= ad.bumped_on <= demo.date_of(10) for ad in ads)
        assert len({ad.site_ad_id for ad in ads}) == len(ads)


def test_listing_order_changes_with_bumps(demo: World) -> None:
    changed = 0
    for site in ("roodlicht", "nachtvlinder"):
        for day in range(1, demo.days):
            today = [a.site_ad_id for a in demo.ads_on(site, day)]
            before = [a for a in (x.site_ad_id for x in demo.ads_on(site, day - 1)) if a in today]
            changed += [a for a in today if a in before] != before
    assert changed > 20


def test_stays_are_contiguous_and_do_not_overlap(demo_truth: dict) -> None:
    by_persona: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in demo_truth["stays"]:
        by_persona[row["persona_id"]].append(row)
        assert int(row["first_day"]) <= int(row["last_day"])
        assert (row["country"] == "NL") == bool(re.fullmatch(r"GM\d{4}", row["municipality_code"]))
    for stays in by_persona.values():
        assert [int(s["seq"]) for s in stays] == list(range(1, len(stays) + 1))
        for before, after in itertools.pairwise(stays):
            assert int(after["first_day"]) == int(before["last_day"]) + 1


def test_network_women_move_one_to_three_times_in_the_demo(demo: World) -> None:
    moves = Counter(
        p.persona_id
        for p in demo.carousel.personas
        if p.kind == "network"
        for s in p.stays
        if 0 < s.first_day < demo.days
    )
    women = [p for p in demo.carousel.personas if p.kind == "network"]
    moving = sum(1 for p in women if 1 <= moves[p.persona_id] <= 3)
    assert moving >= len(women) // 2
    lengths = [s.last_day - s.first_day + 1 for p in women for s in p.stays[1:-1]]
    assert min(lengths) >= 7 and max(lengths) <= 42


def test_ad_places_follow_the_stays(demo: World, demo_truth: dict) -> None:
    stays = defaultdict(list)
    for row in demo_truth["stays"]:
        stays[row["persona_id"]].append(row)
    checked = 0
    for row in demo_truth["ads"]:
        if row["kind"] == "scam" or row["place_true"] == "0" or not row["persona_id"]:
            continue
        posted = int(row["day_posted"])
        if posted < 0:
            continue
        here = [
            s
            for s in stays[row["persona_id"]]
            if int(s["first_day"]) <= posted <= int(s["last_day"])
        ]
        assert here and here[0]["municipality_code"] == row["municipality_code"], row
        checked += 1
    assert checked > 500


def test_stale_ads_linger_after_she_left(demo: World, demo_truth: dict) -> None:
    stale = [r for r in demo_truth["ads"] if int(r["lingered_days"]) > 0]
    assert len(stale) > 20
    row = next(
        r for r in stale if int(r["stay_last_day"]) + 1 < demo.days and int(r["stay_last_day"]) >= 0
    )
    day_after = int(row["stay_last_day"]) + 1
    shown = [a for a in demo.ads_on(row["site"], day_after) if a.site_ad_id == row["site_ad_id"]]
    assert shown, "a lingering ad must still be listed the day after she left"


def test_network_women_share_a_booking_phone(demo_truth: dict) -> None:
    booking = {
        r["phone"]: set(r["used_by"].split())
        for r in demo_truth["phones"]
        if r["kind"] == "booking"
    }
    assert booking and all(len(users) >= 2 for users in booking.values())
    shown_by: dict[str, set[str]] = defaultdict(set)
    for row in demo_truth["ads"]:
        for phone in row["phones"].split():
            if phone in booking:
                shown_by[phone].add(row["persona_id"])
    assert all(shown_by[p] <= booking[p] for p in shown_by)
    assert any(len(users) >= 2 for users in shown_by.values())


def test_agencies_show_one_phone_for_many_women(demo_truth: dict) -> None:
    agency = {r["phone"] for r in demo_truth["phones"] if r["kind"] == "agency"}
    women = defaultdict(set)
    for row in demo_truth["ads"]:
        if row["kind"] == "agency":
            assert row["phone"] in agency
            women[row["phone"]].add(row["persona_id"])
    assert max(len(w) for w in women.values()) >= 3


def test_scams_show_stolen_photos_with_their_own_phone(demo_truth: dict) -> None:
    scams = {(r["site"], r["site_ad_id"]): r for r in demo_truth["ads"] if r["kind"] == "scam"}
    scam_phones = {r["phone"] for r in demo_truth["phones"] if r["kind"] == "scam"}
    assert scams
    for row in scams.values():
        assert row["persona_id"] == "" and row["stolen_from"] and row["phone"] in scam_phones
    for photo in demo_truth["photos"]:
        ad = scams.get((photo["site"], photo["site_ad_id"]))
        if ad is not None and photo["kind"] != "placeholder":
            assert photo["kind"] == "stolen" and photo["persona_id"] == ad["stolen_from"]


def test_phones_are_valid_and_international_mix(demo_truth: dict) -> None:
    phones = [r["phone"] for r in demo_truth["phones"]]
    assert len(phones) == len(set(phones))
    for phone in phones:
        assert phonenumbers.is_valid_number(phonenumbers.parse(phone, None)), phone
    countries = Counter(
        phonenumbers.region_code_for_number(phonenumbers.parse(p, None)) for p in phones
    )
    assert countries["NL"] > len(phones) / 2
    assert countries["RO"] + countries["MD"] + countries["BG"] > 5


def test_some_women_change_number_and_open_ads_follow(demo: World, demo_truth: dict) -> None:
    owners = Counter(r["persona_id"] for r in demo_truth["phones"] if r["kind"] == "personal")
    assert sum(1 for n in owners.values() if n > 1) >= 10
    spans = {r["phone"]: r for r in demo_truth["phones"]}
    followed = 0
    for row in demo_truth["ads"]:
        for edit in filter(None, row["edits"].split(";")):
            day, what = edit.split(":")
            if "phone" not in what or not 0 <= int(day) < demo.days:
                continue
            ad = demo.ad(row["site"], row["site_ad_id"])
            before = ad.versions[ad.version_on(int(day) - 1)]
            after = ad.versions[ad.version_on(int(day))]
            old = {before.phone, before.second_phone} - {None}
            new = {after.phone, after.second_phone} - {None}
            assert new - old and new <= set(row["phones"].split())
            for phone in new - old:
                assert int(spans[phone]["first_day"]) <= int(day) <= int(spans[phone]["last_day"])
            followed += 1
    assert followed >= 5


def test_reposts_and_duplicates_exist(demo_truth: dict) -> None:
    ids = {(r["site"], r["site_ad_id"]) for r in demo_truth["ads"]}
    reposts = [r for r in demo_truth["ads"] if r["repost_of"]]
    assert len(reposts) > 100
    assert all((r["site"], r["repost_of"]) in ids for r in reposts)
    assert sum(1 for r in demo_truth["ads"] if r["duplicate_of"]) > 5


def test_places_say_where_each_version_is(demo: World, demo_truth: dict) -> None:
    """``places`` starts with the posting place and adds each place edit, with its day."""
    edited = 0
    for row in demo_truth["ads"]:
        spans = [entry.split(":", 1) for entry in row["places"].split(";")]
        days = [int(day) for day, _ in spans]
        assert days[0] == int(row["day_posted"]) and days == sorted(set(days)), row
        first = spans[0][1].split("/", 1)[0]
        assert first == (row["municipality_code"] or row["country"]), row
        edit_days = {
            int(edit.split(":")[0])
            for edit in filter(None, row["edits"].split(";"))
            if "place" in edit.split(":")[1]
        }
        assert set(days[1:]) <= edit_days, row
        edited += len(spans) > 1
    assert edited > 50


LINK_STYLES = {"tel_link", "whatsapp_link", "whatsapp_api"}


def test_numbers_are_written_as_links_and_in_pairs(demo_truth: dict) -> None:
    """Every site has ads giving a number as a tel: or WhatsApp link; some ads show two
    numbers at once (a booking number and her own for WhatsApp), and the truth says how."""
    linked: Counter[str] = Counter()
    for row in demo_truth["ads"]:
        written = dict(part.split(":") for part in row["phone_styles"].split())
        assert ("second" in written) == bool(row["second_phone"]), row
        assert written.get("field", written.get("text", "")) == row["phone_style"], row
        if row["second_phone"]:
            assert row["second_phone"] in row["phones"].split() and row["kind"] == "network"
            assert row["second_phone"] != row["phone"]
        linked[row["site"]] += bool(LINK_STYLES & set(written.values()))
    assert all(linked[site] >= 10 for site in SITES), linked
    assert sum(1 for row in demo_truth["ads"] if row["second_phone"]) >= 100
    known = {row["phone"] for row in demo_truth["phones"]}
    assert {phone for row in demo_truth["ads"] for phone in row["phones"].split()} <= known


def test_site_ad_id_formats(demo: World) -> None:
    formats = {
        "roodlicht": r"\d{7}",
        "nachtvlinder": r"[0-9a-f]{12}",
        "escortgids": r"[a-z0-9-]+-\d{5}",
        "prikbord": r"t\d{6}",
    }
    for site, pattern in formats.items():
        ads = demo.ads_on(site, 5)
        assert ads and all(re.fullmatch(pattern, ad.site_ad_id) for ad in ads), site


def test_site_fields_follow_the_site_rules(demo: World) -> None:
    for site in SITES:
        for ad in demo.ads_on(site, 4):
            if site == "prikbord":
                assert ad.place_text is None and ad.phone_text is None
                assert re.search(r"\d|nul|zero|O6", ad.text, re.IGNORECASE)
            else:
                assert ad.place_text is not None and ad.phone_text
            if site == "escortgids":
                assert re.fullmatch(r"(NL|BE|DE)/.+", ad.region) and ad.language in ("en", "ro")
            else:
                assert "/" not in ad.region
            if site == "roodlicht":
                assert ad.language == "nl"


def test_texts_carry_movement_phrases_in_three_languages(demo: World) -> None:
    texts = [ad.text for site in SITES for ad in demo.ads_on(site, 6)]
    joined = "\n".join(texts)
    for phrase in ("Nieuw in", "New in", "in ", "Laatste dagen"):
        assert phrase in joined
    assert re.search(r"Noua in|Doar azi|Ultimele zile|Abia am ajuns|Fata noua", joined)
    assert {ad.language for site in SITES for ad in demo.ads_on(site, 6)} == {"nl", "en", "ro"}


def test_network_women_share_text_templates(demo: World) -> None:
    by_group: dict[int, list[str]] = defaultdict(list)
    for ad in demo.ads:
        if ad.kind == "network" and ad.language == "nl" and ad.site == "roodlicht":
            by_group[ad.group].append(demo.rendered(ad, 0).text)
    shared = 0
    for texts in by_group.values():
        firsts = Counter(t.split(".")[0].split("!")[0][:12] for t in texts)
        shared += max(firsts.values()) >= 2
    assert shared >= 5


# --- photos -----------------------------------------------------------------------------------


def test_photo_bytes_decode_and_match_the_truth_transformation(
    demo: World, demo_truth: dict
) -> None:
    rows = [r for r in demo_truth["photos"] if r["kind"] == "own"][:2]
    for row in rows:
        data, content_type = demo.photo_bytes(row["photo_id"])
        assert content_type.startswith("image/")
        with Image.open(io.BytesIO(data)) as decoded:
            decoded.load()
        base = photo_maker.base_photo(int(row["photo_seed"]))
        expected = photo_maker.transform(base, row["transformation"])
        with Image.open(io.BytesIO(data)) as got:
            assert got.convert("RGB").tobytes() == expected.tobytes()


def test_placeholders_are_the_same_image_on_many_ads(demo: World, demo_truth: dict) -> None:
    placeholders = [r for r in demo_truth["photos"] if r["kind"] == "placeholder"]
    per_id = Counter(r["photo_id"] for r in placeholders)
    assert per_id and max(per_id.values()) >= 10
    photo_id, _ = per_id.most_common(1)[0]
    site = next(r["site"] for r in placeholders if r["photo_id"] == photo_id)
    assert demo.photo_bytes(photo_id) == photo_maker.placeholder(site)


def test_unknown_photo_ids_raise_key_error(demo: World) -> None:
    for bad in ("nonsense", "00000000", "zzzzzzzz"):
        with pytest.raises(KeyError):
            demo.photo_bytes(bad)


def test_photo_ids_are_opaque_and_unique_per_ad(demo_truth: dict) -> None:
    own = [r for r in demo_truth["photos"] if r["kind"] != "placeholder"]
    assert len({r["photo_id"] for r in own}) == len(own)
    assert all(re.fullmatch(r"[0-9a-z]{8}", r["photo_id"]) for r in own)


# --- observations -----------------------------------------------------------------------------


def test_iter_observations_yields_items_for_every_ad_and_day() -> None:
    world = build_world(seed=2, scale="tiny")
    items = list(world.iter_observations())
    assert len(items) == world.summary()["observations"]
    expected = sum(len(world.ads_on(site, day)) for day in range(world.days) for site in SITES)
    assert len(items) == expected
    for item in items:
        assert {"site", "site_ad_id", "url", "observed_at"} <= item.keys()
        assert item["observed_at"].endswith("+01:00")
        assert all(
            p["url"].startswith("demo://photo/") and p["path"] is None for p in item["photos"]
        )
        assert item["site"] != "prikbord" or ("phone_text" not in item and item["place"] == "")
    assert list(world.iter_observations(range(2, 3))) == [
        i for i in items if i["observed_at"].startswith(world.date_of(2).isoformat())
    ]


# --- knobs, scales, errors --------------------------------------------------------------------


def test_tiny_builds_and_serves_in_seconds() -> None:
    started = time.perf_counter()
    world = build_world(seed=11, scale="tiny")
    for day in range(world.days):
        for site in SITES:
            world.ads_on(site, day)
    assert time.perf_counter() - started < 5.0
    summary = world.summary()
    assert summary["personas"] == 12 and summary["networks"] == 3 and world.days == 7


def test_demo_counts_are_in_range(demo: World) -> None:
    summary = demo.summary()
    assert summary["personas"] == 200 and summary["networks"] == 30
    assert 1_500 <= summary["ads"] <= 4_000
    assert all(n >= 100 for n in summary["ads_by_site"].values())
    assert summary["moves_in_window"] >= 150
    assert summary["agencies"] >= 2 and summary["scammers"] >= 3
    sizes = [len(g.members) for g in demo.carousel.groups if g.kind == "network"]
    assert min(sizes) >= 2 and max(sizes) <= 8
    assert any(s.place.abroad for p in demo.carousel.personas for s in p.stays)


def test_phone_obfuscation_knob() -> None:
    plain = build_world(seed=4, scale="tiny", phone_obfuscation=0.0)
    hidden = build_world(seed=4, scale="tiny", phone_obfuscation=1.0)
    plain_styles = {r["phone_style"] for r in plain.truth_ads()}
    assert not plain_styles & set(OBFUSCATED_PHONE_STYLES)
    board = [r for r in hidden.truth_ads() if r["site"] in ("prikbord", "nachtvlinder")]
    assert board and all(r["phone_style"] in OBFUSCATED_PHONE_STYLES for r in board)


def test_start_date_and_days_overrides() -> None:
    world = build_world(seed=1, scale="tiny", days=3, start_date=date(2027, 3, 27))
    assert world.days == 3 and world.date_of(2) == date(2027, 3, 29)
    assert world.observed_at(2).endswith("+02:00")  # summer time began that night
    with pytest.raises(ValueError, match="outside"):
        world.ads_on("roodlicht", 3)


def test_bad_arguments_are_refused_with_a_hint() -> None:
    with pytest.raises(WorldConfigError, match="known knobs"):
        build_world(scale="tiny", phone_obfuscaton=0.2)
    with pytest.raises(WorldConfigError, match="from 0 to 1"):
        build_world(scale="tiny", photo_strength=2)
    with pytest.raises(WorldConfigError, match="tiny, demo, bench"):
        build_world(scale="huge")
    with pytest.raises(ValueError, match="networks"):
        build_world(scale="tiny", n_networks=20)
    world = build_world(scale="tiny")
    with pytest.raises(ValueError, match="unknown site"):
        world.ads_on("nosuchsite", 0)


@pytest.mark.slow
def test_bench_scale_is_large_and_streams() -> None:
    started = time.perf_counter()
    world = build_world(seed=1, scale="bench")
    assert time.perf_counter() - started < 180
    summary = world.summary()
    assert summary["personas"] >= 10_000 and world.days == 180
    assert summary["observations"] > 1_000_000
    first_day = sum(1 for _ in world.iter_observations(range(0, 1)))
    assert first_day == sum(len(world.ads_on(site, 0)) for site in SITES) > 5_000
