"""Every LOVITURA_ setting and environment variable the code reads is in docs/settings.md."""

from __future__ import annotations

import re
from pathlib import Path

import lovitura_crawl.settings as project_settings

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
PACKAGES = ("lovitura_crawl", "pipelines", "matching", "fixtures")


def test_every_setting_is_documented() -> None:
    names = [name for name in vars(project_settings) if name.startswith("LOVITURA_")]
    assert names
    assert [name for name in names if f"`{name}`" not in DOC] == []


def test_every_name_the_code_reads_is_documented() -> None:
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            found |= set(re.findall(r"\bLOVITURA_[A-Z][A-Z_]*[A-Z]\b", path.read_text("utf-8")))
    assert sorted(name for name in found if f"`{name}`" not in DOC) == []
