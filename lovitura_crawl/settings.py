"""Scrapy settings of the Lovitura crawl project.

Lovitura's own settings carry the ``LOVITURA_`` prefix and are documented in docs/settings.md.
Defaults are polite: robots.txt obeyed, one request at a time per host with a delay,
AutoThrottle on, an identifying User-Agent, and no telnet console.
"""

from __future__ import annotations

import shutil

BOT_NAME = "lovitura_crawl"
SPIDER_MODULES = ["lovitura_crawl.spiders"]
NEWSPIDER_MODULE = "lovitura_crawl.spiders"

# --- Lovitura settings (alphabetical) -------------------------------------------------------
LOVITURA_ALLOWED_PRIVATE_HOSTS: list[str] = []  # private-address hosts that may be crawled
LOVITURA_BROWSER_PAGES = 2  # browser tabs per crawl of a browser site, reused page after page
LOVITURA_CLOCK = None  # ISO 8601 time to stamp observations with (replays, simulated days)
LOVITURA_DATABASE_URL = None  # None: $LOVITURA_DATABASE_URL, else var/lovitura.sqlite
LOVITURA_INCREMENTAL = True  # skip ad pages whose listing entry shows no change
LOVITURA_PHOTO_WORKERS = 2  # processes that fingerprint photos off the reactor thread
LOVITURA_PURPOSE = None  # purpose or case id of the crawl (`lovitura crawl --purpose`)
LOVITURA_REDIS_PREFIX = "lovitura"  # first part of every Redis key of shared crawls
LOVITURA_REDIS_RUN = None  # name of the shared crawl to join; None: the site and the clock's day
LOVITURA_REDIS_URL = None  # redis://HOST:PORT/DB: processes share one crawl (docs/crawling.md)
LOVITURA_REFETCH_DAYS = 7  # fetch an unchanged ad page again after this many days
LOVITURA_RETRY_AFTER_DEFAULT = 2.0  # seconds to wait after a 429 without Retry-After
LOVITURA_RETRY_AFTER_MAX = 60.0  # a longer Retry-After is cut to this many seconds
LOVITURA_RETRY_AFTER_TIMES = 4  # refusals of one request before it is given up
LOVITURA_SITE_REGIONS: dict[str, str] = {"escortgids": "NL"}  # default phone region per site
LOVITURA_SITE_URLS: dict[str, str] = {}  # base URL per site name (the demo world sets these)
LOVITURA_STORE_BATCH = 200  # items per database transaction
LOVITURA_WARC_DIR = None  # folder to record every crawl's responses in, as WARC files

# --- Politeness ----------------------------------------------------------------------------
USER_AGENT = "LovituraCrawl/0.1 (+https://github.com/lovitura/lovitura-crawl; research crawler)"
ROBOTSTXT_OBEY = True
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 1
# Scrapy's downloader, but holding CONCURRENT_REQUESTS_PER_DOMAIN without a download delay too
# (lovitura_crawl/downloader.py: Scrapy 2.19 started a whole queue at once then).
DOWNLOADER = "lovitura_crawl.downloader.Downloader"
DOWNLOAD_DELAY = 0.25
DOWNLOAD_DELAY_JITTER = 0.5  # delay varies between 0.5x and 1.5x
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 0.25
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
RETRY_ENABLED = True
RETRY_TIMES = 4
# 429 is left to RetryAfterMiddleware, which waits as long as the site asks.
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408]
DOWNLOAD_TIMEOUT = 60

# --- Safety --------------------------------------------------------------------------------
# No server in the crawler: Scrapy's telnet console, and since Scrapy 2.19 its remote-control HTTP
# server (on by default; it runs any Python code sent with its token, which it writes to the
# user's profile folder). tests/test_listeners.py watches a crawl for any listening socket.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
DOWNLOAD_MAXSIZE = 32 * 1024 * 1024
DOWNLOAD_WARNSIZE = 8 * 1024 * 1024
COOKIES_ENABLED = False
REDIRECT_MAX_TIMES = 5
DOWNLOADER_MIDDLEWARES = {
    "lovitura_crawl.middlewares.SafeDestinationMiddleware": 50,
    # Scrapy 2.19's checks only one of the requests waiting for robots.txt: ours checks all.
    "scrapy.downloadermiddlewares.robotstxt.RobotsTxtMiddleware": None,
    "lovitura_crawl.middlewares.RobotsTxtMiddleware": 100,
    # Above RetryMiddleware (550): it sees a 429 first and waits out Retry-After.
    "lovitura_crawl.middlewares.RetryAfterMiddleware": 560,
    # Next to the download handler: records what the site answered (LOVITURA_WARC_DIR).
    "lovitura_crawl.ingest_warc.WarcRecorderMiddleware": 960,
    # Last before the download handler: browser requests take a reused tab (spiders/browser.py).
    "lovitura_crawl.spiders.browser.BrowserPageMiddleware": 950,
}

# --- Pipelines (spaced numbers; one job per module, see docs/pipelines.md) ------------------
ITEM_PIPELINES = {
    "pipelines.validate.ValidatePipeline": 100,
    "pipelines.fields.FieldsPipeline": 200,
    "pipelines.phones.PhonesPipeline": 300,
    "pipelines.geo.GeoPipeline": 400,
    "pipelines.photo_reuse.StoredPhotosPipeline": 500,
    "pipelines.storage.StoragePipeline": 900,
}
EXTENSIONS = {
    "scrapy.extensions.telnet.TelnetConsole": None,
    # URL paths (slugs with nicknames, titles, numbers) only at DEBUG (docs/privacy.md).
    "lovitura_crawl.logformat.PrivateLogExtension": 0,
}

# --- Browser rendering (only requests with meta["playwright"] use it) ------------------------
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
# Only the spiders of browser sites install it (SiteSpider.update_settings): starting
# Playwright costs seconds that a plain HTTP crawl need not pay.
PLAYWRIGHT_DOWNLOAD_HANDLERS = {
    "http": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
    "https": "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler",
}
PLAYWRIGHT_BROWSER_TYPE = "chromium"
PLAYWRIGHT_LAUNCH_OPTIONS = {
    "executable_path": shutil.which("chromium") or "/usr/bin/chromium",
    "headless": True,
    "args": [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ],
}
PLAYWRIGHT_MAX_PAGES_PER_CONTEXT = 4  # at least LOVITURA_BROWSER_PAGES
PLAYWRIGHT_MAX_CONTEXTS = 2
PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT = 30_000

FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"
# Scrapy's own formatter logs whole dropped items (ad text, phones) at WARNING.
LOG_FORMATTER = "lovitura_crawl.logformat.PrivateLogFormatter"
