"""Retention terms, and ``purge``: deleting what has been kept long enough.

The terms are set per kind of data in a TOML file (``--policy FILE`` or
$LOVITURA_RETENTION_FILE, section ``[retention]``); docs/privacy.md lists them with their
defaults. An ad's age is counted from the last time a crawl saw it online:

* ads in no person and no open case go after ``unlinked_ad_days``;
* ads linked to a person but to no open case go after ``person_ad_days``;
* everything goes after ``max_days``, case or not (also old observations, superseded versions,
  crawl and link runs);
* a closed case stops protecting its ads ``closed_case_days`` after it was closed.

A purge deletes from every table (through :mod:`lovitura_crawl.privacy.erase`), removes
expired exports, cache and job files and temporary files, rewrites the database files, and
appends a deletion receipt (counts, time, terms; never a deleted value) to the audit log. Run
it again and it finds nothing more to do, so it is safe to start from cron.
"""

from __future__ import annotations

import os
import tomllib
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, exists, func, not_, or_, select

from lovitura_crawl.db import models, models_privacy
from lovitura_crawl.privacy import audit, erase, files, traces

POLICY_ENV = "LOVITURA_RETENTION_FILE"
ADS: Table = models.Ad.__table__  # type: ignore[assignment]
VERSIONS: Table = models.AdVersion.__table__  # type: ignore[assignment]
CASE_ADS: Table = models_privacy.CaseAd.__table__  # type: ignore[assignment]
PURPOSES: Table = models_privacy.Purpose.__table__  # type: ignore[assignment]
AUDIT: Table = models_privacy.AuditEntry.__table__  # type: ignore[assignment]
# Dated tables and the term that applies to them: (table, time column, policy field).
DATED = (
    ("ad_observations", "observed_at", "max_days"),
    ("crawl_anomalies", "at", "anomaly_days"),
    ("crawl_runs", "started_at", "max_days"),
    ("person_events", "at", "max_days"),
    ("link_runs", "started_at", "max_days"),
)
KEEP_NEWEST = {"link_runs"}  # the linker's watermark lives in its newest run


class PolicyError(ValueError):
    """The retention policy file is unreadable or its terms contradict each other."""


@dataclass(frozen=True)
class FolderTerm:
    path: Path
    days: int


@dataclass(frozen=True)
class RetentionPolicy:
    unlinked_ad_days: int = 90
    person_ad_days: int = 365
    max_days: int = 1825
    closed_case_days: int = 30
    anomaly_days: int = 30
    export_days: int = 30
    cache_days: int = 7
    temp_days: int = 1
    folders: tuple[FolderTerm, ...] = ()

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name != "folders" and (not isinstance(value, int) or value < 0):
                raise PolicyError(f"retention term {item.name} = {value!r}: give whole days, >= 0")
        if not self.unlinked_ad_days <= self.person_ad_days <= self.max_days:
            raise PolicyError(
                "retention terms must satisfy unlinked_ad_days <= person_ad_days <= max_days "
                f"(now {self.unlinked_ad_days}, {self.person_ad_days}, {self.max_days})"
            )

    def terms(self) -> dict[str, Any]:
        """The terms as plain values, for the deletion receipt."""
        values = asdict(self)
        values["folders"] = [{"path": str(f.path), "days": f.days} for f in self.folders]
        return values


def load_policy(path: Path | None = None, env: Mapping[str, str] | None = None) -> RetentionPolicy:
    """The policy in ``path`` (else $LOVITURA_RETENTION_FILE), else the defaults."""
    environ = os.environ if env is None else env
    chosen = path or (Path(environ[POLICY_ENV]) if environ.get(POLICY_ENV) else None)
    if chosen is None:
        return RetentionPolicy()
    try:
        data = tomllib.loads(chosen.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise PolicyError(f"cannot read the retention policy {chosen}: {exc}") from exc
    section = data.get("retention")
    if not isinstance(section, dict):
        raise PolicyError(f"{chosen} has no [retention] section; see docs/privacy.md")
    return _policy_from(section, chosen)


def _policy_from(section: dict[str, Any], source: Path) -> RetentionPolicy:
    known = {item.name for item in fields(RetentionPolicy)}
    unknown = sorted(set(section) - known)
    if unknown:
        raise PolicyError(f"{source}: unknown retention terms {unknown}; known: {sorted(known)}")
    values = dict(section)
    try:
        values["folders"] = tuple(
            FolderTerm(Path(str(f["path"])).expanduser(), int(f["days"]))
            for f in section.get("folders", [])
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(
            f'{source}: each [[retention.folders]] needs path = "..." and days = N'
        ) from exc
    return RetentionPolicy(**values)


@dataclass
class PurgeReceipt:
    now: datetime
    terms: dict[str, Any]
    dry_run: bool
    counts: Counter[str] = field(default_factory=Counter)
    files: Counter[str] = field(default_factory=Counter)
    storage: dict[str, Any] = field(default_factory=dict)
    persons_to_rebuild: int = 0  # persons who lost ads or dates: their trails were emptied
    trails_rebuilt: bool = False  # set after the receipt was recorded
    audit_head: str | None = None

    @property
    def total_rows(self) -> int:
        return sum(self.counts.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "now": audit.utc_text(self.now),
            "dry_run": self.dry_run,
            "terms": self.terms,
            "rows": dict(sorted(self.counts.items())),
            "files": dict(sorted(self.files.items())),
            "storage": self.storage,
            "persons_to_rebuild": self.persons_to_rebuild,
        }


def _before(now: datetime, days: int) -> datetime:
    return now - timedelta(days=days)


def expired_ads(conn: Connection, policy: RetentionPolicy, now: datetime) -> list[int]:
    """Ids of the ads whose term has passed at ``now``."""
    protecting_case = exists().where(
        and_(
            CASE_ADS.c.ad_id == ADS.c.id,
            PURPOSES.c.code == CASE_ADS.c.purpose_code,
            or_(
                PURPOSES.c.closed_at.is_(None),
                PURPOSES.c.closed_at >= _before(now, policy.closed_case_days),
            ),
        )
    )
    seen = ADS.c.last_seen_at
    condition = or_(
        seen < _before(now, policy.max_days),
        and_(
            not_(protecting_case),
            or_(
                and_(ADS.c.person_id.is_(None), seen < _before(now, policy.unlinked_ad_days)),
                and_(ADS.c.person_id.is_not(None), seen < _before(now, policy.person_ad_days)),
            ),
        ),
    )
    return list(conn.execute(select(ADS.c.id).where(condition)).scalars())


def superseded_versions(conn: Connection, cutoff: datetime) -> list[int]:
    """Versions of an ad that stopped being current before ``cutoff``."""
    later = VERSIONS.alias("later")
    replaced = exists().where(
        and_(
            later.c.ad_id == VERSIONS.c.ad_id,
            later.c.valid_from > VERSIONS.c.valid_from,
            later.c.valid_from < cutoff,
        )
    )
    return list(conn.execute(select(VERSIONS.c.id).where(replaced)).scalars())


def _expired_dated(conn: Connection, policy: RetentionPolicy, now: datetime) -> dict[str, list]:
    found: dict[str, list] = {}
    for name, column, term in DATED:
        table = erase.METADATA.tables.get(name)
        if table is None:
            continue
        key = erase.primary_key(table)
        query = select(key).where(table.c[column] < _before(now, getattr(policy, term)))
        if name in KEEP_NEWEST:
            newest = conn.execute(select(func.max(key))).scalar()
            query = query.where(key != newest) if newest is not None else query
        found[name] = list(conn.execute(query).scalars())
    return found


def _persons_of(conn: Connection, table: Table, ids: list[Any]) -> set[int]:
    """Persons whose ads own these rows of ``table`` (which has an ``ad_id``)."""
    found: set[int] = set()
    key = erase.primary_key(table)
    for part in erase.chunks(ids):
        query = (
            select(ADS.c.person_id)
            .join(table, table.c.ad_id == ADS.c.id)
            .where(key.in_(part), ADS.c.person_id.is_not(None))
            .distinct()
        )
        found |= set(conn.execute(query).scalars())
    return found


def delete_expired(conn: Connection, policy: RetentionPolicy, now: datetime) -> erase.Erased:
    """Delete every expired row in one transaction (the caller's)."""
    traces.secure(conn)
    erased = erase.delete_ads(conn, expired_ads(conn, policy, now))
    expired = _expired_dated(conn, policy, now)
    expired["ad_versions"] = superseded_versions(conn, _before(now, policy.max_days))
    # Trails are built from versions and observations: persons who lose some have theirs
    # emptied and rebuilt, so no stay keeps a date that is no longer stored.
    touched: set[int] = set()
    for name in ("ad_versions", "ad_observations"):
        touched |= _persons_of(conn, erase.METADATA.tables[name], expired.get(name, []))
    for name, ids in expired.items():
        erase.delete_rows(conn, erase.METADATA.tables[name], ids, erased.counts)
    erased.counts.update(erase.clear_trails(conn, touched))
    erased.persons_to_rebuild |= touched
    erased.counts = +erased.counts  # drop zero counts
    return erased


def _expired_exports(engine: Engine, cutoff: datetime) -> list[tuple[str, str]]:
    query = select(AUDIT.c.file_path, AUDIT.c.file_sha256).where(
        AUDIT.c.file_path.is_not(None), AUDIT.c.file_sha256.is_not(None), AUDIT.c.at < cutoff
    )
    with engine.connect() as conn:
        return sorted({(path, digest) for path, digest in conn.execute(query)})


def remove_files(
    engine: Engine,
    policy: RetentionPolicy,
    now: datetime,
    cache_dirs: Iterable[Path] = (),
    protect: Collection[Path] = (),
    dry_run: bool = False,
) -> Counter[str]:
    """Expired exports, cache and job files, configured folders and temporary files."""
    removed: Counter[str] = Counter()
    exports = _expired_exports(engine, _before(now, policy.export_days))
    removed["exports"] = files.remove_exports(exports, dry_run)
    for folder in cache_dirs:
        removed["cache"] += files.remove_old_files(
            folder, _before(now, policy.cache_days), protect, dry_run
        )
    for term in policy.folders:
        removed[str(term.path)] += files.remove_old_files(
            term.path, _before(now, term.days), protect, dry_run
        )
    removed["temp"] = files.remove_temp(_before(now, policy.temp_days), dry_run)
    return +removed


def database_files(engine: Engine) -> list[Path]:
    """The SQLite file and its -wal/-shm (never removed by a folder clean-up)."""
    name = engine.url.database
    if engine.dialect.name != "sqlite" or not name or name == ":memory:":
        return []
    return [Path(f"{name}{suffix}").resolve() for suffix in ("", "-wal", "-shm", "-journal")]


def purge(
    engine: Engine,
    policy: RetentionPolicy,
    now: datetime | None = None,
    *,
    actor: str,
    dry_run: bool = False,
    vacuum_full: bool = True,
    cache_dirs: Iterable[Path] = (),
    protect: Collection[Path] = (),
    rebuild: Callable[[Engine], object] | None = None,
) -> PurgeReceipt:
    """Delete everything whose term has passed at ``now`` and record the receipt.

    ``rebuild`` (e.g. the trail builder) runs last when persons lost ads, so their trails are
    made again from what is left. With ``dry_run`` nothing changes and nothing is recorded.
    """
    moment = now or datetime.now(UTC)
    receipt = PurgeReceipt(moment, policy.terms(), dry_run)
    with engine.connect() as conn:
        transaction = conn.begin()
        erased = delete_expired(conn, policy, moment)
        if dry_run:
            transaction.rollback()
        else:
            transaction.commit()
    receipt.counts = erased.counts
    keep = {*database_files(engine), *protect}
    receipt.files = remove_files(engine, policy, moment, cache_dirs, keep, dry_run)
    if dry_run:
        return receipt
    receipt.persons_to_rebuild = len(erased.persons_to_rebuild)
    if receipt.counts or engine.dialect.name == "sqlite":
        tables = [*receipt.counts, "pseudonyms"]
        receipt.storage = traces.compact(engine, tables, vacuum_full).as_dict()
    entry = audit.append(
        engine,
        actor,
        None,
        "purge",
        {"now": audit.utc_text(moment)},
        rows=receipt.total_rows,
        detail=receipt.as_dict(),
    )
    receipt.audit_head = entry.head
    traces.checkpoint(engine)  # the receipt went through the SQLite WAL: leave it empty again
    # Last, so a failing rebuild cannot cost the receipt; it writes nothing that was deleted.
    if erased.persons_to_rebuild and rebuild is not None:
        rebuild(engine)
        receipt.trails_rebuilt = True
    return receipt
