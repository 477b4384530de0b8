"""The ``lovitura ingest`` and ``lovitura export`` commands (docs/items.md).

``register(main)`` adds them to the ``lovitura`` group.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

# Not from lovitura_crawl.cli, which imports this module (and runs as __main__ in `python -m`).
from lovitura_crawl.cli_privacy import DB_OPTION, KEY_OPTION, PURPOSE_OPTION, _key, _purpose
from lovitura_crawl.db.engine import make_engine, resolve_url

console = Console(stderr=True)
SHOWN_LINES = 20  # bad lines printed one by one; all are counted and kept as anomalies


@click.command()
@click.argument(
    "items_file",
    required=False,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@DB_OPTION
@PURPOSE_OPTION
@click.option(
    "--warc",
    "warcs",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Replay this WARC file (repeatable, one crawl each, in the order given) through the "
    "spider of --site instead of reading ITEMS_FILE.",
)
@click.option("--site", default=None, help="With --warc: the site whose spider reads the pages.")
@click.option("-s", "--set", "extra", multiple=True, metavar="NAME=VALUE", help="A Scrapy setting.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def ingest(
    items_file: Path | None,
    db_url: str | None,
    purpose: str | None,
    warcs: tuple[Path, ...],
    site: str | None,
    extra: tuple[str, ...],
    quiet: bool,
) -> None:
    """Store items from ITEMS_FILE (JSON Lines, docs/items.md) as if a crawl had seen them.

    Every item runs through the crawl's own pipelines (fields, phones, places, photos,
    storage) and keeps its observed_at. Photos come from the local file the item names
    (relative to ITEMS_FILE), else from their URL with the crawler's safety rules. Ingesting a
    file again changes nothing. A bad line is reported with its line number and reason, and
    the rest of the file goes in.

    With --warc FILE --site NAME, archived pages are replayed offline through that site's
    spider instead, each observation stamped with the capture time of its page.
    """
    from lovitura_crawl.db.migrate import upgrade
    from lovitura_crawl.db.reference import load_municipalities

    if (items_file is None) == (not warcs):
        raise click.UsageError("give either ITEMS_FILE or --warc FILE (with --site NAME)")
    if warcs and not site:
        raise click.UsageError("--warc needs --site NAME: the site whose spider reads the pages")
    settings = {"LOG_LEVEL": "WARNING", **checked_settings(extra)}
    db = resolve_url(db_url, create=False)  # its purpose is registered in its database
    upgrade(db)
    engine = make_engine(db)
    load_municipalities(engine)
    case = _purpose(engine, purpose)
    engine.dispose()
    if warcs:
        assert site is not None
        _replay(list(warcs), site, db, case, settings)
        return
    assert items_file is not None
    summary = _ingest_items(items_file, db, case, settings, quiet)
    _print_summary(summary)
    if summary.finish_reason != "finished":
        raise click.ClickException(
            f"the ingest ended early ({summary.finish_reason}); what was stored is kept: "
            "run the same command again to finish (it changes nothing twice)"
        )


def checked_settings(values: tuple[str, ...]) -> dict[str, str]:
    """``-s NAME=VALUE`` options as a dict of Scrapy settings, checked before the run starts."""
    from lovitura_crawl.setting_overrides import SettingError, check_overrides, parse_overrides

    try:
        overrides = parse_overrides(values)
        warnings = check_overrides(overrides)
    except SettingError as exc:
        raise click.BadParameter(str(exc), param_hint="--set") from exc
    for warning in warnings:
        click.echo(f"Warning: {warning}", err=True)
    return overrides


def _ingest_items(path: Path, db: str, case: str, settings: dict[str, Any], quiet: bool) -> Any:
    from lovitura_crawl.ingest_items import ingest_file

    size = path.stat().st_size
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet,
    )
    with progress:
        task = progress.add_task(f"ingesting {path.name}", total=size)

        def advance(done: int, lines: int) -> None:
            if lines % 100 == 0 or done >= size:
                progress.update(task, completed=done, description=f"{path.name}: {lines} lines")

        return ingest_file(path, db, case, extra_settings=settings, on_progress=advance)


def _print_summary(summary: Any) -> None:
    table = Table(title=f"ingest of {summary.source}")
    table.add_column("what")
    table.add_column("count", justify="right")
    rows = [
        ("lines read", summary.lines),
        ("blank lines", summary.blank),
        ("items stored", summary.stored),
        ("ads new", summary.new),
        ("ads updated (versions added by edits)", summary.updated),
        ("observations new (ad-days)", summary.observations),
        ("photos from local files", summary.photo_files),
        ("photos known already (not read again)", summary.photos_known),
    ]
    rows += [(f"photos {reason}", count) for reason, count in sorted(summary.photos.items())]
    rows += [(f"rejected: {reason}", n) for reason, n in sorted(summary.rejected.items())]
    for name, count in rows:
        table.add_row(name, str(count))
    Console().print(table)
    for error in summary.errors[:SHOWN_LINES]:
        click.echo(f"line {error.line}: {error.reason}: {error.message}", err=True)
    hidden = sum(summary.rejected.values()) - min(len(summary.errors), SHOWN_LINES)
    if hidden > 0:
        click.echo(
            f"... and {hidden} more bad lines (all are in crawl_anomalies, stage 'ingest')",
            err=True,
        )


def _replay(warcs: list[Path], site: str, db: str, case: str, settings: dict[str, Any]) -> None:
    from lovitura_crawl.ingest_warc import ReplayError, replay_warcs

    try:
        outcomes = replay_warcs(warcs, site, db, case, settings)
    except ReplayError as exc:
        raise click.ClickException(str(exc)) from exc
    failed = False
    for outcome in outcomes:
        click.echo(
            f"{outcome.path.name}: {outcome.records} responses, {outcome.items} ads, "
            f"{outcome.missing} pages not in the archive, "
            f"{outcome.bad_records} bad records, {outcome.finish_reason}"
        )
        for reason, count in sorted(outcome.rejected.items()):
            click.echo(f"  rejected records: {reason}: {count}", err=True)
        failed = failed or outcome.finish_reason != "finished"
    if failed:
        raise click.ClickException("a replay ended early: see the log (-s LOG_LEVEL=INFO)")


@click.command()
@DB_OPTION
@PURPOSE_OPTION
@KEY_OPTION
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl"]),
    default="jsonl",
    show_default=True,
    help="JSON Lines in the item schema (docs/items.md).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="File to write (readable by its owner only).",
)
@click.option("--site", default=None, help="Only the ads of this site.")
@click.option(
    "--clear",
    is_flag=True,
    help="Write phone numbers, addresses, handles and photo URLs in clear instead of "
    "pseudonyms (recorded in the audit log).",
)
def export(
    db_url: str | None,
    purpose: str | None,
    key_file: Path | None,
    fmt: str,
    out: Path,
    site: str | None,
    clear: bool,
) -> None:
    """Write every stored observation in the item schema, for `lovitura ingest` elsewhere.

    One line per ad per day seen, with what the ad said that day and its photos'
    fingerprints. Phone numbers, e-mail addresses, handles, web addresses and photo URLs are
    keyed pseudonyms unless --clear is given. Every export is recorded in the audit log with
    its purpose, row count and the file's SHA-256.
    """
    from lovitura_crawl.crawl import project_settings
    from lovitura_crawl.export_items import write_export
    from lovitura_crawl.privacy import audit

    engine = make_engine(db_url, create=False)
    case = _purpose(engine, purpose)
    key = None if clear else _key(key_file)
    regions = project_settings().getdict("LOVITURA_SITE_REGIONS")
    result = write_export(engine, out, key=key, regions=regions, site=site)
    try:
        audit.append(
            engine,
            audit.current_actor(),
            case,
            "export --clear" if clear else "export",
            {"format": fmt, "site": site or ""},
            result.rows,
            result.sha256,
            file_path=result.path,
        )
    except audit.AuditError:
        out.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
    click.echo(f"wrote {result.rows} items to {result.path} (sha256 {result.sha256})")


def register(main: click.Group) -> None:
    """Add ``ingest`` and ``export`` to the ``lovitura`` group."""
    main.add_command(ingest)
    main.add_command(export)
