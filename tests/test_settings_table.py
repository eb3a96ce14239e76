"""The README's table of settings is the one their declarations write, and its defaults are what synth uses."""

from __future__ import annotations

import json
import re

import pytest
from conftest import cdk_context

from stacks.synth import settings_table
from stacks.synth.config import load_config

ROW = re.compile(r"^\| `environments\.<name>\.(?P<key>[a-z_.]+)` \| (?P<default>[^|]+) \| (?P<production>[^|]*) \|")


def test_the_readme_holds_the_current_table():
    readme = settings_table.README.read_text()
    assert settings_table.written_readme(readme) == readme, "run: python -m stacks.synth.settings_table --write"


def test_a_readme_without_the_markers_is_named():
    with pytest.raises(ValueError, match=r"^README\.md lacks the settings table"):
        settings_table.written_readme("# no table here\n")


def _value(environment, key: str):
    value = environment
    for part in key.split("."):
        value = getattr(value, part)
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.parametrize("production", [False, True])
def test_the_tables_defaults_are_what_an_environment_that_states_nothing_gets(production):
    """An environment of {"production": ...} alone takes the default, or production's where the table gives one."""
    context = cdk_context()["mlops"]
    context["environments"] = {"bare": {"production": production}}
    (environment,) = load_config(context).environments
    checked = 0
    for line in settings_table.settings_table().splitlines():
        row = ROW.match(line)
        if row is None or row["default"].strip() == "required":
            continue
        shown = row["production"].strip() if production and row["production"].strip() else row["default"].strip()
        value = _value(environment, row["key"])
        if row["key"] == "training.quality_gate":
            assert value == load_config(context).quality_gate, "left out, the project's gate"
        else:
            assert shown == ("none" if value is None else f"`{json.dumps(value)}`"), row["key"]
        checked += 1
    assert checked > 30
