"""Linking ads into persons and networks, on hand-made ads, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, insert, select

from lovitura_crawl.db import models
from matching.explain import explain_person, render_explanation
from matching.link import link
from matching.trails import build_trails
from tests.adfactory import AdSpec, ad_id, groups, networks, persons, store

HER = "+31612345671"
HER_NEW = "+31612345672"
SCAMMER = "+31687654321"
AGENCY = "+31611112222"


def _override(engine: Engine, a: str, b: str, action: str, reason: str) -> None:
    low, high = sorted((ad_id(engine, a), ad_id(engine, b)))
    with engine.begin() as conn:
        conn.execute(
            insert(models.LinkOverride).values(
                ad_a=low,
                ad_b=high,
                action=action,
                reason=reason,
                created_by="analyst-1",
                created_at=datetime(2026, 11, 20, tzinfo=UTC),
            )
        )


def _links(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(models.Link)).all())


def _events(engine: Engine) -> list[tuple[str, int, int | None, int]]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                models.PersonEvent.kind,
                models.PersonEvent.person_id,
                models.PersonEvent.other_person_id,
                models.PersonEvent.n_ads,
            ).order_by(models.PersonEvent.id)
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def test_phone_swap_by_edit_stays_one_person(engine: Engine) -> None:
    store(
        engine,
        [
            AdSpec("roodlicht", "r1", range(0, 10), "Utrecht", HER, [(1, 0), (2, 0)]),
            AdSpec(
                "nachtvlinder", "n1", range(0, 16), "Utrecht", HER, [(1, 1)],
                phone_from=6, phone2=HER_NEW,
            ),
            AdSpec("roodlicht", "r2", range(10, 16), "Utrecht", HER_NEW, [(3, 0)]),
        ],
    )  # fmt: skip
    link(engine)
    assert groups(persons(engine)) == {frozenset({"r1", "n1", "r2"})}


def test_new_number_with_her_photos_stays_one_person(engine: Engine) -> None:
    store(
        engine,
        [
            AdSpec("roodlicht", "r1", range(0, 9), "Utrecht", HER, [(1, 0), (2, 0)]),
            AdSpec("nachtvlinder", "n1", range(0, 10), "Utrecht", HER, [(2, 1), (3, 0)]),
            # She moves on with a new number and the same photos; n1 lingers a day.
            AdSpec("roodlicht", "r2", range(9, 18), "Zwolle", HER_NEW, [(1, 2), (3, 1)]),
        ],
    )
    link(engine)
    build_trails(engine)
    assert groups(persons(engine)) == {frozenset({"r1", "n1", "r2"})}
    with engine.connect() as conn:
        moves = conn.execute(
            select(models.TrailMove.from_municipality_code, models.TrailMove.to_municipality_code)
        ).all()
    assert [tuple(m) for m in moves] == [("GM0344", "GM0193")]


def test_agency_number_does_not_merge_its_women(engine: Engine) -> None:
    women = [
        AdSpec("roodlicht", "a1", range(0, 12), "Amsterdam", AGENCY, [(10, 0), (11, 0)], age=22),
        AdSpec("roodlicht", "a2", range(0, 12), "Amsterdam", AGENCY, [(12, 0), (13, 0)], age=23,
               nickname="Bella"),
        # Another "Ana" of the same club: her age tells her apart.
        AdSpec("roodlicht", "a3", range(0, 12), "Amsterdam", AGENCY, [(14, 0), (15, 0)], age=31),
        AdSpec("nachtvlinder", "a1b", range(2, 12), "Amsterdam", AGENCY, [(10, 1)], age=22),
    ]  # fmt: skip
    store(engine, women)
    link(engine)
    assert groups(persons(engine)) == {
        frozenset({"a1", "a1b"}),
        frozenset({"a2"}),
        frozenset({"a3"}),
    }
    assert len(set(networks(engine).values())) == 1
    assert None not in networks(engine).values()
    phone_links = [row for row in _links(engine) if row.kind == "phone"]
    assert phone_links and {row.level for row in phone_links} == {"network"}


def test_scam_reusing_her_photos_does_not_make_her_trail_jump(engine: Engine) -> None:
    store(
        engine,
        [
            AdSpec("roodlicht", "r1", range(0, 8), "Utrecht", HER, [(1, 0), (2, 0)]),
            AdSpec("roodlicht", "r1b", range(8, 16), "Utrecht", HER, [(1, 1), (2, 1)]),
            AdSpec("nachtvlinder", "n1", range(0, 16), "Utrecht", HER, [(1, 2), (3, 0)]),
            AdSpec("prikbord", "scam", range(5, 10), "Amsterdam", SCAMMER, [(1, 3), (2, 3)]),
        ],
    )
    link(engine)
    build_trails(engine)
    assert groups(persons(engine)) == {frozenset({"r1", "r1b", "n1"}), frozenset({"scam"})}
    her = persons(engine)["r1"]
    with engine.connect() as conn:
        stays = conn.execute(
            select(models.TrailStay.municipality_code).where(models.TrailStay.person_id == her)
        ).scalars()
        assert list(stays) == ["GM0344"]
    photo_links = [r for r in _links(engine) if r.kind == "photo"]
    assert any(ad_id(engine, "scam") in (r.ad_a, r.ad_b) for r in photo_links)


def test_scam_with_her_photos_is_no_new_number_of_hers_when_her_ads_name_no_place(
    engine: Engine,
) -> None:
    # Her ads on prikbord name no place, so nothing says where she is; her number is still in
    # use on the last day crawled, so the scammer's number does not follow hers.
    her = [
        AdSpec("prikbord", f"p{n}", range(3 * n, 3 * n + 3), "", HER, [(1, n), (2, n)], age=None)
        for n in range(5)
    ]
    scam = AdSpec("roodlicht", "scam", range(10, 15), "Amsterdam", SCAMMER, [(1, 3), (2, 2)])
    store(engine, [*her, scam])
    link(engine)
    assert groups(persons(engine)) == {frozenset(a.ad_id for a in her), frozenset({"scam"})}


def test_placeholder_image_is_no_evidence(engine: Engine) -> None:
    ads = [
        AdSpec("roodlicht", f"w{n}", range(0, 3), "Venlo", f"+316200000{n:02d}", placeholder=True)
        for n in range(11)
    ]
    ads.append(AdSpec("nachtvlinder", "w0b", range(0, 3), "Venlo", "+31620000000", [(20, 0)]))
    store(engine, ads)
    link(engine)
    assert len(groups(persons(engine))) == 11
    assert set(networks(engine).values()) == {None}
    placeholder_links = [
        r for r in _links(engine) if r.kind == "photo" and "placeholder" in r.value
    ]
    assert placeholder_links
    assert {(r.level, r.strength) for r in placeholder_links} == {("network", 0.1)}


def test_suppress_override_separates_ads_and_records_the_split(engine: Engine) -> None:
    store(
        engine,
        [
            AdSpec("roodlicht", "x1", range(0, 5), "Eindhoven", HER, [(30, 0)]),
            AdSpec("roodlicht", "x2", range(0, 5), "Eindhoven", HER, [(31, 0)]),
        ],
    )
    link(engine)
    assert groups(persons(engine)) == {frozenset({"x1", "x2"})}
    _override(engine, "x1", "x2", "suppress", "different women, seen at the address")
    link(engine)
    assert groups(persons(engine)) == {frozenset({"x1"}), frozenset({"x2"})}
    assert [e[0] for e in _events(engine)] == ["created", "split"]


def test_force_override_joins_ads_with_its_reason(engine: Engine) -> None:
    store(
        engine,
        [
            AdSpec("roodlicht", "y1", range(0, 5), "Zwolle", HER, [(40, 0)]),
            AdSpec("prikbord", "y2", range(0, 5), "Zwolle", None, [(41, 0)]),
        ],
    )
    link(engine)
    assert len(groups(persons(engine))) == 2
    _override(engine, "y1", "y2", "force", "same woman: known from the case file")
    link(engine)
    assert groups(persons(engine)) == {frozenset({"y1", "y2"})}
    forced = [r for r in _links(engine) if r.kind == "forced"]
    assert len(forced) == 1 and forced[0].detail == {
        "reason": "same woman: known from the case file"
    }
    assert "merged" in [e[0] for e in _events(engine)]


def test_incremental_link_keeps_ids_and_agrees_with_a_full_relink(engine: Engine) -> None:
    first = [
        AdSpec("roodlicht", "a1", range(0, 5), "Utrecht", HER, [(1, 0)]),
        AdSpec("roodlicht", "b1", range(0, 5), "Venlo", "+31633333333", [(5, 0)], age=30),
    ]
    store(engine, first)
    link(engine)
    before = persons(engine)
    store(
        engine,
        [
            AdSpec("nachtvlinder", "a2", range(5, 9), "Zwolle", HER, [(1, 1)]),
            AdSpec("roodlicht", "c1", range(5, 9), "Amsterdam", "+31644444444", [(7, 0)]),
        ],
    )
    result = link(engine)
    after = persons(engine)
    assert result.new_ads == 2
    assert after["a2"] == after["a1"] == before["a1"]
    assert after["b1"] == before["b1"]
    assert after["c1"] not in (before["a1"], before["b1"])
    link(engine, full=True)
    assert persons(engine) == after


def test_a_merge_keeps_the_id_of_the_larger_person(engine: Engine) -> None:
    store(
        engine,
        [
            AdSpec("roodlicht", "p1", range(0, 4), "Utrecht", HER, [(50, 0)]),
            AdSpec("nachtvlinder", "p2", range(0, 4), "Utrecht", HER, [(51, 0)]),
            AdSpec("prikbord", "q1", range(0, 4), "Utrecht", HER_NEW, [(52, 0)]),
        ],
    )
    link(engine)
    before = persons(engine)
    assert before["p1"] == before["p2"] != before["q1"]
    # An ad with both numbers: they are one woman.
    store(engine, [AdSpec("roodlicht", "pq", range(4, 6), "Utrecht", HER, phone_from=5,
                          phone2=HER_NEW)])  # fmt: skip
    link(engine)
    after = persons(engine)
    assert len(set(after.values())) == 1
    assert after["p1"] == before["p1"]
    assert ("merged", before["p1"], before["q1"], 1) in _events(engine)
    with engine.connect() as conn:
        ids = conn.execute(select(models.Person.id)).scalars().all()
    assert ids == [before["p1"]]


def test_links_carry_their_evidence_and_explain_shows_it(engine: Engine) -> None:
    store(
        engine,
        [
            AdSpec("roodlicht", "e1", range(0, 4), "Utrecht", HER, [(60, 0)]),
            AdSpec("nachtvlinder", "e2", range(0, 4), "Utrecht", HER, [(60, 1)]),
        ],
    )
    link(engine)
    build_trails(engine)
    kinds = {r.kind: r for r in _links(engine)}
    assert kinds["phone"].value == HER and kinds["phone"].level == "person"
    assert kinds["phone"].detail["start_a"] == 0 and kinds["phone"].detail["field_a"] == (
        "phone_text"
    )
    assert kinds["photo"].detail["url_a"].startswith("demo://photo/")
    assert kinds["photo"].detail["rule"] in ("global", "crop", "overlay")
    person = persons(engine)["e1"]
    assert person is not None
    explanation = explain_person(engine, person)
    assert [ad["site_ad_id"] for ad in explanation["ads"]] == ["e1", "e2"]
    phone = next(x for x in explanation["links"] if x["kind"] == "phone")
    assert phone["evidence"]["snippet_a"] == "[[0612345671]]"
    text = render_explanation(explanation)
    assert "phone/person" in text and "photo/person" in text and "GM0344" in text


def test_explain_shows_the_shared_number_in_its_real_context(engine: Engine) -> None:
    """The number in the phone field, in the body text, and both at once; offsets of the wrong
    field or of another ad: every snippet shows the number, and its pseudonym by default."""
    from lovitura_crawl.db.store import AdStore
    from lovitura_crawl.privacy.pseudonym import pseudonymise_phone
    from pipelines.phones import PhonesPipeline

    body = "Lieve heren, ik ben nieuw hier en heel lief. Bel me op 06-12345671 voor een afspraak."
    specs = [
        AdSpec("roodlicht", "x1", range(0, 3), "Utrecht", HER, [(80, 0)], text=body),
        AdSpec("nachtvlinder", "x2", range(0, 3), "Utrecht", HER, [(80, 1)], text=body),
        AdSpec("escortgids", "x3", range(0, 3), "Utrecht", HER, [(80, 2)]),
    ]
    pipeline = PhonesPipeline()
    store_ = AdStore(engine)
    for day in range(3):
        items = [spec.item(day, day) for spec in specs]
        items[1]["phone_text"] = None  # x2: the number in its body text only
        items[2]["text"] = items[2]["text"] + " 06 1234 5671 "  # x3: also in its body
        store_.save([pipeline.process_item(item) for item in items])
    link(engine)
    ids = {name: ad_id(engine, name) for name in ("x1", "x2", "x3")}
    with engine.begin() as conn:  # a link with the offsets of another ad
        first = conn.execute(
            select(models.Link.id).where(models.Link.kind == "phone").order_by(models.Link.id)
        ).first()
        assert first is not None
        conn.execute(
            models.Link.__table__.update()
            .where(models.Link.id == first.id)
            .values(detail={"field_a": "text", "start_a": 0, "end_a": 12, "field_b": "title"})
        )
    person = persons(engine)["x1"]
    assert person is not None
    key = b"k" * 32
    clear = explain_person(engine, person)
    hidden = explain_person(engine, person, phone_label=lambda p: pseudonymise_phone(p, key))
    phone_links = [x for x in clear["links"] if x["kind"] == "phone"]
    assert phone_links and len(phone_links) == len(
        [x for x in hidden["links"] if x["kind"] == "phone"]
    )
    pseudonym = pseudonymise_phone(HER, key)
    seen = set()
    for shown, masked in zip(
        phone_links, [x for x in hidden["links"] if x["kind"] == "phone"], strict=True
    ):
        for side in ("a", "b"):
            snippet = shown["evidence"][f"snippet_{side}"]
            number = snippet[snippet.index("[[") + 2 : snippet.index("]]")]
            assert "".join(c for c in number if c.isdigit()).endswith("612345671"), snippet
            assert f"[[{pseudonym}]]" in masked["evidence"][f"snippet_{side}"]
            assert "12345671" not in masked["evidence"][f"snippet_{side}"].replace(" ", "")
            assert "1234 5671" not in masked["evidence"][f"snippet_{side}"]
            seen.add((shown[f"ad_{side}"], shown["evidence"][f"field_{side}"]))
    assert (ids["x2"], "text") in seen
    assert any(field == "phone_text" for _, field in seen)
    assert "Bel me op [[06-12345671]]" in render_explanation(clear)
    assert pseudonym in render_explanation(hidden) and "06-12345671" not in str(hidden["links"])


def test_a_new_booking_number_is_as_shared_as_the_old_one(engine: Engine) -> None:
    old, new = "+31655550001", "+31655550002"
    store(
        engine,
        [
            # The network edits one ad to its new number: both numbers are one lineage.
            AdSpec("roodlicht", "w1r", range(0, 12), "Utrecht", old, [(70, 0)], age=23,
                   phone_from=6, phone2=new),
            AdSpec("roodlicht", "w2r", range(0, 12), "Utrecht", old, [(71, 0)], age=23,
                   nickname="Bea"),
            AdSpec("nachtvlinder", "w2n", range(6, 12), "Utrecht", new, [(71, 1)], age=23,
                   nickname="Bea"),
        ],
    )  # fmt: skip
    link(engine)
    assert groups(persons(engine)) == {frozenset({"w1r"}), frozenset({"w2r", "w2n"})}
    assert len(set(networks(engine).values())) == 1


def test_a_copy_under_a_nearby_city_stays_hers_and_off_her_trail(engine: Engine) -> None:
    booking = "+31655550003"
    store(
        engine,
        [
            AdSpec("roodlicht", "c1", range(0, 12), "Utrecht", booking, [(80, 0), (81, 0)]),
            AdSpec("roodlicht", "c2", range(0, 6), "Amsterdam", booking, [(80, 1), (81, 1)]),
            AdSpec("nachtvlinder", "c3", range(0, 12), "Utrecht", booking, [(81, 2)]),
            AdSpec("roodlicht", "x1", range(0, 12), "Zwolle", booking, [(82, 0)], age=30,
                   nickname="Xena"),
        ],
    )  # fmt: skip
    link(engine)
    build_trails(engine)
    assert groups(persons(engine)) == {frozenset({"c1", "c2", "c3"}), frozenset({"x1"})}
    with engine.connect() as conn:
        stays = conn.execute(
            select(models.TrailStay.municipality_code).where(
                models.TrailStay.person_id == persons(engine)["c1"]
            )
        ).scalars()
        assert list(stays) == ["GM0344"]
