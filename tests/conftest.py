"""Shared fixtures: the app from cdk.json is synthesized once per test session."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App, Stack  # noqa: E402
from aws_cdk.assertions import Template  # noqa: E402

from stacks.app import build_app  # noqa: E402
from stacks.config import load_config  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVIRONMENTS = ("dev", "prod")


def cdk_context() -> dict:
    """A fresh copy of the context in cdk.json, for tests that change it."""
    return copy.deepcopy(json.loads((REPO_ROOT / "cdk.json").read_text())["context"])


@dataclass
class SynthesizedApp:
    app: App
    outdir: Path
    stages: dict

    def stack(self, environment: str, name: str) -> Stack:
        return getattr(self.stages[environment], name)

    def template(self, environment: str, name: str) -> Template:
        return Template.from_stack(self.stack(environment, name))

    def template_files(self) -> list[Path]:
        return sorted(self.outdir.glob("assembly-*/*.template.json"))


def synthesize(context: dict, outdir: Path) -> SynthesizedApp:
    app = App(context=context, outdir=str(outdir))
    stages = build_app(app, load_config(context["mlops"]))
    app.synth()
    return SynthesizedApp(app=app, outdir=outdir, stages=stages)


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory) -> SynthesizedApp:
    return synthesize(cdk_context(), tmp_path_factory.mktemp("cdk.out"))


@pytest.fixture(scope="session", params=ENVIRONMENTS)
def environment(request) -> str:
    return request.param
