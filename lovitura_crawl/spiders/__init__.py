"""One spider per site, each running a ``lovitura_crawl.sitedefs.SiteDefinition``."""
