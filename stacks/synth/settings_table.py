"""The README's table of settings, written from their declarations (lambdas/common/contracts.py, config.py).

    python -m stacks.synth.settings_table            prints the table
    python -m stacks.synth.settings_table --write    rewrites it in README.md between its markers

tests/test_settings_table.py keeps the README's copy equal to what this writes.
"""

from __future__ import annotations

import argparse
import json
import typing
from dataclasses import MISSING, fields, is_dataclass
from typing import Any

from lambdas.common.contracts import SAME, Setting
from stacks.synth.bundling import REPO_ROOT
from stacks.synth.config import (
    DeliveryConfig,
    EnvironmentConfig,
    ProjectConfig,
    _bounds,
    _optional,
    _unwrap,
    default,
)

README = REPO_ROOT / "README.md"
START = "<!-- settings table: written by `python -m stacks.synth.settings_table --write` -->"
END = "<!-- end of settings table -->"
FORMS = {
    "prefix": "S3 prefix ending in `/`",
    "suffix": "file name suffix",
    "tag": "Docker image tag",
    "account": "12-digit account id",
    "region": "AWS region",
    "pipeline_account": "12-digit account id",
    "pipeline_region": "AWS region",
    "email": "e-mail address",
    "connection": "CodeConnections ARN",
    "repository": "`owner/repository`",
    "branch": "branch name",
    "cron": "EventBridge Scheduler `cron(...)`",
    "monitor_cron": "hourly `cron(0 * ? * * *)` or every N hours `cron(0 */N ? * * *)`",
    "timezone": "IANA time zone",
    "vpc_id": "VPC id",
    "subnet_id": "list of subnet ids",
    "security_group_id": "list of security group ids",
    "permissions_boundary": "managed policy ARN or name",
    "name": "2-21 of `a-z`, `0-9`, `-`; a letter first",
}


def _shown(value: Any) -> str:
    if value is MISSING:
        return "required"
    if value is None:
        return "none"
    return f"`{json.dumps(value)}`"


def _allowed(hint: Any, setting: Setting | None) -> str:
    hint = _optional(hint) or hint
    if setting is not None and setting.choices:
        return ", ".join(f"`{json.dumps(c)}`" for c in setting.choices)
    if setting is not None and setting.form:
        kind, _, use = setting.form.partition(":")
        return f"SageMaker {use} instance type" if kind == "instance_type" else FORMS[kind]
    if is_dataclass(hint):
        return "object: " + ", ".join(f"`{f.name}`" for f in fields(hint))
    names = {bool: "true or false", int: "integer", float: "number", str: "string", dict: "object"}
    text = names.get(typing.get_origin(hint) or hint, "list of names")
    return text + (_bounds(setting) if setting is not None else "")


def _rows(config: type, prefix: str, skip: tuple[str, ...] = ()) -> list[str]:
    rows = []
    hints = typing.get_type_hints(config, include_extras=True)
    for field in fields(config):
        if field.name in skip:
            continue
        hint, setting = _unwrap(hints[field.name])
        key = f"{prefix}{field.name}"
        section = _optional(hint) or hint
        if setting is None and isinstance(section, type) and is_dataclass(section):
            rows += _rows(section, f"{key}.")
            continue
        assert setting is not None, f"{config.__name__}.{field.name} has no Setting declaration"
        usual = default(config, field.name, production=False)
        production = "" if setting.production == SAME else _shown(setting.production)
        rows.append(f"| `{key}` | {_shown(usual)} | {production} | {_allowed(hint, setting)} | {setting.doc} |")
    return rows


def settings_table() -> str:
    lines = ["| key | default | production's default | allowed | meaning |", "| --- | --- | --- | --- | --- |"]
    lines += _rows(ProjectConfig, "", skip=("environments", "delivery"))
    lines += _rows(EnvironmentConfig, "environments.<name>.", skip=("name",))
    lines += _rows(DeliveryConfig, "delivery.")
    return "\n".join(lines) + "\n"


def written_readme(readme: str) -> str:
    """`readme` with the table between its markers replaced by the current one."""
    head, start, rest = readme.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"README.md lacks the settings table's markers: {START} ... {END}")
    return f"{head}{START}\n{settings_table()}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the table in README.md")
    if parser.parse_args(argv).write:
        README.write_text(written_readme(README.read_text()))
    else:
        print(settings_table(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
