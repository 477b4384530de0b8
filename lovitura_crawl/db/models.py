"""SQLAlchemy models. Every table and column is documented in docs/schema.md.

Tables whose names are contracts for analysts and external checks: ``ads``, ``ad_phones``,
``ad_photos``, ``municipalities``, ``persons``, ``networks``, ``trail_stays``, ``trail_moves``,
``crawl_runs``. Change them only through an Alembic migration.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Timestamp = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Municipality(Base):
    __tablename__ = "municipalities"

    code: Mapped[str] = mapped_column(String(6), primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    province: Mapped[str] = mapped_column(String(50))
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)


class Network(Base):
    __tablename__ = "networks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    n_persons: Mapped[int] = mapped_column(Integer, default=0)
    n_ads: Mapped[int] = mapped_column(Integer, default=0)
    evidence: Mapped[str | None] = mapped_column(Text)  # what binds it, as a short summary


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    network_id: Mapped[int | None] = mapped_column(ForeignKey("networks.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    updated_at: Mapped[datetime] = mapped_column(Timestamp)
    n_ads: Mapped[int] = mapped_column(Integer, default=0)
    first_seen_at: Mapped[datetime | None] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime | None] = mapped_column(Timestamp)
    n_municipalities: Mapped[int] = mapped_column(Integer, default=0)
    median_stay_days: Mapped[float | None] = mapped_column(Float)
    border_crossings: Mapped[int] = mapped_column(Integer, default=0)


class CrawlRun(Base):
    __tablename__ = "crawl_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(50), index=True)
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    clock: Mapped[datetime] = mapped_column(Timestamp)  # the time observations were stamped with
    outcome: Mapped[str] = mapped_column(String(30), default="running")
    listing_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    n_items: Mapped[int] = mapped_column(Integer, default=0)
    stats: Mapped[dict | None] = mapped_column(JSON)


class Ad(Base):
    __tablename__ = "ads"
    __table_args__ = (UniqueConstraint("site", "site_ad_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site: Mapped[str] = mapped_column(String(50))
    site_ad_id: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    nickname: Mapped[str | None] = mapped_column(String(200))
    age: Mapped[int | None] = mapped_column(Integer)
    place_text: Mapped[str | None] = mapped_column(Text)
    posted_at: Mapped[str | None] = mapped_column(String(40))
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    gone_at: Mapped[datetime | None] = mapped_column(Timestamp)
    municipality_code: Mapped[str | None] = mapped_column(
        ForeignKey("municipalities.code"), index=True
    )
    country: Mapped[str | None] = mapped_column(String(2))
    place_method: Mapped[str | None] = mapped_column(String(30))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    fields: Mapped[dict | None] = mapped_column(JSON)
    extra: Mapped[dict | None] = mapped_column(JSON)
    # Incremental crawling: the listing entry's signature when last seen, and the time of the
    # last full fetch of the ad page (NULL: only ever seen on a listing, or imported).
    listing_signature: Mapped[str | None] = mapped_column(String(64))
    detail_fetched_at: Mapped[datetime | None] = mapped_column(Timestamp)
    person_id: Mapped[int | None] = mapped_column(ForeignKey("persons.id"), index=True)
    network_id: Mapped[int | None] = mapped_column(ForeignKey("networks.id"), index=True)


class AdVersion(Base):
    """What an ad said from ``valid_from`` until the next version: stays are built from these."""

    __tablename__ = "ad_versions"
    __table_args__ = (UniqueConstraint("ad_id", "valid_from"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    valid_from: Mapped[datetime] = mapped_column(Timestamp)
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str | None] = mapped_column(Text)
    text: Mapped[str | None] = mapped_column(Text)
    place_text: Mapped[str | None] = mapped_column(Text)
    phone_text: Mapped[str | None] = mapped_column(Text)
    municipality_code: Mapped[str | None] = mapped_column(String(6))
    country: Mapped[str | None] = mapped_column(String(2))
    phones: Mapped[list | None] = mapped_column(JSON)
    photo_urls: Mapped[list | None] = mapped_column(JSON)


class AdObservation(Base):
    """One day on which a crawl saw an ad online, and where the ad said she was that day."""

    __tablename__ = "ad_observations"
    __table_args__ = (UniqueConstraint("ad_id", "observed_on"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    observed_on: Mapped[date] = mapped_column(Date, index=True)
    observed_at: Mapped[datetime] = mapped_column(Timestamp)
    crawl_run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"))
    municipality_code: Mapped[str | None] = mapped_column(String(6))
    country: Mapped[str | None] = mapped_column(String(2))


class AdPhone(Base):
    __tablename__ = "ad_phones"
    __table_args__ = (UniqueConstraint("ad_id", "phone"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(20), index=True)  # E.164
    field: Mapped[str | None] = mapped_column(String(20))
    start: Mapped[int | None] = mapped_column(Integer)
    end: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp)


class AdPhoto(Base):
    __tablename__ = "ad_photos"
    __table_args__ = (UniqueConstraint("ad_id", "url"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    # Indexed: a crawl looks up the fingerprints of photo URLs it meets (pipelines.photo_reuse).
    url: Mapped[str] = mapped_column(Text, index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    phash: Mapped[str | None] = mapped_column(String(16), index=True)
    fingerprint: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(String(40))
    first_seen_at: Mapped[datetime] = mapped_column(Timestamp)
    last_seen_at: Mapped[datetime] = mapped_column(Timestamp)


class Link(Base):
    """Evidence that two ads belong to one person (level "person") or one network."""

    __tablename__ = "links"
    __table_args__ = (
        UniqueConstraint("ad_a", "ad_b", "kind", "value"),
        Index("ix_links_ad_b", "ad_b"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ad_a: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    ad_b: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))  # phone, photo, text, email, handle, forced
    level: Mapped[str] = mapped_column(String(10))  # person or network
    value: Mapped[str] = mapped_column(String(200))  # the shared value (or its pseudonym)
    strength: Mapped[float] = mapped_column(Float)
    detail: Mapped[dict | None] = mapped_column(JSON)  # offsets, photo urls, distances
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class LinkOverride(Base):
    """An analyst's decision to suppress or force a link, with the reason."""

    __tablename__ = "link_overrides"
    __table_args__ = (UniqueConstraint("ad_a", "ad_b"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ad_a: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"))
    ad_b: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(10))  # suppress or force
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(Timestamp)


class CrawlAnomaly(Base):
    __tablename__ = "crawl_anomalies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    crawl_run_id: Mapped[int | None] = mapped_column(ForeignKey("crawl_runs.id"), index=True)
    stage: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(60))
    site: Mapped[str | None] = mapped_column(String(50))
    site_ad_id: Mapped[str | None] = mapped_column(String(200))
    url: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(Timestamp)


class TrailStay(Base):
    __tablename__ = "trail_stays"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    municipality_code: Mapped[str | None] = mapped_column(String(6), index=True)
    country: Mapped[str] = mapped_column(String(2), default="NL")
    place_name: Mapped[str | None] = mapped_column(String(100))
    arrived_at: Mapped[date] = mapped_column(Date)
    left_at: Mapped[date] = mapped_column(Date)
    n_ads: Mapped[int] = mapped_column(Integer)
    sites: Mapped[str] = mapped_column(Text)  # comma-separated site names


class TrailMove(Base):
    __tablename__ = "trail_moves"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="CASCADE"), index=True)
    from_municipality_code: Mapped[str | None] = mapped_column(String(6))
    to_municipality_code: Mapped[str | None] = mapped_column(String(6))
    from_country: Mapped[str] = mapped_column(String(2), default="NL")
    to_country: Mapped[str] = mapped_column(String(2), default="NL")
    left_at: Mapped[date] = mapped_column(Date)
    arrived_at: Mapped[date] = mapped_column(Date)


class LinkRun(Base):
    """One run of the linker: what it had already seen (watermarks) and what it changed."""

    __tablename__ = "link_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[datetime] = mapped_column(Timestamp)
    finished_at: Mapped[datetime | None] = mapped_column(Timestamp)
    full: Mapped[bool] = mapped_column(Boolean, default=False)
    watermark: Mapped[dict | None] = mapped_column(JSON)  # highest row ids already linked
    stats: Mapped[dict | None] = mapped_column(JSON)


class PersonEvent(Base):
    """A change of a person between link runs: created, merged with another, or split."""

    __tablename__ = "person_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    link_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("link_runs.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(Timestamp)
    kind: Mapped[str] = mapped_column(String(10))  # created, merged, split
    # Plain integers, not foreign keys: the event outlives a person absorbed by a merge.
    person_id: Mapped[int] = mapped_column(Integer, index=True)
    other_person_id: Mapped[int | None] = mapped_column(Integer)
    n_ads: Mapped[int] = mapped_column(Integer, default=0)  # ads that moved
    detail: Mapped[dict | None] = mapped_column(JSON)


from lovitura_crawl.db import models_privacy  # noqa: E402, F401  (registers the privacy tables)
