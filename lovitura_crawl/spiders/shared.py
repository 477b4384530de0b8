"""One crawl of a site shared by several processes (workers), through Redis and scrapy-redis.

With ``LOVITURA_REDIS_URL`` set, every worker started for a site joins the site's current shared
crawl: scrapy-redis keeps its request queue and duplicate filter in Redis, so each page is
fetched by one worker only, and start pages queued by a second worker are dropped as duplicates.
Keys are ``{LOVITURA_REDIS_PREFIX}:{site}:{run}:{generation}:...``; ``run`` is
``LOVITURA_REDIS_RUN`` or the day of the crawl, a new generation starts when the previous one
finished or all its workers died, so a rerun later that day is a crawl of its own.

Coordination, all in Lua scripts (atomic in Redis):

* *join*: pick or start the generation, fix its clock (every worker stamps observations with the
  first worker's clock, so gone-marking compares like with like), register the worker as busy;
* *pop*: take a request from the queue and mark the worker busy in one step;
* *idle*: a worker with nothing left marks itself idle; when the queue is empty and no worker is
  busy, the first to notice becomes the *finisher*. The others close; the finisher waits until
  they have closed (their items are stored), then closes last and is the only one that may mark
  unseen ads gone: when no listing page failed and no worker died.

A worker's thread renews its state key every few seconds; a worker silent for
``HEARTBEAT_TTL`` seconds is dead (killed): the requests it held are lost to this crawl, so the
crawl does not count as complete, and the next daily crawl (or a rerun, which starts a new
generation) fetches what is missing.
The per-site lock of ``lovitura_crawl.locks`` is not taken by workers: they are meant to run
together, and the generation plays its part.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from datetime import UTC, datetime
from typing import Any

from scrapy_redis.queue import PriorityQueue

from lovitura_crawl.clock import parse_clock

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
HEARTBEAT_TTL = 30  # seconds without a heartbeat before a worker counts as dead
KEEP_SECONDS = 24 * 3600  # a finished crawl's keys are kept this long, for inspection
CLOSED = "closed"  # the state of a worker whose items are all stored

JOIN = """
local run, worker, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local gen = redis.call('GET', KEYS[1])
if gen then
  local g = run .. ':' .. gen
  local abandoned = redis.call('EXISTS', g .. ':finished') == 1
  if not abandoned then
    local members = redis.call('SMEMBERS', g .. ':workers')
    local alive = 0
    for _, member in ipairs(members) do
      local state = redis.call('GET', g .. ':hb:' .. member)
      if state == 'busy' or state == 'idle' then alive = alive + 1 end
    end
    abandoned = #members > 0 and alive == 0
  end
  if abandoned then gen = redis.call('INCR', KEYS[1]) end
else
  gen = redis.call('INCR', KEYS[1])
end
local g = run .. ':' .. gen
redis.call('SET', g .. ':clock', now, 'NX')
redis.call('SADD', g .. ':workers', worker)
redis.call('SET', g .. ':hb:' .. worker, 'busy', 'EX', ttl)
return {g, redis.call('GET', g .. ':clock')}
"""

POP = """
local found = redis.call('ZRANGE', KEYS[1], 0, 0)
if #found == 0 then return false end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, 0)
redis.call('SET', KEYS[2], 'busy', 'EX', ARGV[1])
return found[1]
"""

IDLE_CHECK = """
local g, me, ttl = ARGV[1], ARGV[2], ARGV[3]
local finisher = redis.call('GET', g .. ':finished')
if not finisher then
  redis.call('SET', g .. ':hb:' .. me, 'idle', 'EX', ttl)
  if redis.call('ZCARD', g .. ':requests') > 0 then return {'wait', 0} end
  for _, member in ipairs(redis.call('SMEMBERS', g .. ':workers')) do
    if redis.call('GET', g .. ':hb:' .. member) == 'busy' then return {'wait', 0} end
  end
  redis.call('SET', g .. ':finished', me)
  finisher = me
end
if finisher ~= me then return {'close', 0} end
local dead = 0
for _, member in ipairs(redis.call('SMEMBERS', g .. ':workers')) do
  if member ~= me then
    local state = redis.call('GET', g .. ':hb:' .. member)
    if state == 'idle' or state == 'busy' then return {'wait', 0} end
    if not state then dead = dead + 1 end
  end
end
return {'finish', dead}
"""


class SharedCrawlError(RuntimeError):
    """Redis cannot be reached or holds something unexpected."""


def redis_client(url: str) -> Any:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise SharedCrawlError(
            f"cannot reach Redis at {url} ({exc}); start it, or crawl without --redis"
        ) from exc
    return client


def worker_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def join_settings(settings: Any, site: str) -> None:
    """Join (or start) the site's shared crawl and point the scheduler at its Redis keys.

    Called while the crawler's settings can still change (``SiteSpider.update_settings``).
    """
    url = str(settings.get("LOVITURA_REDIS_URL"))
    client = redis_client(url)
    clock = settings.get("LOVITURA_CLOCK") or datetime.now(UTC).isoformat()
    run = settings.get("LOVITURA_REDIS_RUN") or parse_clock(str(clock)).date().isoformat()
    prefix = settings.get("LOVITURA_REDIS_PREFIX") or "lovitura"
    run_key = f"{prefix}:{site}:{run}"
    worker = worker_name()
    generation, shared_clock = client.eval(
        JOIN, 1, f"{run_key}:generation", run_key, worker, str(clock), HEARTBEAT_TTL
    )
    base = generation.decode()
    logger.info("%s: worker %s joins shared crawl %s", site, worker, base)
    priority = "cmdline"
    settings.set("LOVITURA_CLOCK", shared_clock.decode(), priority=priority)
    settings.set("LOVITURA_SHARED_KEY", base, priority=priority)
    settings.set("LOVITURA_SHARED_WORKER", worker, priority=priority)
    settings.set("REDIS_URL", url, priority=priority)
    settings.set("SCHEDULER", "scrapy_redis.scheduler.Scheduler", priority=priority)
    settings.set("DUPEFILTER_CLASS", "scrapy_redis.dupefilter.RFPDupeFilter", priority=priority)
    settings.set("SCHEDULER_QUEUE_CLASS", f"{__name__}.SharedQueue", priority=priority)
    settings.set("SCHEDULER_QUEUE_KEY", f"{base}:requests", priority=priority)
    settings.set("SCHEDULER_DUPEFILTER_KEY", f"{base}:dupefilter", priority=priority)
    # Scrapy's engine takes requests from the scheduler until CONCURRENT_REQUESTS (16 by default)
    # wait in its downloader, whatever the per-site limit: a worker took every request of the
    # shared queue and crawled them one by one, and the other workers found the queue empty.
    # A shared crawl is of one site, so a worker takes only what it may download at once.
    per_site = settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN")
    settings.set("CONCURRENT_REQUESTS", max(1, per_site), priority=priority)
    # The queue belongs to every worker: none may flush it when it closes.
    settings.set("SCHEDULER_PERSIST", True, priority=priority)
    settings.set("SCHEDULER_FLUSH_ON_START", False, priority=priority)
    client.close()


class SharedCrawl:
    """This worker's part in a shared crawl: heartbeat, counters, and the end of the crawl."""

    def __init__(self, client: Any, key: str, worker: str) -> None:
        self.client = client
        self.key = key
        self.worker = worker
        self.marks_gone = False  # set on the finisher when the shared listing was complete
        self._heartbeat: threading.Thread | None = None
        self._stop = threading.Event()

    @classmethod
    def from_settings(cls, settings: Any, site: str) -> SharedCrawl:
        key = settings.get("LOVITURA_SHARED_KEY")
        worker = settings.get("LOVITURA_SHARED_WORKER")
        if not key or not worker:
            raise SharedCrawlError(
                f"{site}: LOVITURA_REDIS_URL is set but the crawl did not join a shared crawl; "
                "start the crawl with `lovitura crawl --redis URL` or `scrapy crawl`"
            )
        return cls(redis_client(str(settings.get("LOVITURA_REDIS_URL"))), str(key), str(worker))

    @property
    def heartbeat_key(self) -> str:
        return f"{self.key}:hb:{self.worker}"

    # --- lifecycle ----------------------------------------------------------------------------

    def open(self) -> None:
        # A thread, not the reactor: a worker whose reactor waits on the database (another
        # worker holding SQLite's write lock) is slow, not dead.
        self._stop = threading.Event()
        self._heartbeat = threading.Thread(
            target=self._beat, name=f"heartbeat-{self.worker}", daemon=True
        )
        self._heartbeat.start()

    def _beat(self) -> None:
        """Keep this worker's state key alive; its value is only set with the queue's steps."""
        import redis

        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self.client.expire(self.heartbeat_key, HEARTBEAT_TTL)
            except redis.RedisError as exc:
                logger.warning("shared crawl %s: heartbeat failed (%s)", self.key, exc)

    def close(self, spider: Any = None, reason: str = "") -> None:
        """The worker's items are stored: tell the finisher, stop the heartbeat."""
        if self._heartbeat is not None:
            self._stop.set()
            self._heartbeat.join(timeout=HEARTBEAT_SECONDS * 2)
        self.client.set(self.heartbeat_key, CLOSED, ex=KEEP_SECONDS)
        self.client.close()

    # --- counters -----------------------------------------------------------------------------

    def listing_read(self) -> None:
        self.client.incr(f"{self.key}:listing_pages")

    def listing_failed(self) -> None:
        self.client.incr(f"{self.key}:listing_failures")

    # --- the end ------------------------------------------------------------------------------

    def finished(self) -> bool:
        """Whether this idle worker may close now (see the module's description)."""
        verdict, dead = self.client.eval(IDLE_CHECK, 0, self.key, self.worker, HEARTBEAT_TTL)
        verdict = verdict.decode()
        if verdict == "wait":
            return False
        if verdict == "finish":
            self.marks_gone = self._listing_complete() and int(dead) == 0
            if int(dead):
                logger.warning(
                    "shared crawl %s: %d worker(s) died; unseen ads are not marked gone",
                    self.key,
                    int(dead),
                )
            self._expire()
        return True

    def _listing_complete(self) -> bool:
        pages, failures = self.client.mget(
            f"{self.key}:listing_pages", f"{self.key}:listing_failures"
        )
        return int(pages or 0) > 0 and int(failures or 0) == 0

    def _expire(self) -> None:
        keys = [k.decode() for k in self.client.scan_iter(match=f"{self.key}:*", count=500)]
        pipe = self.client.pipeline()
        for key in keys:
            if key != self.heartbeat_key:
                pipe.expire(key, KEEP_SECONDS)
        pipe.execute()


class SharedQueue(PriorityQueue):
    """scrapy-redis's priority queue whose pop also marks the worker busy, in one step.

    Without that step a worker that just took the last request could look idle to the others,
    and they would end the shared crawl under its feet.
    """

    def pop(self, timeout: int = 0) -> Any:
        shared = getattr(self.spider, "shared", None)
        if shared is None:
            return super().pop(timeout)
        found = self.server.eval(POP, 2, self.key, shared.heartbeat_key, HEARTBEAT_TTL)
        if not found:
            return None
        return self._decode_request(found)
