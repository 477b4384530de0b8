"""The per-site concurrency holds without a download delay (lovitura_crawl/downloader.py).

A child process crawls a local server that answers every page after a short pause and records
how many requests it is serving at the same time. Scrapy 2.19's own downloader sent a whole
queue of requests at once when ``DOWNLOAD_DELAY`` was 0, whatever the per-domain limit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

PAGES = 24
PAUSE = 0.03  # seconds each answer takes: requests sent together overlap at the server

CHILD = """
import json, sys
import scrapy
from lovitura_crawl.crawl import crawl_jobs, project_settings, run_reactor

class Pages(scrapy.Spider):
    name = "pages"

    async def start(self):
        yield scrapy.Request(sys.argv[1] + "/", self.parse_index)

    def parse_index(self, response):
        for n in range(int(sys.argv[2])):
            yield scrapy.Request(f"{sys.argv[1]}/page/{n}", self.parse_page)

    def parse_page(self, response):
        yield {"url": response.url}

async def main():
    from scrapy.crawler import AsyncCrawlerRunner, Crawler
    settings = project_settings(json.loads(sys.argv[3]))
    crawler = Crawler(Pages, settings)
    await AsyncCrawlerRunner(settings).crawl(crawler)
    return crawler.stats.get_value("item_scraped_count", 0)

print(json.dumps(run_reactor(main, project_settings(json.loads(sys.argv[3])))))
"""


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most = 0
        self.connections: set[int] = set()

    def enter(self, port: int) -> None:
        with self.lock:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            self.connections.add(port)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: CountingServer

    def do_GET(self) -> None:
        self.server.enter(self.client_address[1])
        try:
            time.sleep(0 if self.path in ("/", "/robots.txt") else PAUSE)
            body = b"<html><body>page</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            self.server.leave()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def server() -> Iterator[CountingServer]:
    httpd = CountingServer()
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def crawl(server: CountingServer, settings: dict[str, Any], folder: Path) -> int:
    url = f"http://127.0.0.1:{server.server_address[1]}"
    overrides = {
        "ITEM_PIPELINES": {},
        "AUTOTHROTTLE_ENABLED": False,
        "LOVITURA_ALLOWED_PRIVATE_HOSTS": ["127.0.0.1"],
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    # A file, not ``-c``: Scrapy reads the source of generator callbacks.
    child = folder / "child.py"
    child.write_text(CHILD)
    done = subprocess.run(
        [sys.executable, str(child), url, str(PAGES), json.dumps(overrides)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return int(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("limit", [1, 2])
def test_per_site_limit_holds_without_a_delay(
    server: CountingServer, limit: int, tmp_path: Path
) -> None:
    settings = {"DOWNLOAD_DELAY": 0, "CONCURRENT_REQUESTS_PER_DOMAIN": limit}
    assert crawl(server, settings, tmp_path) == PAGES
    assert server.most == limit
    # One request at a time reuses its connection (keep-alive) instead of opening a new one
    # per request, as a burst did.
    assert len(server.connections) <= limit + 1


def test_per_site_limit_holds_with_a_delay(server: CountingServer, tmp_path: Path) -> None:
    settings = {"DOWNLOAD_DELAY": 0.01, "CONCURRENT_REQUESTS_PER_DOMAIN": 1}
    assert crawl(server, settings, tmp_path) == PAGES
    assert server.most == 1
