"""``register(main)`` adds the privacy commands, each with help, and ``db pseudonymise`` works."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from lovitura_crawl.cli_privacy import register
from lovitura_crawl.db.engine import make_engine
from lovitura_crawl.db.migrate import upgrade
from lovitura_crawl.db.reference import load_municipalities
from lovitura_crawl.privacy import identifiers
from lovitura_crawl.privacy.pseudonym import KEY_ENV, KEY_FILE_ENV
from tests.privacy_data import KEY, item, save

COMMANDS = [
    ["purge"],
    ["audit", "verify"],
    ["audit", "show"],
    ["db", "roles"],
    ["db", "pseudonymise"],
    ["subject"],
    ["query"],
    ["purpose", "add"],
    ["purpose", "list"],
    ["purpose", "close"],
    ["purpose", "attach"],
]


def _root() -> click.Group:
    @click.group()
    def root() -> None:
        pass

    root.add_command(click.Group("db"))
    register(root)
    return root


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_has_help(path: list[str]) -> None:
    result = CliRunner().invoke(_root(), [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_register_needs_the_db_group() -> None:
    with pytest.raises(RuntimeError, match="db"):
        register(click.Group("lovitura"))


def test_db_pseudonymise_needs_a_key_and_fills_the_table(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    load_municipalities(engine)
    save(engine, [item("a1", "+31612345001", "x", 2)])
    runner = CliRunner(env={KEY_ENV: None, KEY_FILE_ENV: None})
    missing = runner.invoke(_root(), ["db", "pseudonymise", "--db", url])
    assert missing.exit_code == 1 and KEY_FILE_ENV in missing.output
    done = runner.invoke(_root(), ["db", "pseudonymise", "--db", url], env={KEY_ENV: KEY.decode()})
    assert done.exit_code == 0 and "1 added" in done.output
    assert identifiers.missing(engine) == 0
    engine.dispose()
