"""The shared-crawl protocol in Redis: joining, the end of a crawl, dead workers.

Runs against the machine's Redis (``LOVITURA_TEST_REDIS``, default 127.0.0.1:6379) without
crawling: the workers are ``SharedCrawl`` objects driven step by step.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from scrapy.settings import Settings

from lovitura_crawl.spiders import shared
from lovitura_crawl.spiders.shared import SharedCrawl, join_settings

REDIS_URL = os.environ.get("LOVITURA_TEST_REDIS", "redis://127.0.0.1:6379/0")
CLOCK = "2026-11-05T12:00:00+01:00"


@pytest.fixture
def client() -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(REDIS_URL)
    try:
        connection.ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL} ({exc}): start redis-server")
    yield connection
    connection.close()


@pytest.fixture
def prefix(client: redis.Redis) -> Iterator[str]:
    name = f"lovitura-test-{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(client.scan_iter(match=f"{name}:*", count=1000))
    if keys:
        client.delete(*keys)


def worker(prefix: str, clock: str = CLOCK) -> tuple[SharedCrawl, Settings]:
    settings = Settings(
        {"LOVITURA_REDIS_URL": REDIS_URL, "LOVITURA_REDIS_PREFIX": prefix, "LOVITURA_CLOCK": clock}
    )
    join_settings(settings, "roodlicht")
    return SharedCrawl.from_settings(settings, "roodlicht"), settings


def test_workers_join_one_crawl_with_the_first_clock(prefix: str) -> None:
    first, first_settings = worker(prefix)
    second, second_settings = worker(prefix, clock="2026-11-05T12:03:00+01:00")
    assert first.key == second.key == f"{prefix}:roodlicht:2026-11-05:1"
    assert second_settings.get("LOVITURA_CLOCK") == CLOCK
    assert second_settings.get("SCHEDULER_QUEUE_KEY") == f"{first.key}:requests"
    assert second_settings.getbool("SCHEDULER_PERSIST")
    assert first_settings.get("LOVITURA_SHARED_WORKER") != second_settings.get(
        "LOVITURA_SHARED_WORKER"
    )


def test_the_last_worker_finishes_after_the_others_closed(prefix: str) -> None:
    first, _ = worker(prefix)
    second, _ = worker(prefix)
    first.listing_read()
    assert not first.finished(), "the second worker is still busy"
    assert not second.finished(), "the second notices the end: it finishes, after the first"
    assert first.finished() and not first.marks_gone, "the first may close, marking nothing"
    assert not second.finished(), "the finisher waits until the first has closed"
    first.close()
    assert second.finished() and second.marks_gone

    # A crawl started after that is a new generation with a clean queue.
    third, _ = worker(prefix)
    assert third.key.endswith(":2")


def test_a_queued_request_keeps_the_crawl_open(prefix: str, client: redis.Redis) -> None:
    first, _ = worker(prefix)
    client.zadd(f"{first.key}:requests", {b"request": 0})
    assert not first.finished()
    found = client.eval(shared.POP, 2, f"{first.key}:requests", first.heartbeat_key, 30)
    assert found == b"request"
    assert client.get(first.heartbeat_key) == b"busy", "taking a request marks the worker busy"
    assert first.finished() and first.marks_gone is False, "no listing page was read"


def test_a_dead_worker_makes_the_crawl_incomplete(prefix: str, client: redis.Redis) -> None:
    first, _ = worker(prefix)
    second, _ = worker(prefix)
    first.listing_read()
    client.delete(second.heartbeat_key)  # its heartbeat stopped: killed
    assert first.finished()
    assert not first.marks_gone, "its requests may be lost: mark nothing gone"


def test_a_failed_listing_page_makes_the_crawl_incomplete(prefix: str) -> None:
    first, _ = worker(prefix)
    first.listing_read()
    first.listing_failed()
    assert first.finished() and not first.marks_gone


def test_a_crawl_whose_workers_all_died_is_not_joined(prefix: str, client: redis.Redis) -> None:
    first, _ = worker(prefix)
    client.delete(first.heartbeat_key)
    second, _ = worker(prefix)
    assert second.key != first.key
