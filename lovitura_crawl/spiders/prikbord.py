"""Spider of ``prikbord``: free-text board in windows-1252 with a photo page per post."""

from __future__ import annotations

from lovitura_crawl.sitedefs import PRIKBORD
from lovitura_crawl.spiders.base import SiteSpider


class PrikbordSpider(SiteSpider):
    name = PRIKBORD.name
    definition = PRIKBORD
