"""Scrapy item pipelines, one job per module, and the extraction functions they call.

Order (see ``ITEM_PIPELINES`` in lovitura_crawl/settings.py): validate, fields, phones, geo,
photos, storage.
"""
