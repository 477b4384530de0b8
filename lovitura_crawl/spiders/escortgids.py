"""Spider of ``escortgids``: international directory by country and city."""

from __future__ import annotations

from lovitura_crawl.sitedefs import ESCORTGIDS
from lovitura_crawl.spiders.base import SiteSpider


class EscortgidsSpider(SiteSpider):
    name = ESCORTGIDS.name
    definition = ESCORTGIDS
