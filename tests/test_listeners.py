"""A crawl opens no listening socket: no telnet console, no remote-control server, nothing else.

Scrapy turns such servers on by default (the telnet console; since 2.19 also a remote-control
HTTP server that runs any Python code it is sent, its token written to the user's profile
folder). A crawler that holds sensitive data must not offer either. Rather than trust a list of
setting names, the test watches a real ``lovitura crawl`` and every process of its group (the
photo workers too) for a socket in the LISTEN state, for as long as the crawl runs.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest

from fixtures.model import SITES
from fixtures.sites import serve
from fixtures.world import World, build_world
from tests.crawlruns import crawl_command, day_clock, kill, start

_LISTEN = "0A"  # the TCP state LISTEN in /proc/net/tcp


def listening_inodes() -> set[str]:
    """The socket inodes of every TCP socket in the LISTEN state on this machine."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == _LISTEN:
                inodes.add(fields[9])
    return inodes


def group_pids(group: int) -> list[int]:
    """The live processes whose process group is ``group``."""
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = entry.joinpath("stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[2]) == group:
            pids.append(int(entry.name))
    return pids


def listeners_of(pids: list[int]) -> set[tuple[int, str]]:
    """(pid, socket inode) of every listening TCP socket that one of ``pids`` holds open."""
    listening = listening_inodes()
    found = set()
    for pid in pids:
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except OSError:
            continue  # the process ended
        for fd in fds:
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in listening:
                found.add((pid, target[8:-1]))
    return found


@pytest.fixture(scope="module")
def world() -> World:
    return build_world(1, scale="tiny", days=1)


def test_the_watcher_sees_a_listening_socket() -> None:
    """The check below can fail: it finds this test process's own listening socket."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        assert not listeners_of([os.getpid()])
        server.listen()
        assert listeners_of([os.getpid()])


@pytest.mark.slow
def test_a_crawl_opens_no_listening_socket(world: World, tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path / 'crawl.sqlite'}"
    with serve(world, day=0, ports=dict.fromkeys(SITES, 0), fast=True) as sites:
        command = crawl_command(
            ["roodlicht", "escortgids"],
            sites.urls,
            db_url,
            day_clock(world, 0),
            settings={"LOVITURA_PHOTO_WORKERS": "2"},
        )
        log_file = tmp_path / "crawl.log"
        proc = start(command, tmp_path, log=log_file)  # a pipe nobody reads would block it
        seen: set[tuple[int, str]] = set()
        samples = 0
        pids: set[int] = set()
        try:
            while proc.poll() is None:
                group = group_pids(proc.pid)
                pids.update(group)
                seen |= listeners_of(group)
                samples += 1
                time.sleep(0.05)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                kill(proc)
    log = log_file.read_text(encoding="utf-8")
    assert proc.returncode == 0, log[-2000:]
    assert samples >= 5, "the crawl ended before it could be watched"
    assert len(pids) >= 2, "the photo workers were never seen"
    assert not seen, f"listening sockets in the crawl's processes: {sorted(seen)}"
    assert "Remote control" not in log
    assert "Telnet console listening" not in log
