#!/usr/bin/env python3
"""CDK entry point: validate the `mlops` context once, then synthesize one stage per environment."""

import sys
from pathlib import Path

from aws_cdk import App

from stacks.app import build_app
from stacks.config import ConfigError, load_config, refuse_unrepresentable_numbers

CDK_JSON = Path(__file__).resolve().with_name("cdk.json")

app = App()
try:
    if CDK_JSON.is_file():
        refuse_unrepresentable_numbers(CDK_JSON.read_text())
    config = load_config(app.node.try_get_context("mlops"))
except ConfigError as error:
    sys.exit(f"Configuration error: {error}")
build_app(app, config)
app.synth()
