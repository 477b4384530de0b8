"""Hand-made ads for the matching tests: items as the pipelines leave them, day by day.

Photos are real fingerprints of the demo world's stand-in photos (``fixtures.photos``), so the
photo matching in the tests is the product's own. Every place, number and name is invented.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from typing import Any

from sqlalchemy import Engine, select

from fixtures.photos import base_photo, placeholder, transform
from lovitura_crawl.db import models
from lovitura_crawl.db.store import AdStore
from pipelines.photos import fingerprint

START = date(2026, 11, 2)
PLACES = {
    "Utrecht": ("GM0344", "NL"),
    "Zwolle": ("GM0193", "NL"),
    "Amsterdam": ("GM0363", "NL"),
    "Venlo": ("GM0983", "NL"),
    "Eindhoven": ("GM0772", "NL"),
    "Antwerpen": (None, "BE"),
    "": (None, None),  # an ad that names no place (prikbord's 5%)
}
REPOSTS = ("resize=0.8;jpeg=70", "crop=0.04,0.5,0.5;jpeg=80", "brightness=1.1;webp=75", "png")


@cache
def photo(base: int, repost: int = 0) -> dict[str, Any]:
    """The fingerprint (JSON) of a repost of stand-in photo ``base``."""
    image = transform(base_photo(1000 + base), REPOSTS[repost % len(REPOSTS)])
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=85)
    return fingerprint(buffer.getvalue()).as_json()


@cache
def placeholder_photo(site: str = "roodlicht") -> dict[str, Any]:
    return fingerprint(placeholder(site)[0]).as_json()


@dataclass
class AdSpec:
    """One ad: where it is online on which days, and what it shows."""

    site: str
    ad_id: str
    days: Sequence[int]
    place: str | Sequence[str]  # one place, or one per day
    phone: str | None = None
    photos: Sequence[tuple[int, int]] = ()  # (base, repost) pairs
    placeholder: bool = False
    age: int | None = 24
    nickname: str = "Ana"
    text: str = ""
    phone_from: int | None = None  # day from which ``phone2`` replaces ``phone``
    phone2: str | None = None
    posted_on: int | None = None  # posting day, when earlier than the first day seen

    def items(self) -> list[dict[str, Any]]:
        return [self.item(n, day) for n, day in enumerate(self.days)]

    def item(self, n: int, day: int) -> dict[str, Any]:
        place = self.place if isinstance(self.place, str) else self.place[n]
        code, country = PLACES[place]
        number = self.phone
        if self.phone_from is not None and day >= self.phone_from:
            number = self.phone2
        phone_text = _written(number) if number else None
        text = self.text or _own_words(self.ad_id)
        photos = [
            {"url": f"demo://photo/{self.site}-{self.ad_id}-{i}", "fingerprint": photo(b, r)}
            for i, (b, r) in enumerate(self.photos)
        ]
        if self.placeholder:
            photos.append(
                {"url": f"demo://placeholder/{self.site}", "fingerprint": placeholder_photo()}
            )
        posted = self.posted_on if self.posted_on is not None else self.days[0]
        return {
            "site": self.site,
            "site_ad_id": self.ad_id,
            "url": f"demo://{self.site}/ad/{self.ad_id}",
            "observed_at": f"{START + timedelta(days=day)}T12:00:00+01:00",
            "title": f"{self.nickname} in {place}",
            "text": text,
            "place": place,
            "phone_text": phone_text,
            "nickname": self.nickname,
            "age": None if self.age is None else str(self.age),
            "posted_at": (START + timedelta(days=posted)).isoformat(),
            "phones": (
                [{"e164": number, "start": 0, "end": len(phone_text or ""), "field": "phone_text"}]
                if number
                else []
            ),
            "photos": photos,
            "location": {"code": code, "country": country, "method": "test"},
        }


_WORDS = (
    "zon", "maan", "ster", "bloem", "boom", "rivier", "berg", "zee", "wolk", "regen", "sneeuw",
    "wind", "vuur", "steen", "glas", "hout", "appel", "peer", "kers", "druif", "citroen", "melk",
    "brood", "kaas", "thee", "koffie", "stoel", "tafel", "lamp", "deur", "raam",
)  # fmt: skip


def _own_words(key: str) -> str:
    """A text of its own for every ad, so that texts only match where a test wants them to."""
    rng = random.Random(key)
    return " ".join(rng.choice(_WORDS) for _ in range(24))


def _written(e164: str) -> str:
    return "0" + e164[3:] if e164.startswith("+31") else e164


def store(engine: Engine, ads: Iterable[AdSpec]) -> None:
    """Store the ads' observations day by day, as daily crawls would."""
    items = [item for ad in ads for item in ad.items()]
    by_day: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        by_day.setdefault(item["observed_at"], []).append(item)
    store = AdStore(engine)
    for day in sorted(by_day):
        store.save(by_day[day])


def persons(engine: Engine) -> dict[str, int | None]:
    """site_ad_id -> person id."""
    with engine.connect() as conn:
        rows = conn.execute(select(models.Ad.site_ad_id, models.Ad.person_id))
        return {ad_id: person for ad_id, person in rows}


def networks(engine: Engine) -> dict[str, int | None]:
    """site_ad_id -> network id."""
    with engine.connect() as conn:
        rows = conn.execute(select(models.Ad.site_ad_id, models.Ad.network_id))
        return {ad_id: network for ad_id, network in rows}


def ad_id(engine: Engine, site_ad_id: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                select(models.Ad.id).where(models.Ad.site_ad_id == site_ad_id)
            ).scalar_one()
        )


def groups(assignment: dict[str, int | None]) -> set[frozenset[str]]:
    """The partition of ad ids an assignment makes (unassigned ads alone)."""
    by: dict[object, set[str]] = {}
    for ad, group in assignment.items():
        by.setdefault(group if group is not None else ("alone", ad), set()).add(ad)
    return {frozenset(g) for g in by.values()}
