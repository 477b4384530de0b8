"""WARC recording and replay: a crawl of a demo site recorded with ``LOVITURA_WARC_DIR`` and
replayed with ``lovitura ingest --warc`` gives the same database as the live crawl; bad records
are counted with their reason and never stop the replay."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from fixtures.sites import DemoSites
from fixtures.world import World, build_world
from lovitura_crawl.ingest_warc import QuietArchiveIterator, index_archive
from tests.itemruns import PURPOSE, crawl_days, lovitura, registered, serving, snapshot

DAYS = 2
SITE = "roodlicht"


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, scale="tiny")


@pytest.fixture(scope="module")
def served(world: World) -> Iterator[list[DemoSites]]:
    with serving(world, DAYS) as running:
        yield running


def replay(warcs: list[Path], db_url: str, cwd: Path) -> str:
    args = [arg for path in warcs for arg in ("--warc", str(path))]
    done = lovitura("ingest", *args, "--site", SITE, "--db", db_url, "--purpose", PURPOSE, cwd=cwd)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_replaying_the_recorded_crawl_gives_the_same_database(
    world: World, served: list[DemoSites], tmp_path: Path
) -> None:
    live = registered(f"sqlite:///{tmp_path / 'live.sqlite'}", migrate=True)
    folder = tmp_path / "warc"
    crawl_days(SITE, world, served, live, tmp_path, {"LOVITURA_WARC_DIR": str(folder)})
    warcs = sorted(folder.glob(f"{SITE}-*.warc.gz"))
    assert len(warcs) == DAYS
    assert all(path.stat().st_mode & 0o077 == 0 for path in warcs), "readable by the owner only"

    replayed = registered(f"sqlite:///{tmp_path / 'replayed.sqlite'}", migrate=True)
    output = replay(warcs, replayed, tmp_path)
    assert "0 pages not in the archive" in output and "finished" in output

    expected, found = snapshot(live), snapshot(replayed)
    assert len(expected["observations"]) == sum(len(world.ads_on(SITE, d)) for d in range(DAYS))
    assert len(expected["photos"]) > 10
    assert found == expected


def bad_archive(path: Path, good_url: str) -> None:
    """A WARC with one good response, a revisit, a response without an HTTP URL, then junk."""
    with path.open("wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        body = b"<html><body>no ads</body></html>"
        writer.write_record(
            writer.create_warc_record(
                good_url, "response", payload=io.BytesIO(body), http_headers=http
            )
        )
        writer.write_record(
            writer.create_warc_record(
                good_url, "revisit", payload=io.BytesIO(b""), http_headers=http
            )
        )
        writer.write_record(
            writer.create_warc_record(
                "dns:example.invalid", "response", payload=io.BytesIO(b"x"), http_headers=http
            )
        )
        handle.write(b"\x1f\x8b this is not a gzip member at all")


def test_bad_records_are_counted_and_the_rest_is_replayed(tmp_path: Path) -> None:
    path = tmp_path / "bad.warc.gz"
    bad_archive(path, "http://127.0.0.1:9/")
    index = index_archive(path)
    assert index.records == 1
    assert dict(index.rejected) == {"unsupported-revisit": 1, "no-http-url": 1, "damaged": 1}

    db = registered(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=True)
    output = replay([path], db, tmp_path)
    assert "1 responses, 0 ads" in output and "3 bad records" in output


def test_a_replay_needs_the_site_and_an_archive_of_it(tmp_path: Path) -> None:
    path = tmp_path / "other.warc.gz"
    bad_archive(path, "http://127.0.0.1:9/some/page.html")
    db = registered(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=True)
    done = lovitura("ingest", "--warc", str(path), "--db", db, "--purpose", PURPOSE, cwd=tmp_path)
    assert done.returncode != 0 and "--site" in done.stderr
    done = lovitura(
        "ingest",
        "--warc",
        str(path),
        "--site",
        SITE,
        "--db",
        db,
        "--purpose",
        PURPOSE,
        cwd=tmp_path,
    )
    assert done.returncode != 0 and "none of the site's start pages" in done.stderr


def _archive_of_pages(path: Path, pages: int) -> bytes:
    buffer = io.BytesIO()
    writer = WARCWriter(buffer, gzip=True)
    for number in range(pages):
        body = (b"<p>a page of the demo world</p>" * 800) + str(number).encode()
        http = StatusAndHeaders("200 OK", [("Content-Type", "text/html")], protocol="HTTP/1.1")
        record = writer.create_warc_record(
            f"http://127.0.0.1:9/ad/{number}",
            "response",
            payload=io.BytesIO(body),
            http_headers=http,
        )
        writer.write_record(record)
    return buffer.getvalue()


@pytest.mark.parametrize("cut", [60, 400])
def test_a_cut_off_archive_is_counted_as_truncated(tmp_path: Path, cut: int) -> None:
    whole = _archive_of_pages(tmp_path / "whole.warc.gz", 3)
    path = tmp_path / "cut.warc.gz"
    path.write_bytes(whole[:-cut])  # a copy that stopped in the middle of the last record
    index = index_archive(path)
    assert index.rejected["truncated"] == 1
    assert len(index.captures) == 2  # the whole records before the cut are still replayed

    complete = tmp_path / "complete.warc.gz"
    complete.write_bytes(whole)
    assert not index_archive(complete).rejected


def test_a_file_that_is_no_archive_is_reported_without_its_contents(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """warcio quotes the bytes it could not read, in its error and on standard error: an items
    file given as a WARC would put its ad text and phone numbers in the log."""
    path = tmp_path / "items.jsonl"
    line = '{"site": "roodlicht", "text": "Bel 0612345678 voor een afspraak"}\n'
    path.write_text(line * 3)
    with caplog.at_level("INFO"):
        index = index_archive(path)
    assert dict(index.rejected) == {"not-a-warc": 1}
    assert index.records == 0
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno >= 20)
    assert "not a WARC archive" in logged
    printed = capsys.readouterr()
    for text in (logged, printed.out, printed.err):
        assert "0612345678" not in text
        assert "afspraak" not in text


def test_warcios_own_warning_prints_no_record_bytes() -> None:
    """warcio writes a record without its trailing blank line to standard error, with the next
    line: the reader used here keeps only the offset."""
    message = QuietArchiveIterator.INC_RECORD.format(120, b"Bel 0612345678\r\n")
    assert "120" in message
    assert "0612345678" not in message
