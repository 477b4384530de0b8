"""Lovitura crawl: follow trafficking carousels through sex-ad sites, by phone, photo and place."""

__version__ = "0.1.0"
