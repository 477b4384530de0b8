"""Reading the demo world back: what the product's extractors find in every ad version of the
demo world is what its truth says the ad shows.

Every accuracy figure the product publishes is measured on this world, so an ad whose text names
another place than its truth, or a number the truth does not list, would be counted against the
extractors although the world is at fault.
"""

from __future__ import annotations

from collections import Counter

import pytest

from fixtures.bodylinks import observed_text
from fixtures.world import World, build_world
from pipelines.geo import Location, locate_ad
from pipelines.phones import extract_phones


@pytest.fixture(scope="module", params=[1, 7])
def world(request: pytest.FixtureRequest) -> World:
    return build_world(seed=request.param, scale="demo")


def place_on(places: str, day: int) -> str:
    """The place key ("GM0363/Amsterdam", "BE/Antwerpen") the truth's ``places`` gives ``day``."""
    key = ""
    for entry in places.split(";"):
        first, place = entry.split(":", 1)
        if int(first) <= day:
            key = place
    return key


def resolves_to(found: Location | None, key: str) -> bool:
    """Whether ``found`` is the municipality (or, abroad, the country) of the place ``key``."""
    where = key.split("/", 1)[0]
    return (
        found is not None and found.method != "ambiguous" and (found.code or found.country) == where
    )


def test_every_ad_version_resolves_to_the_place_the_truth_says(world: World) -> None:
    truth = {(row["site"], row["site_ad_id"]): row for row in world.truth_ads()}
    wrong = []
    styles: Counter[str] = Counter()
    for ad in world.ads:
        row = truth[(ad.site, ad.site_ad_id)]
        for index, version in enumerate(ad.versions):
            shown = world.rendered(ad, index)
            found = locate_ad(shown.place_text or "", shown.title, observed_text(shown.text))
            if row["place_style"] == "none":  # deliberately place-less: nothing to find
                good = found is None or found.method == "ambiguous"
            else:
                good = resolves_to(found, place_on(row["places"], version.first_day))
            styles[row["place_style"]] += 1
            if not good:
                wrong.append((ad.site, ad.site_ad_id, index, row["places"], found))
    assert not wrong, f"{len(wrong)} ad versions resolve elsewhere, e.g. {wrong[:3]}"
    assert styles["none"] >= 20 and sum(styles.values()) > 2_500
    assert len(styles) >= 10  # fields and texts write places in many ways


def test_every_ad_version_shows_the_numbers_the_truth_lists(world: World) -> None:
    """The phone field, title and body as a crawler reads them hold the version's numbers, and
    the truth's ``phones`` lists them."""
    truth = {(row["site"], row["site_ad_id"]): row for row in world.truth_ads()}
    wrong = []
    pairs = 0
    for ad in world.ads:
        listed = set(truth[(ad.site, ad.site_ad_id)]["phones"].split())
        for index, version in enumerate(ad.versions):
            shown = world.rendered(ad, index)
            numbers = {phone for phone in (version.phone, version.second_phone) if phone}
            found = set(extract_phones(shown.phone_text or ""))
            found |= set(extract_phones(shown.title)) | set(
                extract_phones(observed_text(shown.text))
            )
            if found != numbers or not numbers <= listed:
                wrong.append((ad.site, ad.site_ad_id, index, shown.phone_styles))
            pairs += len(numbers) == 2
    assert not wrong, f"{len(wrong)} ad versions show other numbers, e.g. {wrong[:3]}"
    assert pairs >= 100  # two numbers in one ad: a booking number and her own WhatsApp
