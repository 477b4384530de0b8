"""Spider of ``roodlicht``: server-rendered classifieds, listing per province."""

from __future__ import annotations

from lovitura_crawl.sitedefs import ROODLICHT
from lovitura_crawl.spiders.base import SiteSpider


class RoodlichtSpider(SiteSpider):
    name = ROODLICHT.name
    definition = ROODLICHT
