"""Deleting ads and everything derived from them, and leaving no trace in the database files.

Rows that depend on a deleted row are found from the models' foreign keys, so a table added
later is covered without a change here: ``ON DELETE CASCADE`` rows are deleted (recursively),
nullable references are set to NULL, and any other reference stops the deletion with an error
rather than leave data behind. Persons who lose ads lose their derived trail (rebuilt by the
caller) and persons who lose all their ads are deleted.

Callers delete in a transaction made secure with :func:`lovitura_crawl.privacy.traces.secure`
and rewrite the database files afterwards with :func:`lovitura_crawl.privacy.traces.compact`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    ForeignKey,
    Table,
    delete,
    func,
    select,
    update,
)

from lovitura_crawl.db import models, models_privacy
from lovitura_crawl.privacy import identifiers

METADATA = models_privacy.Base.metadata  # with the privacy tables registered in it
ADS: Table = models.Ad.__table__  # type: ignore[assignment]
PERSONS: Table = models.Person.__table__  # type: ignore[assignment]
NETWORKS: Table = models.Network.__table__  # type: ignore[assignment]
CHUNK = 500
# Tables derived from ads that the trail builder writes again: emptied for a person who loses
# ads, so no stay or move keeps the dates of a deleted ad.
DERIVED_PERSON_TABLES = ("trail_stays", "trail_moves")
# References without a foreign key (their rows outlive what they name): deleted with it.
SOFT_REFERENCES = {"persons": (("person_events", "person_id"),)}


class ErasureError(RuntimeError):
    """A row cannot be deleted without leaving data behind or breaking a reference."""


@dataclass
class Erased:
    counts: Counter[str] = field(default_factory=Counter)
    persons_to_rebuild: set[int] = field(default_factory=set)

    def __iadd__(self, other: Erased) -> Erased:
        self.counts.update(other.counts)
        self.persons_to_rebuild |= other.persons_to_rebuild
        return self


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def references(table: Table) -> list[tuple[Table, ForeignKey]]:
    found = []
    for other in METADATA.sorted_tables:
        for fk in other.foreign_keys:
            if fk.column.table is table:
                found.append((other, fk))
    return found


def primary_key(table: Table) -> Column[Any]:
    columns = list(table.primary_key.columns)
    if len(columns) != 1:
        raise ErasureError(f"{table.name} has no single-column primary key to delete by")
    return columns[0]


def delete_rows(conn: Connection, table: Table, ids: Iterable[Any], counts: Counter[str]) -> None:
    """Delete rows of ``table`` by primary key, and what depends on them, counting per table."""
    keys = sorted(set(ids))
    if not keys:
        return
    key = primary_key(table)
    for dependent, fk in references(table):
        _handle_dependents(conn, dependent, fk, keys, counts)
    for soft_name, soft_column in SOFT_REFERENCES.get(table.name, ()):
        soft = METADATA.tables.get(soft_name)
        if soft is not None:
            for part in chunks(keys):
                result = conn.execute(delete(soft).where(soft.c[soft_column].in_(part)))
                counts[soft_name] += int(result.rowcount or 0)
    for part in chunks(keys):
        counts[table.name] += int(conn.execute(delete(table).where(key.in_(part))).rowcount or 0)


def _handle_dependents(
    conn: Connection, dependent: Table, fk: ForeignKey, keys: list[Any], counts: Counter[str]
) -> None:
    column = fk.parent
    if (fk.ondelete or "").upper() == "CASCADE":
        if references(dependent):
            pk = primary_key(dependent)
            for part in chunks(keys):
                found = conn.execute(select(pk).where(column.in_(part))).scalars().all()
                delete_rows(conn, dependent, found, counts)
        else:
            for part in chunks(keys):
                result = conn.execute(delete(dependent).where(column.in_(part)))
                counts[dependent.name] += int(result.rowcount or 0)
    elif column.nullable:
        for part in chunks(keys):
            conn.execute(update(dependent).where(column.in_(part)).values({column.name: None}))
    else:
        raise ErasureError(
            f"{dependent.name}.{column.name} references {fk.column.table.name} without "
            "ON DELETE CASCADE and cannot be NULL: give the foreign key ondelete='CASCADE' "
            "in a migration, or make it nullable"
        )


def delete_ads(conn: Connection, ad_ids: Iterable[int]) -> Erased:
    """Delete ads with every row that depends on them, and tidy persons and networks."""
    ids = sorted(set(ad_ids))
    erased = Erased()
    if not ids:
        return erased
    persons: set[int] = set()
    networks: set[int] = set()
    for part in chunks(ids):
        rows = conn.execute(
            select(ADS.c.person_id, ADS.c.network_id).where(ADS.c.id.in_(part))
        ).all()
        persons |= {r.person_id for r in rows if r.person_id is not None}
        networks |= {r.network_id for r in rows if r.network_id is not None}
    delete_rows(conn, ADS, ids, erased.counts)
    erased += tidy_persons(conn, persons)
    networks |= _networks_of(conn, persons)
    erased.counts.update(tidy_networks(conn, networks))
    erased.counts["pseudonyms"] += identifiers.prune(conn)
    return erased


def _networks_of(conn: Connection, person_ids: set[int]) -> set[int]:
    found: set[int] = set()
    for part in chunks(sorted(person_ids)):
        rows = conn.execute(select(PERSONS.c.network_id).where(PERSONS.c.id.in_(part)))
        found |= {n for n in rows.scalars() if n is not None}
    return found


def tidy_persons(conn: Connection, person_ids: Iterable[int]) -> Erased:
    """Persons who lost ads: delete those with none left, empty the derived trail of the rest
    and correct their counts (the caller rebuilds their trails)."""
    ids = sorted(set(person_ids))
    erased = Erased()
    remaining: dict[int, Any] = {}
    for part in chunks(ids):
        rows = conn.execute(
            select(
                ADS.c.person_id,
                func.count().label("n_ads"),
                func.min(ADS.c.first_seen_at).label("first_seen_at"),
                func.max(ADS.c.last_seen_at).label("last_seen_at"),
            )
            .where(ADS.c.person_id.in_(part))
            .group_by(ADS.c.person_id)
        )
        remaining.update({row.person_id: row for row in rows})
    gone = [p for p in ids if p not in remaining]
    delete_rows(conn, PERSONS, gone, erased.counts)
    kept = sorted(remaining)
    erased.counts.update(clear_trails(conn, kept))
    for person_id, row in remaining.items():
        conn.execute(
            update(PERSONS)
            .where(PERSONS.c.id == person_id)
            .values(n_ads=row.n_ads, first_seen_at=row.first_seen_at, last_seen_at=row.last_seen_at)
        )
    erased.persons_to_rebuild = set(kept)
    return erased


def clear_trails(conn: Connection, person_ids: Iterable[int]) -> Counter[str]:
    """Delete the derived trail rows of these persons (the trail builder makes them again)."""
    counts: Counter[str] = Counter()
    ids = sorted(set(person_ids))
    for name in DERIVED_PERSON_TABLES:
        table = METADATA.tables.get(name)
        if table is None:
            continue
        for part in chunks(ids):
            result = conn.execute(delete(table).where(table.c.person_id.in_(part)))
            counts[name] += int(result.rowcount or 0)
    return counts


def tidy_networks(conn: Connection, network_ids: Iterable[int]) -> Counter[str]:
    """Networks that lost persons or ads: delete the empty ones, recount the rest and drop
    their evidence summary (it may name what was deleted; the linker writes it again)."""
    counts: Counter[str] = Counter()
    empty = []
    for network_id in sorted(set(network_ids)):
        n_persons = conn.execute(
            select(func.count()).select_from(PERSONS).where(PERSONS.c.network_id == network_id)
        ).scalar_one()
        n_ads = conn.execute(
            select(func.count()).select_from(ADS).where(ADS.c.network_id == network_id)
        ).scalar_one()
        if not n_persons and not n_ads:
            empty.append(network_id)
            continue
        conn.execute(
            update(NETWORKS)
            .where(NETWORKS.c.id == network_id)
            .values(n_persons=n_persons, n_ads=n_ads, evidence=None)
        )
    delete_rows(conn, NETWORKS, empty, counts)
    return counts
