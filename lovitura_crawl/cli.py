"""The ``lovitura`` command: demo, crawl, link, report, explain, evaluate, db, sites."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from lovitura_crawl import __version__
from lovitura_crawl.db.engine import make_engine, masked, resolve_url

if TYPE_CHECKING:
    from scrapy.settings import Settings

console = Console(stderr=True)
EXIT_LOCKED = 75  # EX_TEMPFAIL: a crawl of the same site was already running

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
    help="Purpose or case id this runs under (`lovitura purpose list`). "
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


class LoviturGroup(click.Group):
    """The ``lovitura`` group: expected failures end in one clear line, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        from lovitura_crawl.crawl import Interrupted

        try:
            return super().invoke(ctx)
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.Abort):
            raise
        except Interrupted as exc:  # SIGINT or SIGTERM: 130 or 143, as a shell reports it
            click.echo(f"Interrupted: {exc.message()}", err=True)
            raise click.exceptions.Exit(exc.exit_code) from exc
        except KeyboardInterrupt as exc:  # Ctrl-C outside a crawl
            click.echo("Interrupted: stopped by SIGINT", err=True)
            raise click.exceptions.Exit(130) from exc
        except Exception as exc:
            message = _friendly(exc)
            if message is None:
                raise
            raise click.ClickException(message) from exc


def _friendly(exc: Exception) -> str | None:
    """A message for an error the user can fix, or None for a real bug."""
    from alembic.util.exc import CommandError as AlembicCommandError
    from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError

    from lovitura_crawl.db.engine import DatabaseURLError

    if isinstance(exc, DatabaseURLError):
        return f"bad database URL: {exc}"  # it names the URLs to use already
    if isinstance(exc, AlembicCommandError):  # e.g. an unknown --revision
        return f"{exc}; `alembic history` in the project folder lists the revisions"
    if isinstance(exc, ArgumentError):
        return f"bad database URL: {exc}; use sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
    if isinstance(exc, OperationalError | ProgrammingError):
        detail = str(exc.orig) if getattr(exc, "orig", None) else str(exc)
        detail = detail.strip().splitlines()[0]
        if "no such table" in detail or ("does not exist" in detail and "relation" in detail):
            return (
                f"the database has no Lovitura tables ({detail}); check --db, or run "
                "`lovitura db upgrade --db URL` first"
            )
        return f"cannot use the database: {detail}; check --db and that the server runs"
    if isinstance(exc, LookupError | ValueError | OSError):
        if isinstance(exc, KeyError):
            # A KeyError that says something ("Spider not found: x") is for the user; one
            # holding a bare key (KeyError('value')) is a bug: its traceback must show.
            message = str(exc.args[0]) if exc.args else ""
            return message if " " in message.strip() else None
        return str(exc)
    return None


@click.group(cls=LoviturGroup)
@click.version_option(__version__, prog_name="lovitura")
def main() -> None:
    """Lovitura crawl: follow trafficking carousels through sex-ad sites.

    Crawl ad sites, extract phones, photos and places, link ads into persons and networks, and
    export the trails where each person stayed and when she moved.
    """


# --- demo ------------------------------------------------------------------------------------
@main.command()
@click.option("--seed", default=1, show_default=True, help="Seed of the demo world.")
@click.option("--days", default=28, show_default=True, help="Simulated days to crawl.")
@click.option(
    "--scale",
    type=click.Choice(["tiny", "demo"]),
    default="demo",
    show_default=True,
    help="Size of the demo world.",
)
@click.option(
    "--db",
    "db_url",
    default=None,
    help="Database URL for the demo. Default: a fresh SQLite file OUT/demo.sqlite.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo-out"),
    show_default=True,
    help="Folder for the reports, the truth files and the evaluation (the report-GM*.csv "
    "files of an earlier run there are replaced).",
)
@click.option("--reset", is_flag=True, help="Wipe a --db that already holds ads.")
def demo(seed: int, days: int, scale: str, db_url: str | None, out_dir: Path, reset: bool) -> None:
    """Run the whole chain on the demo world: serve, crawl daily, link, trail, report."""
    from lovitura_crawl.demo import DemoError, run_demo

    if days < 1:
        raise click.BadParameter("must be at least 1", param_hint="--days")
    if db_url is None:
        sqlite_path = out_dir / "demo.sqlite"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
        db_url = f"sqlite:///{sqlite_path}"
    db_url = resolve_url(db_url)
    console.print(f"Demo world seed {seed}, scale {scale}, {days} days, database {masked(db_url)}")
    with _progress() as progress:
        task = progress.add_task("crawling simulated days", total=days)

        stages = {"crawl": "crawling", "link": "linking", "report": "writing the reports"}
        last_day = [""]  # what the day before saw, shown while the next one runs

        def on_stage(day: int, stage: str) -> None:
            where = f"day {day + 1}/{days} " if day < days else ""
            progress.update(task, description=f"{where}{stages[stage]}{last_day[0]}")

        def on_day(day: int, outcomes: list[Any]) -> None:
            items = sum(o.items for o in outcomes)
            fetched = sum(
                int(value)
                for o in outcomes
                for name, value in o.stats.items()
                if name.startswith("lovitura/detail/fetch/")
            )
            last_day[0] = f" (day {day + 1}: {items} ads seen, {fetched} ad pages read)"
            progress.update(task, advance=1)

        try:
            summary = run_demo(
                seed=seed,
                days=days,
                scale=scale,
                db_url=db_url,
                out_dir=out_dir,
                reset=reset,
                on_day=on_day,
                on_stage=on_stage,
            )
        except DemoError as exc:
            raise click.ClickException(str(exc)) from exc
    _print_demo_summary(summary)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


def _print_demo_summary(summary: Any) -> None:
    table = Table(title="Lovitura demo summary")
    table.add_column("what")
    table.add_column("count", justify="right")
    for name, count in summary.counts.items():
        table.add_row(name, str(count))
    table.add_row("time taken", f"{summary.seconds:.0f} s")
    Console().print(table)
    if summary.evaluation:
        Console().print(_evaluation_table(summary.evaluation))
    click.echo(f"Reports in {summary.out_dir}:")
    for path in summary.reports:
        click.echo(f"  {path}")
    click.echo(f"Database: {masked(summary.db_url)}")
    click.echo(f"Crawl log: {summary.out_dir / 'crawl.log'}")
    click.echo(f"Ground truth: {summary.out_dir / 'truth'}")
    click.echo(
        f"Purpose: demo; pseudonym key: {summary.out_dir / 'demo-pseudonym.key'} "
        "(see the README to query the demo's database)"
    )


def _evaluation_table(evaluation: dict[str, Any]) -> Any:
    from matching.evaluate import render_table

    return render_table(evaluation)


# --- crawl -----------------------------------------------------------------------------------
@main.command()
@click.argument("sites", nargs=-1)
@DB_OPTION
@PURPOSE_OPTION
@click.option(
    "--site-url",
    "site_urls",
    multiple=True,
    metavar="NAME=URL",
    help="Base URL of a site (repeatable); the demo sites print theirs.",
)
@click.option(
    "--clock",
    default=None,
    help="Stamp observations with this ISO 8601 time (replays, simulated days).",
)
@click.option("-s", "--set", "extra", multiple=True, metavar="NAME=VALUE", help="A Scrapy setting.")
@click.option(
    "--redis",
    "redis_url",
    envvar="LOVITURA_REDIS_URL",
    default=None,
    metavar="URL",
    help="Share the crawl with other workers through Redis, e.g. redis://127.0.0.1:6379/0. "
    "Every worker started for a site joins that site's crawl of the day; no site lock is taken.",
)
@click.option(
    "--redis-run",
    default=None,
    metavar="NAME",
    help="Name of the shared crawl to join (default: the day of the crawl's clock).",
)
def crawl(
    sites: tuple[str, ...],
    db_url: str | None,
    purpose: str | None,
    site_urls: tuple[str, ...],
    clock: str | None,
    extra: tuple[str, ...],
    redis_url: str | None,
    redis_run: str | None,
) -> None:
    """Crawl SITES once (all known sites when none is named) and store what they show.

    Safe to start from cron or a systemd timer: a site whose previous crawl still runs is
    skipped (exit code 75), a killed crawl leaves no lock behind, and the next crawl of the site
    records it as killed and fetches what it missed. See docs/crawling.md.
    """
    from lovitura_crawl.cli_ingest import checked_settings
    from lovitura_crawl.clock import ClockError, parse_clock
    from lovitura_crawl.crawl import CrawlJob, Interrupted, project_settings
    from lovitura_crawl.crawl import crawl as run_crawl
    from lovitura_crawl.db.migrate import upgrade
    from lovitura_crawl.db.reference import load_municipalities

    urls = _pairs(site_urls, "--site-url")
    settings = checked_settings(extra)
    scrapy_settings = project_settings(settings)  # read once for the checks below
    _check_storage(scrapy_settings)
    try:
        moment = parse_clock(clock, source="--clock") if clock else None
    except ClockError as exc:
        raise click.BadParameter(str(exc), param_hint="--clock") from exc
    if moment is not None and moment > datetime.now(moment.tzinfo) + timedelta(days=1):
        click.echo(
            f"Warning: --clock {clock} is in the future; the ads are stamped with it and the "
            "trails will run to that date (a typo in the year?)",
            err=True,
        )
    known = _all_spiders(scrapy_settings)
    names = list(dict.fromkeys(sites)) or sorted(urls) or known  # a site named twice: once
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise click.BadParameter(
            f"no spider for {', '.join(unknown)}: use one of {', '.join(known)} "
            "(docs/adding-a-site.md adds a site)",
            param_hint="SITES",
        )
    _check_site_urls(urls, names)
    if redis_url:
        _check_redis(redis_url)
    db = resolve_url(db_url, create=False)  # a crawl's purpose is registered in its database
    upgrade(db)
    engine = make_engine(db)
    load_municipalities(engine)
    case = _purpose(engine, purpose)
    overrides: dict[str, Any] = {
        "LOVITURA_DATABASE_URL": db,
        "LOVITURA_PURPOSE": case,
        **settings,
    }
    if redis_url:
        overrides.update(LOVITURA_REDIS_URL=redis_url, LOVITURA_REDIS_RUN=redis_run)
    with ExitStack() as locks:
        locked = [] if redis_url else _lock_sites(locks, names, db)
        jobs = [CrawlJob(name, moment, urls.get(name)) for name in names if name not in locked]
        try:
            outcomes = run_crawl(jobs, overrides) if jobs else []
        except Interrupted as exc:
            for outcome in exc.outcomes:
                click.echo(f"{outcome.site}: {outcome.items} ads, {outcome.finish_reason}")
            raise
    failed = [o for o in outcomes if o.finish_reason != "finished" or not _listing_ok(o.stats)]
    for outcome in outcomes:
        note = "" if _listing_ok(outcome.stats) else f" ({_why_incomplete(outcome.stats)})"
        click.echo(f"{outcome.site}: {outcome.items} ads, {outcome.finish_reason}{note}")
    if failed:
        sys.exit(1)
    if locked:
        sys.exit(EXIT_LOCKED)


def _listing_ok(stats: dict[str, Any]) -> bool:
    """The crawl read its whole listing (a worker of a shared crawl: its own part of it)."""
    from lovitura_crawl.spiders.base import COMPLETE_STAT, SHARED_PART_STAT

    return bool(stats.get(COMPLETE_STAT) or stats.get(SHARED_PART_STAT))


STORAGE_PIPELINE = "pipelines.storage.StoragePipeline"


def _why_incomplete(stats: dict[str, Any]) -> str:
    """Why a listing was not read to its end, as far as Scrapy's stats tell."""
    prefix = "downloader/exception_type_count/"
    errors = {
        key[len(prefix) :].rsplit(".", 1)[-1]: count
        for key, count in stats.items()
        if key.startswith(prefix)
    }
    status = "downloader/response_status_count/"
    for key, count in stats.items():
        code = key[len(status) :] if key.startswith(status) else ""
        if code.isdigit() and int(code) >= 400:
            errors[f"HTTP {code}"] = count
    if not errors:
        return "listing NOT complete: see the log"
    kinds = ", ".join(f"{kind} x{count}" for kind, count in sorted(errors.items()))
    return (
        f"listing NOT complete: failed requests ({kinds}); is the site up, is its URL right? "
        "see the log"
    )


def _lock_sites(locks: ExitStack, names: list[str], db: str) -> list[str]:
    """Take the crawl lock of each site; returns the sites whose lock another crawl holds.

    Holding the lock, a crawl run still marked ``running`` was killed: it is recorded so.
    """
    from lovitura_crawl.db.store import AdStore
    from lovitura_crawl.locks import SiteLocked, site_lock

    locked = []
    store = AdStore(make_engine(db))
    for name in names:
        try:
            locks.enter_context(site_lock(name, db))
        except SiteLocked as exc:
            click.echo(str(exc), err=True)
            locked.append(name)
            continue
        killed = store.close_stale_runs(name)
        if killed:
            click.echo(f"{name}: {killed} earlier crawl(s) had been killed", err=True)
    store.engine.dispose()
    return locked


def _check_site_urls(urls: dict[str, str], names: list[str]) -> None:
    """Every ``--site-url`` names a site of this crawl and gives an http(s) URL with a host
    (and a port that can be, and no blank inside). Blanks around a URL are dropped."""
    from urllib.parse import urlsplit

    for name, given in urls.items():
        url = urls[name] = given.strip()
        if name not in names:
            raise click.BadParameter(
                f"{name}={url}: {name!r} is not among the sites of this crawl "
                f"({', '.join(names)}); check the spelling",
                param_hint="--site-url",
            )
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - it checks the port's range
        except ValueError as exc:
            raise click.BadParameter(f"{name}={url}: {exc}", param_hint="--site-url") from exc
        if (
            parts.scheme not in ("http", "https")
            or not parts.hostname
            or any(c.isspace() for c in url)
        ):
            raise click.BadParameter(
                f"{name}={url}: not an http(s) URL with a host, e.g. http://127.0.0.1:8401/",
                param_hint="--site-url",
            )


def _check_storage(settings: Settings) -> None:
    """The crawl's pipelines end in storage: `lovitura crawl` exists to store what it sees."""
    pipelines = settings.getwithbase("ITEM_PIPELINES")
    if pipelines.get(STORAGE_PIPELINE) is None:
        raise click.BadParameter(
            f"ITEM_PIPELINES leaves out {STORAGE_PIPELINE}, so the crawl would store nothing; "
            "to see what a site yields without storing it, run `scrapy crawl SITE "
            "-s ITEM_PIPELINES={} -O FILE.jsonl` (docs/adding-a-site.md)",
            param_hint="--set",
        )


def _check_redis(url: str) -> None:
    """Redis answers at ``url``, before any database or lock is touched."""
    from lovitura_crawl.spiders.shared import SharedCrawlError, redis_client

    try:
        redis_client(url).close()
    except SharedCrawlError as exc:
        raise click.ClickException(str(exc)) from exc
    except ValueError as exc:  # redis-py's own check of the URL
        raise click.BadParameter(f"{url}: {exc}", param_hint="--redis") from exc


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"{value!r} is not NAME=VALUE", param_hint=option)
        pairs[name] = rest
    return pairs


def _all_spiders(settings: Settings) -> list[str]:
    from scrapy.spiderloader import SpiderLoader

    return sorted(SpiderLoader.from_settings(settings).list())


# --- link, explain, evaluate -----------------------------------------------------------------
@main.command()
@DB_OPTION
@PURPOSE_OPTION
@KEY_OPTION
@click.option("--full", is_flag=True, help="Relink every ad instead of only the new ones.")
def link(db_url: str | None, purpose: str | None, key_file: Path | None, full: bool) -> None:
    """Link ads into persons and networks, and rebuild the trail tables.

    With the pseudonym key configured it also refreshes the pseudonyms the analyst views show.
    """
    from matching.link import link as run_link
    from matching.trails import build_trails

    engine = make_engine(db_url, create=False)
    case = _purpose(engine, purpose)
    result = run_link(engine, full=full)
    trails = build_trails(engine)
    _record_link_run(engine, case)
    click.echo(f"{result}")
    click.echo(f"{trails}")
    try:
        key = _key(key_file)
    except click.ClickException as exc:
        click.echo(f"pseudonyms not refreshed: {exc.message}", err=True)
        return
    from lovitura_crawl.privacy import identifiers

    click.echo(f"{identifiers.sync(engine, key)}")


def _record_link_run(engine: Any, case: str) -> None:
    from sqlalchemy import func, select

    from lovitura_crawl.db.models import LinkRun
    from lovitura_crawl.privacy.purpose import record_link_run

    with engine.connect() as conn:
        run_id = conn.execute(select(func.max(LinkRun.id))).scalar_one()
    if run_id is not None:
        record_link_run(engine, int(run_id), case)


@main.command()
@DB_OPTION
@PURPOSE_OPTION
@KEY_OPTION
@click.option("--person", "person_id", type=int, required=True, help="Person id.")
@click.option(
    "--clear-phones",
    is_flag=True,
    help="Show phone numbers in clear instead of pseudonyms (recorded in the audit log).",
)
def explain(
    db_url: str | None,
    purpose: str | None,
    key_file: Path | None,
    person_id: int,
    clear_phones: bool,
) -> None:
    """Show why a person's ads were joined: every link with its evidence.

    Phone numbers appear as keyed pseudonyms unless --clear-phones is given; every explain is
    recorded in the audit log.
    """
    import re

    from lovitura_crawl.privacy import audit
    from lovitura_crawl.privacy.pseudonym import pseudonymise_phone
    from matching.explain import explain_person, render_explanation

    engine = make_engine(db_url, create=False)
    case = _purpose(engine, purpose)
    if clear_phones:
        text = render_explanation(explain_person(engine, person_id))
    else:
        key = _key(key_file)

        def label(phone: str) -> str:
            return pseudonymise_phone(phone, key)

        # The evidence snippets show each number (as the ad wrote it) as its pseudonym.
        text = render_explanation(explain_person(engine, person_id, phone_label=label))
        text = re.sub(r"\+[1-9]\d{6,14}\b", lambda m: label(m.group(0)), text)
    audit.append(
        engine,
        audit.current_actor(),
        case,
        "explain --clear-phones" if clear_phones else "explain",
        {"person": person_id},
        None,
    )
    click.echo(text)


@main.command()
@DB_OPTION
@click.option(
    "--truth",
    "truth_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder with the demo world's truth files (`lovitura sites truth`).",
)
@click.option(
    "--json",
    "json_out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the figures as JSON to this file.",
)
def evaluate(db_url: str | None, truth_dir: Path, json_out: Path | None) -> None:
    """Compare persons, networks, stays and moves in the database with the truth."""
    from matching.evaluate import evaluate as run_evaluate

    figures = run_evaluate(make_engine(db_url, create=False), truth_dir)
    Console().print(_evaluation_table(figures))
    if json_out is not None:
        json_out.write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
        click.echo(f"wrote {json_out}")


# --- report ----------------------------------------------------------------------------------
@main.command()
@DB_OPTION
@PURPOSE_OPTION
@KEY_OPTION
@click.option("--municipality", "code", default=None, help="CBS code, e.g. GM0363.")
@click.option("--person", "person_id", type=int, default=None, help="One person's whole trail.")
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Only stays that end on or after this date (YYYY-MM-DD).",
)
@click.option(
    "--out",
    "out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="CSV file to write.",
)
@click.option(
    "--clear-phones",
    is_flag=True,
    help="Write phone numbers in clear instead of pseudonyms (recorded in the audit log).",
)
def report(
    db_url: str | None,
    purpose: str | None,
    key_file: Path | None,
    code: str | None,
    person_id: int | None,
    since: datetime | None,
    out: Path,
    clear_phones: bool,
) -> None:
    """Write a CSV trail report for an action day (a municipality) or for one person.

    Phone numbers appear as keyed pseudonyms unless --clear-phones is given. Every report is
    recorded in the audit log with its purpose, filters, row count and the file's SHA-256.
    """
    from lovitura_crawl.privacy import audit
    from lovitura_crawl.report import (
        ReportError,
        clear_labels,
        municipality_report,
        person_report,
        pseudonym_labels,
    )

    if (code is None) == (person_id is None):
        raise click.UsageError("give exactly one of --municipality and --person")
    engine = make_engine(db_url, create=False)
    case = _purpose(engine, purpose)
    labels = clear_labels if clear_phones else pseudonym_labels(_key(key_file))
    since_day: date | None = since.date() if since else None
    try:
        if code is not None:
            result = municipality_report(engine, code.upper(), out, since_day, labels)
        else:
            assert person_id is not None
            result = person_report(engine, person_id, out, labels)
    except ReportError as exc:
        raise click.ClickException(str(exc)) from exc
    filters = {"municipality": code, "person": person_id, "since": str(since_day or "")}
    audit.append(
        engine,
        audit.current_actor(),
        case,
        "report --clear-phones" if clear_phones else "report",
        filters,
        result.rows,
        result.sha256,
        file_path=result.path,
    )
    click.echo(f"wrote {result.rows} rows to {result.path} (sha256 {result.sha256})")


def _purpose(engine: Any, value: str | None) -> str:
    from lovitura_crawl.privacy.purpose import PurposeError, open_purpose

    try:
        return open_purpose(engine, value)
    except PurposeError as exc:
        raise click.ClickException(str(exc)) from exc


def _key(key_file: Path | None) -> bytes:
    from lovitura_crawl.privacy.pseudonym import PseudonymKeyError, load_key

    try:
        return load_key(key_file)
    except PseudonymKeyError as exc:
        raise click.ClickException(str(exc)) from exc


# --- db --------------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Create and migrate the database."""


@db.command("upgrade")
@DB_OPTION
@click.option("--revision", default="head", show_default=True)
def db_upgrade(db_url: str | None, revision: str) -> None:
    """Migrate the database to REVISION and load the municipalities."""
    from lovitura_crawl.db.migrate import upgrade
    from lovitura_crawl.db.reference import load_municipalities

    url = resolve_url(db_url)
    upgrade(url, revision)
    written = load_municipalities(make_engine(url)) if revision == "head" else 0
    click.echo(f"{masked(url)} is at {revision}; {written} municipality rows written")


@db.command("downgrade")
@DB_OPTION
@click.option("--revision", required=True, help="Target revision, e.g. base.")
@click.option("--yes", is_flag=True, help="Do not ask: the tables and columns it removes are lost.")
def db_downgrade(db_url: str | None, revision: str, yes: bool) -> None:
    """Migrate the database down to REVISION (base removes every table, the audit log too).

    A downgrade deletes the data of every table and column it removes, so it asks first;
    without a terminal, give --yes. Take a backup before you run it on a database in use.
    """
    from lovitura_crawl.db.migrate import downgrade

    url = resolve_url(db_url, create=False)
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(
                "a downgrade deletes data and there is no terminal to ask: add --yes"
            )
        click.confirm(
            f"Downgrade {masked(url)} to {revision}? The data of every table and column it "
            "removes is lost",
            abort=True,
        )
    downgrade(url, revision)
    click.echo(f"{masked(url)} is at {revision}")


@db.command("check")
@DB_OPTION
def db_check(db_url: str | None) -> None:
    """Fail if the models and the migrations disagree (alembic check)."""
    from lovitura_crawl.db.migrate import check, upgrade

    url = resolve_url(db_url)
    upgrade(url)
    check(url)
    click.echo("models and migrations agree")


# --- sites -----------------------------------------------------------------------------------
@main.group()
def sites() -> None:
    """The demo world: serve its four ad sites, write its truth."""


@sites.command("serve")
@click.option("--seed", default=1, show_default=True, help="Seed of the demo world.")
@click.option("--scale", type=click.Choice(["tiny", "demo"]), default="demo", show_default=True)
@click.option("--days", default=None, type=int, help="Length of the world (default per scale).")
@click.option("--day", default=0, show_default=True, help="Simulated day to serve first.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Loopback address.")
@click.option("--fast", is_flag=True, help="No slow responses and no 429s (tests).")
@click.option(
    "--pace",
    type=click.FloatRange(min=0.01, max=1.0),
    default=1.0,
    show_default=True,
    help="Time scale of prikbord's slow pages, rate limit and Retry-After (the demo: 0.25).",
)
@click.option(
    "--photos-ahead",
    is_flag=True,
    help="Make each day's new photos ahead of the crawler, in a child process.",
)
@click.option(
    "--free-ports",
    is_flag=True,
    help="Let the system pick free ports instead of 8401-8404 (the demo does).",
)
@click.option(
    "--control",
    is_flag=True,
    help="Read 'day N' lines on standard input to change the day; answer in JSON lines.",
)
def sites_serve(
    seed: int,
    scale: str,
    days: int | None,
    day: int,
    host: str,
    fast: bool,
    pace: float,
    photos_ahead: bool,
    free_ports: bool,
    control: bool,
) -> None:
    """Serve the four demo sites on loopback and print their URLs."""
    from functools import partial

    from fixtures.sites import serve
    from fixtures.world import build_world

    world = build_world(seed, scale=scale, days=days)
    if not 0 <= day < world.days:
        raise click.BadParameter(f"must be between 0 and {world.days - 1}", param_hint="--day")
    from fixtures.model import SITES

    ports = dict.fromkeys(SITES, 0) if free_ports else None
    recipe = partial(build_world, seed, scale=scale, days=days) if photos_ahead else None
    with serve(
        world, day=day, host=host, ports=ports, fast=fast, pace=pace, recipe=recipe
    ) as running:
        if control:
            _control_loop(running, world)
            return
        for name, url in running.urls.items():
            click.echo(f"{name:14} {url}")
        shown = world.start_date + timedelta(days=day)
        click.echo(f"serving day {day} ({shown}); press Ctrl-C to stop")
        try:
            _wait_forever()
        except KeyboardInterrupt:
            click.echo("stopped")


def _wait_forever() -> None:
    import time

    while True:
        time.sleep(3600)


def _control_loop(running: Any, world: Any) -> None:
    import signal

    # The process that started us (the demo) owns our life: it says "stop", or closes our
    # standard input when it dies. A Ctrl-C in the terminal reaches it, which stops us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def answer(message: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()

    answer({"urls": running.urls, "start_date": world.start_date.isoformat(), "day": running.day})
    for line in sys.stdin:
        command, _, value = line.strip().partition(" ")
        if command == "day" and value.lstrip("-").isdigit():
            if not 0 <= int(value) < world.days:
                answer({"error": f"day {value}: the world has days 0 to {world.days - 1}"})
                continue
            running.set_day(int(value))
            answer({"day": int(value)})
        elif command == "stop":
            return
        else:
            answer({"error": f"unknown command {line.strip()!r}; use 'day N' or 'stop'"})


@sites.command("truth")
@click.option("--seed", default=1, show_default=True, help="Seed of the demo world.")
@click.option(
    "--scale", type=click.Choice(["tiny", "demo", "bench"]), default="demo", show_default=True
)
@click.option("--days", default=None, type=int, help="Length of the world (default per scale).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Folder for ads.csv, stays.csv, phones.csv, photos.csv and world.json.",
)
def sites_truth(seed: int, scale: str, days: int | None, out_dir: Path) -> None:
    """Write the demo world's ground truth as CSV files."""
    from fixtures.truth import write_truth
    from fixtures.world import build_world

    paths = write_truth(build_world(seed, scale=scale, days=days), out_dir)
    for path in paths:
        click.echo(str(path))


@sites.command("list")
def sites_list() -> None:
    """List the demo sites and what kind of site each is."""
    from fixtures.model import SITES

    kinds = {
        "roodlicht": "A: server-rendered Dutch classifieds",
        "nachtvlinder": "B: single-page app, phone behind a click (needs a browser)",
        "escortgids": "C: international directory NL/BE/DE",
        "prikbord": "D: free-text board, windows-1252, rate-limited",
    }
    for name in SITES:
        click.echo(f"{name:14} {kinds.get(name, '')}")


def _register_privacy_commands() -> None:
    from lovitura_crawl.cli_privacy import register

    register(main)


def _register_ingest_commands() -> None:
    from lovitura_crawl.cli_ingest import register

    register(main)


_register_privacy_commands()
_register_ingest_commands()

if __name__ == "__main__":  # python -m lovitura_crawl.cli: as the `lovitura` command
    main()
