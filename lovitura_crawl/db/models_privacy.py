"""SQLAlchemy models of lawful processing: purposes, pseudonyms and the audit log.

Documented in docs/schema.md under "Lawful processing" and explained in docs/privacy.md. The
analyst views (``analyst_*``) are created by the migration ``0003_privacy``; views are not
models, so they are listed in :data:`ANALYST_VIEWS` for the code that grants and reads them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from lovitura_crawl.db.models import Base, Timestamp

ANALYST_VIEWS = (
    "analyst_ads",
    "analyst_observations",
    "analyst_phones",
    "analyst_links",
    "analyst_persons",
    "analyst_networks",
    "analyst_trail_stays",
    "analyst_trail_moves",
    "analyst_municipalities",
    "analyst_pseudonym_keys",
)


class Purpose(Base):
    """A purpose or case id under which crawls, link runs, reports and exports run."""

    __tablename__ = "purposes"

    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text)
    legal_basis: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Timestamp)
    created_by: Mapped[str] = mapped_column(String(100))
    closed_at: Mapped[datetime | None] = mapped_column(Timestamp)
    demo: Mapped[bool] = mapped_column(Boolean, default=False)


class CaseAd(Base):
    """An ad that belongs to a case: kept until the case is closed, up to the maximum term."""

    __tablename__ = "case_ads"
    __table_args__ = (UniqueConstraint("purpose_code", "ad_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    purpose_code: Mapped[str] = mapped_column(ForeignKey("purposes.code"), index=True)
    ad_id: Mapped[int] = mapped_column(ForeignKey("ads.id", ondelete="CASCADE"), index=True)
    added_at: Mapped[datetime] = mapped_column(Timestamp)
    added_by: Mapped[str] = mapped_column(String(100))


class CrawlRunPurpose(Base):
    """The purpose a crawl run ran under: what it stored is traced through ``crawl_run_id``."""

    __tablename__ = "crawl_run_purposes"

    crawl_run_id: Mapped[int] = mapped_column(
        ForeignKey("crawl_runs.id", ondelete="CASCADE"), primary_key=True
    )
    purpose_code: Mapped[str] = mapped_column(ForeignKey("purposes.code"), index=True)


class LinkRunPurpose(Base):
    """The purpose a link run ran under."""

    __tablename__ = "link_run_purposes"

    link_run_id: Mapped[int] = mapped_column(
        ForeignKey("link_runs.id", ondelete="CASCADE"), primary_key=True
    )
    purpose_code: Mapped[str] = mapped_column(ForeignKey("purposes.code"), index=True)


class Pseudonym(Base):
    """The keyed pseudonym of a direct identifier; the key itself is never in the database."""

    __tablename__ = "pseudonyms"
    __table_args__ = (UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))  # phone, email, handle, or a link kind
    value: Mapped[str] = mapped_column(String(200))  # the clear value (E.164 for phones)
    pseudonym: Mapped[str] = mapped_column(String(40), index=True)
    key_id: Mapped[str] = mapped_column(String(16))  # which key made it (not the key)


class AuditEntry(Base):
    """One hash-chained entry of the audit log: append only, checked by ``audit verify``."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[datetime] = mapped_column(Timestamp, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    db_user: Mapped[str | None] = mapped_column(String(100))
    host: Mapped[str | None] = mapped_column(String(200))
    purpose: Mapped[str | None] = mapped_column(String(64), index=True)
    command: Mapped[str] = mapped_column(String(60))
    filters: Mapped[str] = mapped_column(Text)  # canonical JSON, hashed as stored
    rows: Mapped[int | None] = mapped_column(Integer)
    file_path: Mapped[str | None] = mapped_column(Text)
    file_sha256: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(Text)  # canonical JSON (e.g. a deletion receipt)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    entry_hash: Mapped[str] = mapped_column(String(64), unique=True)
