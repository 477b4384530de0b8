"""``-s NAME=VALUE`` settings are checked before a crawl or an ingest writes anything."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from lovitura_crawl.cli import main
from lovitura_crawl.setting_overrides import SettingError, check_overrides, parse_overrides


@pytest.mark.parametrize(
    "overrides",
    [
        {"DOWNLOAD_DELAY": "0.5"},
        {"CONCURRENT_REQUESTS_PER_DOMAIN": "2", "AUTOTHROTTLE_ENABLED": "false"},
        {"LOVITURA_PHOTO_WORKERS": "1", "LOVITURA_WARC_DIR": "/tmp/warc"},
        {"LOVITURA_SITE_REGIONS": '{"roodlicht": "NL"}'},
        {"LOG_LEVEL": "info", "ITEM_PIPELINES": "{}", "RETRY_HTTP_CODES": "500,503"},
        {"LOVITURA_REFETCH_DAYS": "3", "LOVITURA_STORE_BATCH": "50"},
        {"PLAYWRIGHT_LAUNCH_OPTIONS": '{"headless": true}', "SCHEDULER_PERSIST": "True"},
    ],
)
def test_settings_of_scrapy_lovitura_and_its_addons_pass(overrides: dict[str, str]) -> None:
    assert check_overrides(overrides) == []


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"DOWNLOAD_DELAI": "1"}, "did you mean DOWNLOAD_DELAY?"),
        ({"ROBOTSTXT_OBAY": "False"}, "did you mean ROBOTSTXT_OBEY?"),
        ({"LOVITURA_PHOTO_WORKER": "1"}, "did you mean LOVITURA_PHOTO_WORKERS?"),
        ({"LOVITURA_NO_SUCH_THING": "1"}, "is no Lovitura setting; docs/settings.md"),
        ({"DOWNLOAD_DELAY": "abc"}, "DOWNLOAD_DELAY takes a number"),
        ({"CONCURRENT_REQUESTS": "many"}, "CONCURRENT_REQUESTS takes a number"),
        ({"AUTOTHROTTLE_ENABLED": "maybe"}, "AUTOTHROTTLE_ENABLED takes true or false"),
        ({"LOVITURA_SITE_REGIONS": "{roodlicht: x}"}, "LOVITURA_SITE_REGIONS takes a JSON object"),
        ({"LOVITURA_SITE_URLS": "{}"}, "LOVITURA_SITE_URLS is set with --site-url"),
        ({"LOVITURA_SITE_REGIONS": "[1]"}, "LOVITURA_SITE_REGIONS takes a JSON object"),
        ({"download_delay": "1"}, "setting names are upper case (DOWNLOAD_DELAY)"),
        ({"RETRY_HTTP_CODES": "500,foo"}, "RETRY_HTTP_CODES takes whole numbers"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL takes a level"),
        ({"LOVITURA_PURPOSE": "NOPE"}, "LOVITURA_PURPOSE is set with --purpose, not with -s"),
        ({"LOVITURA_DATABASE_URL": "sqlite:///x"}, "is set with --db"),
        ({"LOVITURA_CLOCK": "yesterday"}, "LOVITURA_CLOCK is set with --clock"),
        ({"LOVITURA_REDIS_URL": "127.0.0.1:6379"}, "LOVITURA_REDIS_URL is set with --redis"),
        ({"LOVITURA_WARC_DIR": "/proc/nonexistent"}, "LOVITURA_WARC_DIR takes a folder"),
    ],
)
def test_a_typo_or_a_wrong_value_is_refused(overrides: dict[str, str], said: str) -> None:
    with pytest.raises(SettingError, match=re.escape(said)):
        check_overrides(overrides)


def test_an_unknown_name_passes_with_a_warning_for_an_addon() -> None:
    warnings = check_overrides({"MYADDON_BATCH": "3"})
    assert len(warnings) == 1 and "MYADDON_BATCH" in warnings[0]


@pytest.mark.parametrize("value", ["DOWNLOAD_DELAY", "=1", " =1"])
def test_a_setting_needs_a_name_and_a_value(value: str) -> None:
    with pytest.raises(SettingError, match="is not NAME=VALUE"):
        parse_overrides([value])


def test_values_keep_their_equals_signs() -> None:
    assert parse_overrides(["USER_AGENT=a=b"]) == {"USER_AGENT": "a=b"}


@pytest.mark.parametrize(
    "command",
    [
        ["crawl", "roodlicht"],
        ["ingest", "ITEMS"],
    ],
)
def test_crawl_and_ingest_refuse_before_they_write(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "items.jsonl").write_text("")
    db = tmp_path / "c.sqlite"
    command = [str(tmp_path / "items.jsonl") if part == "ITEMS" else part for part in command]
    args = [*command, "--db", f"sqlite:///{db}", "-s", "DOWNLOAD_DELAY=slow"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert "DOWNLOAD_DELAY takes a number" in result.output
    assert not db.exists()


def test_a_warc_folder_is_made_before_the_crawl(tmp_path: Path) -> None:
    folder = tmp_path / "warc" / "today"
    assert check_overrides({"LOVITURA_WARC_DIR": str(folder)}) == []
    assert folder.is_dir()


@pytest.mark.parametrize(
    "pipelines", ["{}", '{"pipelines.storage.StoragePipeline": null}', '{"x.Y": 1}']
)
def test_a_crawl_that_would_store_nothing_is_refused(tmp_path: Path, pipelines: str) -> None:
    db = tmp_path / "c.sqlite"
    args = ["crawl", "roodlicht", "--db", f"sqlite:///{db}", "-s", f"ITEM_PIPELINES={pipelines}"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert "the crawl would store nothing" in result.output
    assert not db.exists()
