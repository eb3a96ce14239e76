#!/usr/bin/env python3
"""CDK entry point: validate the `mlops` context once, synthesize one stage per environment, fail on any finding."""

import sys
from pathlib import Path

from aws_cdk import App

from stacks.synth.application import build_app
from stacks.synth.config import ConfigError, load_config, refuse_unrepresentable_numbers
from stacks.synth.nag import unacknowledged_findings

CDK_JSON = Path(__file__).resolve().with_name("cdk.json")

app = App()
try:
    if CDK_JSON.is_file():
        refuse_unrepresentable_numbers(CDK_JSON.read_text())
    config = load_config(app.node.try_get_context("mlops"))
except ConfigError as error:
    sys.exit(f"Configuration error: {error}")
build_app(app, config)
try:
    app.synth()
except RuntimeError as error:
    # Run without the CDK CLI, aws-cdk-lib raises on the findings itself, after writing the same report.
    if "ValidationFailed" not in str(error):
        raise
findings = unacknowledged_findings(Path(app.outdir))
if findings:
    sys.exit(
        f"cdk-nag: {len(findings)} unacknowledged finding(s); fix each, or acknowledge it with a reason "
        "(stacks/synth/nag.py):\n  " + "\n  ".join(findings)
    )
