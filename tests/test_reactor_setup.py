"""The reactor that ``lovitura`` starts gets Scrapy's DNS resolver and thread pool size.

Scrapy's own CrawlerProcess sets these up when it starts the reactor; ``run_reactor`` starts it
itself, so it must do the same (without it, every connection resolved its host anew in a thread,
with no cache and no DNS_TIMEOUT). The reactor can start once per process: a child runs it.
"""

from __future__ import annotations

import json
import subprocess
import sys

CHILD = """
import json
from lovitura_crawl.crawl import project_settings, run_reactor

async def main():
    from scrapy.resolver import dnscache
    from scrapy.utils.defer import maybe_deferred_to_future
    from twisted.internet import reactor

    address = await maybe_deferred_to_future(reactor.resolve("localhost"))
    return {
        "resolver": type(reactor.resolver).__name__,
        "timeout": reactor.resolver.timeout,
        "threads": reactor.getThreadPool().max,
        "cached": dnscache.get("localhost") == address,
    }

settings = project_settings({"DNS_TIMEOUT": 7, "REACTOR_THREADPOOL_MAXSIZE": 5})
print(json.dumps(run_reactor(main, settings)))
"""


def test_run_reactor_installs_scrapys_caching_resolver() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen == {
        "resolver": "CachingThreadedResolver",
        "timeout": 7.0,
        "threads": 5,
        "cached": True,
    }
