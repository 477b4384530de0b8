"""The ``lovitura`` commands of lawful processing: purge, audit, subject, query, purpose, and
``db roles`` / ``db pseudonymise``. ``register(main)`` adds them to the ``lovitura`` group."""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from lovitura_crawl.db.engine import make_engine, masked, resolve_url

EXIT_LOCKED = 75  # EX_TEMPFAIL: another purge was still running

DB_OPTION = click.option(
    "--db",
    "db_url",
    envvar="LOVITURA_DATABASE_URL",
    default=None,
    help="Database URL: sqlite:///PATH or postgresql://USER@HOST:PORT/DB. "
    "Default: $LOVITURA_DATABASE_URL, else var/lovitura.sqlite in the current folder.",
)
PURPOSE_OPTION = click.option(
    "--purpose",
    envvar="LOVITURA_PURPOSE",
    default=None,
    help="Purpose or case id this runs under (see `lovitura purpose list`). "
    "Default: $LOVITURA_PURPOSE.",
)
KEY_OPTION = click.option(
    "--key-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LOVITURA_PSEUDONYM_KEY_FILE",
    default=None,
    help="File with the pseudonym key. Default: $LOVITURA_PSEUDONYM_KEY_FILE, "
    "else the key in $LOVITURA_PSEUDONYM_KEY.",
)
REGION_OPTION = click.option(
    "--region",
    default="NL",
    show_default=True,
    help="Country of phone numbers written without a country code.",
)


def _key(key_file: Path | None) -> bytes:
    from lovitura_crawl.privacy.pseudonym import PseudonymKeyError, load_key

    try:
        return load_key(key_file)
    except PseudonymKeyError as exc:
        raise click.ClickException(str(exc)) from exc


def _purpose(engine: Any, value: str | None) -> str:
    from lovitura_crawl.privacy.purpose import PurposeError, open_purpose

    try:
        return open_purpose(engine, value)
    except PurposeError as exc:
        raise click.UsageError(str(exc)) from exc


def _moment(value: str | None) -> datetime:
    from lovitura_crawl.clock import ClockError, parse_clock

    if value is None:
        return datetime.now(UTC)
    try:
        return parse_clock(value)
    except ClockError as exc:
        raise click.BadParameter(
            str(exc).replace("LOVITURA_CLOCK=", ""), param_hint="--now"
        ) from exc


def _e164(number: str, region: str) -> str:
    from lovitura_crawl.privacy.pseudonym import PhoneNumberError, normalise_phone

    try:
        return normalise_phone(number, region)
    except PhoneNumberError as exc:
        raise click.BadParameter(str(exc), param_hint="--phone") from exc


def _rebuild_trails(engine: Any) -> None:
    from matching.trails import build_trails

    build_trails(engine)


# --- purge -----------------------------------------------------------------------------------
@click.command()
@DB_OPTION
@click.option(
    "--policy",
    "policy_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    envvar="LOVITURA_RETENTION_FILE",
    default=None,
    help="TOML file with the retention terms (docs/privacy.md). "
    "Default: $LOVITURA_RETENTION_FILE, else the built-in terms.",
)
@click.option(
    "--now",
    default=None,
    help="Purge as if it were this ISO 8601 time with a zone, e.g. 2028-01-01T00:00:00+01:00 "
    "(replays).",
)
@click.option("--dry-run", is_flag=True, help="Count what would go; change nothing.")
@click.option(
    "--no-vacuum-full",
    is_flag=True,
    help="PostgreSQL: plain VACUUM instead of VACUUM FULL (no exclusive lock, but deleted "
    "values may stay in free space of the table files until it is reused).",
)
@click.option("--quiet", is_flag=True, help="Print nothing when all went well (cron).")
def purge(
    db_url: str | None,
    policy_path: Path | None,
    now: str | None,
    dry_run: bool,
    no_vacuum_full: bool,
    quiet: bool,
) -> None:
    """Delete what was kept longer than its retention term, everywhere, with a receipt.

    Removes expired ads with everything derived from them, old observations, versions, runs
    and anomalies, expired exports, cache and job files and temporary files; rewrites the
    database files so no deleted value stays in them; and appends a deletion receipt to the
    audit log. Safe to start from cron: a purge that finds another one running exits with
    code 75, and a second run finds nothing more to delete.
    """
    from lovitura_crawl.crawl import project_settings
    from lovitura_crawl.locks import SiteLocked, site_lock
    from lovitura_crawl.privacy.audit import current_actor
    from lovitura_crawl.privacy.files import crawl_directories
    from lovitura_crawl.privacy.pseudonym import KEY_FILE_ENV
    from lovitura_crawl.privacy.retention import PolicyError, load_policy
    from lovitura_crawl.privacy.retention import purge as run_purge

    try:
        policy = load_policy(policy_path)
    except PolicyError as exc:
        raise click.BadParameter(str(exc), param_hint="--policy") from exc
    moment = _moment(now)
    url = resolve_url(db_url, create=False)
    engine = make_engine(url)
    protect = [Path(os.environ[KEY_FILE_ENV])] if os.environ.get(KEY_FILE_ENV) else []
    try:
        with site_lock("purge", url):
            receipt = run_purge(
                engine,
                policy,
                moment,
                actor=current_actor(),
                dry_run=dry_run,
                vacuum_full=not no_vacuum_full,
                cache_dirs=crawl_directories(project_settings()),
                protect=protect,
                rebuild=_rebuild_trails,
            )
    except SiteLocked:
        click.echo("another purge is running; this one is skipped", err=True)
        sys.exit(EXIT_LOCKED)
    finally:
        engine.dispose()
    if not quiet or dry_run:
        _print_receipt(receipt)
    if receipt.storage and not receipt.storage.get("clean", True):
        raise click.ClickException(
            "another connection kept the SQLite write-ahead log open, so deleted values may "
            "remain in the -wal file: run `lovitura purge` again when no crawl is running"
        )


def _print_receipt(receipt: Any) -> None:
    verb = "would delete" if receipt.dry_run else "deleted"
    rows = ", ".join(f"{n} {t}" for t, n in sorted(receipt.counts.items())) or "no rows"
    files = ", ".join(f"{n} {k}" for k, n in sorted(receipt.files.items())) or "no files"
    click.echo(f"purge at {receipt.now:%Y-%m-%d %H:%M %Z}: {verb} {rows}; {files}")
    if receipt.persons_to_rebuild and not receipt.trails_rebuilt and not receipt.dry_run:
        click.echo(f"{receipt.persons_to_rebuild} persons need `lovitura link` to rebuild trails")
    if receipt.audit_head:
        click.echo(f"receipt in the audit log, head {receipt.audit_head}")


# --- audit -----------------------------------------------------------------------------------
@click.group("audit")
def audit_group() -> None:
    """The audit log: check that it is intact, and read it."""


@audit_group.command("verify")
@DB_OPTION
@click.option(
    "--expect-head",
    default=None,
    metavar="SEQ:HASH",
    help="A head printed by an earlier verify: fail if that entry is gone (entries removed "
    "from the end leave an intact but shorter chain).",
)
def audit_verify(db_url: str | None, expect_head: str | None) -> None:
    """Recompute the hash chain and fail (exit 1) on an edited or removed entry."""
    from lovitura_crawl.privacy.audit import verify

    engine = make_engine(db_url, create=False)
    try:
        result = verify(engine, expect_head)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expect-head") from exc
    finally:
        engine.dispose()
    if not result.ok:
        for problem in result.problems:
            click.echo(f"TAMPERED: {problem}", err=True)
        raise click.ClickException(f"the audit log of {result.entries} entries is not intact")
    click.echo(f"{result.entries} entries, chain intact; head {result.head}")
    click.echo("keep the head outside the database and pass it as --expect-head next time")


def _limit_option(default: int, text: str) -> Any:
    """``--limit``: a positive number of rows (0 or less would show nothing, audited)."""
    return click.option(
        "--limit", default=default, show_default=True, type=click.IntRange(min=1), help=text
    )


@audit_group.command("show")
@DB_OPTION
@_limit_option(50, "Newest entries to show.")
@click.option("--purpose", default=None, help="Only entries of this purpose.")
@click.option("--command", "command_name", default=None, help="Only this command, e.g. purge.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def audit_show(
    db_url: str | None, limit: int, purpose: str | None, command_name: str | None, as_json: bool
) -> None:
    """Show the newest audit entries: time, user, purpose, command, filters, rows, file hash."""
    from lovitura_crawl.privacy.audit import records

    engine = make_engine(db_url, create=False)
    try:
        entries = records(engine, purpose=purpose, command=command_name, limit=limit)
    finally:
        engine.dispose()
    if as_json:
        for entry in entries:
            click.echo(json.dumps(entry.as_dict(), ensure_ascii=False, default=str))
        return
    for e in reversed(entries):
        at = e.as_dict()["at"][:19].replace("T", " ")
        rows = "" if e.rows is None else f" rows={e.rows}"
        digest = f" sha256={e.file_sha256[:12]}" if e.file_sha256 else ""
        filters = e.filters if len(e.filters) <= 160 else e.filters[:157] + "..."
        click.echo(
            f"{e.seq:>6} {at} {e.actor} {e.purpose or '-'} {e.command}{rows}{digest} {filters}"
        )


# --- db roles, db pseudonymise ---------------------------------------------------------------
@click.command("roles")
@DB_OPTION
@click.option("--prefix", default="lovitura", show_default=True, help="Role name prefix.")
@click.option(
    "--analyst-timeout",
    default="30s",
    show_default=True,
    help="Default statement_timeout of the analyst role and its members.",
)
@click.option(
    "--member",
    "members",
    multiple=True,
    metavar="KIND=LOGIN",
    help="Grant a role to a personal login (repeatable), e.g. analyst=alice.",
)
def db_roles(
    db_url: str | None, prefix: str, analyst_timeout: str, members: tuple[str, ...]
) -> None:
    """PostgreSQL: create the crawler, analyst and auditor roles and set their grants.

    Run as the database owner after every `lovitura db upgrade`. The analyst role may read only
    the analyst views (pseudonyms, no ad text) and the auditor only the audit log.
    """
    from lovitura_crawl.privacy.roles import RolesError, create_roles

    wanted: dict[str, list[str]] = {}
    for value in members:
        kind, sep, login = value.partition("=")
        if not sep or not kind or not login:
            raise click.BadParameter(f"{value!r} is not KIND=LOGIN", param_hint="--member")
        wanted.setdefault(kind, []).append(login)
    engine = make_engine(db_url)
    try:
        names = create_roles(engine, prefix, analyst_timeout, wanted)
    except RolesError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    for kind, name in names.by_kind().items():
        click.echo(f"{kind:8} {name}")
    click.echo("roles have LOGIN and no password: set one, or grant them with --member")


@click.command("pseudonymise")
@DB_OPTION
@KEY_OPTION
def db_pseudonymise(db_url: str | None, key_file: Path | None) -> None:
    """Give every stored phone number and link value its keyed pseudonym (after a new key,
    or for data stored before pseudonyms existed)."""
    from lovitura_crawl.privacy.identifiers import sync

    key = _key(key_file)
    engine = make_engine(db_url, create=False)
    try:
        click.echo(str(sync(engine, key)))
    finally:
        engine.dispose()


# --- subject ---------------------------------------------------------------------------------
@click.command()
@DB_OPTION
@click.option("--phone", required=True, help="The subject's phone number, e.g. 0612345678.")
@REGION_OPTION
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="JSON file for everything stored about the number (readable by you only).",
)
@click.option("--erase", is_flag=True, help="After the export, delete it all, with a receipt.")
@click.option("--yes", is_flag=True, help="Do not ask before erasing.")
@PURPOSE_OPTION
@KEY_OPTION
def subject(
    db_url: str | None,
    phone: str,
    region: str,
    out: Path,
    erase: bool,
    yes: bool,
    purpose: str | None,
    key_file: Path | None,
) -> None:
    """A data subject's request: export every record and derived trail linked to a phone
    number, and with --erase remove them and their derived data."""
    from lovitura_crawl.privacy import subject as subject_rights
    from lovitura_crawl.privacy.audit import current_actor

    number = _e164(phone, region)
    key = _key(key_file)
    engine = make_engine(db_url, create=False)
    try:
        code = _purpose(engine, purpose)
        records = subject_rights.find(engine, number, key)
        exported = subject_rights.export(engine, records, out, actor=current_actor(), purpose=code)
        click.echo(
            f"wrote {exported.ads} ads and {exported.persons} persons to {exported.path} "
            f"(sha256 {exported.sha256})"
        )
        if not erase:
            return
        if not records.ad_ids:
            click.echo("nothing to erase")
            return
        if not yes:
            click.confirm(f"erase {len(records.ad_ids)} ads and their derived data?", abort=True)
        receipt = subject_rights.erase_subject(
            engine, records, actor=current_actor(), purpose=code, rebuild=_rebuild_trails
        )
    finally:
        engine.dispose()
    rows = ", ".join(f"{n} {t}" for t, n in receipt.counts.items())
    click.echo(f"erased {rows}; receipt in the audit log, head {receipt.audit_head}")
    if receipt.remaining:
        click.echo(
            f"the number still appears in {receipt.remaining} (text where no phone was read): "
            "review those rows",
            err=True,
        )


# --- query -----------------------------------------------------------------------------------
@click.command()
@click.argument("sql", required=False)
@DB_OPTION
@PURPOSE_OPTION
@click.option(
    "--phone",
    "phones",
    multiple=True,
    help="A phone number to search for (repeatable): bound as :phone, :phone2, ... after "
    "pseudonymising. Without SQL, lists the ads that carry the numbers.",
)
@REGION_OPTION
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE", help="Bind :NAME to VALUE.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the rows to this CSV file instead of showing them.",
)
@_limit_option(100_000, "At most this many rows.")
@click.option("--timeout", default=30.0, show_default=True, help="Statement timeout, seconds.")
@click.option(
    "--role",
    envvar="LOVITURA_ANALYST_ROLE",
    default="lovitura_analyst",
    show_default=True,
    help="PostgreSQL role the query runs as (`lovitura db roles`). "
    "Default: $LOVITURA_ANALYST_ROLE, else lovitura_analyst.",
)
@click.option(
    "--reveal",
    is_flag=True,
    help="Show clear values instead of pseudonyms (audited). The clear values are read with "
    "your own login, not with --role: a login with only the analyst role is refused.",
)
@KEY_OPTION
def query(
    sql: str | None,
    db_url: str | None,
    purpose: str | None,
    phones: tuple[str, ...],
    region: str,
    params: tuple[str, ...],
    out: Path | None,
    limit: int,
    timeout: float,
    role: str,
    reveal: bool,
    key_file: Path | None,
) -> None:
    """Run a read-only SQL query over the analyst views, audited.

    The query may read only the analyst_* views (docs/schema.md): phone numbers appear as
    pseudonyms, ad text not at all. Example:
    lovitura query --purpose ZAAK-1 --phone 0612345678
    """
    from lovitura_crawl.privacy import analyst, identifiers
    from lovitura_crawl.privacy.audit import AuditError, current_actor
    from lovitura_crawl.privacy.identifiers import RevealDenied
    from lovitura_crawl.privacy.pseudonym import PseudonymKeyError, pseudonymise_phone

    if sql is not None and not sql.strip().strip(";").strip():
        sql = None  # "" or ";": no statement
    if sql is None and not phones:
        raise click.UsageError("give SQL, or --phone to list the ads that carry a number")
    bound: dict[str, Any] = {}
    for value in params:
        name, sep, rest = value.partition("=")
        if not sep or not name.isidentifier():
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", param_hint="--param")
        bound[name] = rest
    url = resolve_url(db_url, create=False)
    engine = make_engine(url)
    reader = analyst.analyst_engine(url)
    try:
        code = _purpose(engine, purpose)
        if phones:
            key = _key(key_file)
            try:
                identifiers.check_key(reader, key)
            except PseudonymKeyError as exc:
                raise click.ClickException(str(exc)) from exc
            names = analyst.phone_param_names(len(phones))
            for name, phone in zip(names, phones, strict=True):
                bound[name] = pseudonymise_phone(_e164(phone, region), key)
        statement = sql if sql is not None else analyst.phone_sql(len(phones))
        outcome = analyst.run_audited(
            reader,
            engine,
            statement,
            bound,
            actor=current_actor(),
            purpose=code,
            out=out,
            reveal=reveal,
            role=role,
            timeout_s=timeout,
            limit=limit,
        )
    except (analyst.QueryError, RevealDenied, AuditError) as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        reader.dispose()
        engine.dispose()
    _show(outcome, limit)


def _show(outcome: Any, limit: int) -> None:
    result = outcome.result
    if outcome.path is not None:
        click.echo(f"wrote {len(result.rows)} rows to {outcome.path} (sha256 {outcome.sha256})")
    elif sys.stdout.isatty():
        table = Table()
        for column in result.columns:
            table.add_column(column, overflow="fold")
        for row in result.rows:
            table.add_row(*("" if v is None else str(v) for v in row))
        Console().print(table)
        click.echo(f"{len(result.rows)} rows", err=True)
    else:
        _echo_csv(result.columns, result.rows)
    if result.truncated:
        click.echo(f"only the first {limit} rows: raise --limit or narrow the query", err=True)


def _echo_csv(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """Rows as CSV on standard output, for a pipe (cells made spreadsheet-safe)."""
    import csv
    import io

    from lovitura_crawl.report import safe_cell

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    writer.writerows([safe_cell(v) for v in row] for row in rows)
    click.echo(buffer.getvalue(), nl=False)


# --- purpose ---------------------------------------------------------------------------------
@click.group("purpose")
def purpose_group() -> None:
    """Purposes and case ids: register, list, close, and attach ads to a case."""


@purpose_group.command("add")
@click.argument("code")
@DB_OPTION
@click.option("--description", required=True, help="What the processing is for.")
@click.option("--legal-basis", required=True, help="E.g. 'Wpg art. 9, onderzoek ZAAK-2026-0142'.")
def purpose_add(code: str, db_url: str | None, description: str, legal_basis: str) -> None:
    """Register purpose or case id CODE (the database is created or migrated first, as a crawl
    would: registering a purpose is usually the first thing done with a new database)."""
    from lovitura_crawl.db.migrate import upgrade
    from lovitura_crawl.privacy import purpose as purposes
    from lovitura_crawl.privacy.audit import append, current_actor

    try:
        purposes.valid_code(code)  # before a database is made for it
    except purposes.PurposeError as exc:
        raise click.BadParameter(str(exc), param_hint="CODE") from exc
    url = resolve_url(db_url)
    upgrade(url)
    engine = make_engine(url)
    try:
        info = purposes.register(engine, code, description, legal_basis, current_actor())
        filters = {"description": info.description, "legal_basis": info.legal_basis}
        append(engine, current_actor(), info.code, "purpose add", filters)
    except purposes.PurposeError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"purpose {info.code} registered ({info.legal_basis})")


@purpose_group.command("list")
@DB_OPTION
def purpose_list(db_url: str | None) -> None:
    """List the purposes, open and closed."""
    from lovitura_crawl.privacy.purpose import all_purposes

    url = resolve_url(db_url, create=False)
    engine = make_engine(url)
    try:
        infos = all_purposes(engine)
    finally:
        engine.dispose()
    table = Table(title=f"purposes in {masked(url)}")
    for column in ("code", "legal basis", "description", "created", "by", "closed"):
        table.add_column(column)
    for p in infos:
        closed = f"{p.closed_at:%Y-%m-%d}" if p.closed_at else ""
        table.add_row(
            p.code, p.legal_basis, p.description, f"{p.created_at:%Y-%m-%d}", p.created_by, closed
        )
    Console().print(table)


@purpose_group.command("close")
@click.argument("code")
@DB_OPTION
def purpose_close(code: str, db_url: str | None) -> None:
    """Close CODE: nothing more runs under it, and its case ads lose their protection after
    the closed-case term."""
    from lovitura_crawl.privacy import purpose as purposes
    from lovitura_crawl.privacy.audit import append, current_actor

    engine = make_engine(db_url, create=False)
    try:
        info = purposes.close(engine, code)
        append(engine, current_actor(), info.code, "purpose close", {})
    except purposes.PurposeError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"purpose {info.code} closed")


@purpose_group.command("attach")
@click.argument("code")
@DB_OPTION
@click.option("--ad", "ad_ids", type=int, multiple=True, help="An ad id (repeatable).")
@click.option("--person", "person_ids", type=int, multiple=True, help="All ads of a person.")
def purpose_attach(
    code: str, db_url: str | None, ad_ids: tuple[int, ...], person_ids: tuple[int, ...]
) -> None:
    """Attach ads to case CODE, so they are kept while the case is open."""
    from lovitura_crawl.privacy import purpose as purposes
    from lovitura_crawl.privacy.audit import append, current_actor

    if not ad_ids and not person_ids:
        raise click.UsageError("give --ad or --person")
    engine = make_engine(db_url, create=False)
    try:
        wanted = [*ad_ids, *purposes.ads_of_persons(engine, person_ids)]
        added = purposes.attach_ads(engine, code, wanted, current_actor())
        filters = {"ads": sorted(ad_ids), "persons": sorted(person_ids)}
        append(engine, current_actor(), code, "purpose attach", filters, rows=added)
    except purposes.PurposeError as exc:
        raise click.ClickException(str(exc)) from exc
    finally:
        engine.dispose()
    click.echo(f"{added} ads attached to {code}")


def register(main: click.Group) -> None:
    """Add the commands of this module to the ``lovitura`` group (which must have ``db``)."""
    for command in (purge, audit_group, subject, query, purpose_group):
        main.add_command(command)
    db = main.commands.get("db")
    if not isinstance(db, click.Group):
        raise RuntimeError("the lovitura command has no `db` group to add `db roles` to")
    db.add_command(db_roles)
    db.add_command(db_pseudonymise)
