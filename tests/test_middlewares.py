"""The crawler's safety rules: schemes, private addresses, headers after redirects."""

from __future__ import annotations

import pytest
from scrapy import Spider
from scrapy.downloadermiddlewares.redirect import RedirectMiddleware
from scrapy.http import Request, Response
from scrapy.utils.test import get_crawler

from lovitura_crawl.middlewares import SafeDestinationMiddleware, UnsafeDestination


class DemoSpider(Spider):
    name = "demo"
    allowed_private_hosts = ("127.0.0.1",)


def _middleware(spider_cls: type[Spider] = DemoSpider) -> tuple[SafeDestinationMiddleware, Spider]:
    crawler = get_crawler(spider_cls)
    spider = spider_cls()
    crawler.spider = spider
    return SafeDestinationMiddleware.from_crawler(crawler), spider


@pytest.mark.parametrize(
    "url",
    [
        "ftp://127.0.0.1/file",
        "file:///etc/passwd",
        "http://10.0.0.8/",
        "http://192.168.1.1/admin",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/",
        "http://localhost:8401/",
        "http://127.0.0.2/",
    ],
)
def test_unsafe_destinations_are_refused_and_counted(url: str) -> None:
    middleware, spider = _middleware()
    with pytest.raises(UnsafeDestination):
        middleware.process_request(Request(url), spider)
    stats = middleware.crawler.stats.get_stats()
    assert any(key.startswith("lovitura/request/") for key in stats)


def test_allowed_private_host_and_public_address_pass() -> None:
    middleware, spider = _middleware()
    assert middleware.process_request(Request("http://127.0.0.1:8401/"), spider) is None
    assert middleware.process_request(Request("https://93.184.215.14/"), spider) is None


def test_a_spider_without_allowance_cannot_reach_loopback() -> None:
    class Plain(Spider):
        name = "plain"

    middleware, spider = _middleware(Plain)
    with pytest.raises(UnsafeDestination):
        middleware.process_request(Request("http://127.0.0.1:8401/"), spider)


def test_credentials_are_not_sent_to_another_domain_after_a_redirect() -> None:
    crawler = get_crawler(Spider)
    redirect = RedirectMiddleware.from_crawler(crawler)
    request = Request(
        "https://ads.example/page",
        headers={"Cookie": "session=1", "Authorization": "Basic eDp5"},
    )
    response = Response(
        "https://ads.example/page", status=302, headers={"Location": "https://other.example/"}
    )
    followed = redirect.process_response(request, response)

    assert isinstance(followed, Request)
    assert b"Cookie" not in followed.headers and b"Authorization" not in followed.headers
