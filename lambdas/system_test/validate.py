"""Check a deployed environment's resources from your machine: `make validate ENV=<name>`.

Reads what to check from the `SystemTestSettings` output of the environment's Orchestration stack (the
same settings its system test state machine uses), runs the resource checks with your AWS credentials
and prints one line per check. Exit status: 0 when every check passes, 1 when one fails, 2 when the
environment cannot be read.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import boto3
import checks
from botocore.exceptions import BotoCoreError, ClientError

from common.contracts import SettingsError, SystemTestSettings

OUTPUT_KEY = "SystemTestSettings"


class UnreadableEnvironment(Exception):
    """The environment's stack or its output cannot be read; the message says how to fix it."""


def read_settings(cloudformation: Any, stack_name: str) -> SystemTestSettings:
    try:
        (stack,) = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        if error.response["Error"]["Code"] == "ValidationError":
            raise UnreadableEnvironment(
                f"stack {stack_name} does not exist in {cloudformation.meta.region_name}; deploy it (make deploy ENV=...) "
                "or set AWS_REGION to the environment's region"
            ) from None
        raise
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    if OUTPUT_KEY not in outputs:
        raise UnreadableEnvironment(
            f"stack {stack_name} has no {OUTPUT_KEY} output; redeploy it with this version of the project"
        )
    try:
        return SystemTestSettings.from_json(outputs[OUTPUT_KEY], f"{stack_name} output {OUTPUT_KEY}")
    except SettingsError as error:
        raise UnreadableEnvironment(str(error)) from None


def render(environment: str, results: list[dict]) -> str:
    width = max(len(r["check"]) for r in results)
    lines = [f"{r['status'].upper():15} {r['check']:{width}}  {r['finding']}" for r in results]
    failed = [r for r in results if r["status"] not in checks.OK]
    verdict = f"{environment}: {len(results) - len(failed)} of {len(results)} checks passed"
    return "\n".join([*lines, "", verdict])


def default_session() -> Any:
    """Your credentials, with AWS_REGION first as the AWS SDKs and CLI v2 read it; botocore itself reads only
    AWS_DEFAULT_REGION and the profile's region."""
    return boto3.Session(region_name=os.environ.get("AWS_REGION") or None)


def main(argv: list[str] | None = None, session: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--environment", required=True, help="an environment of cdk.json, e.g. dev")
    parser.add_argument("--stack", help="the Orchestration stack's name (default: <environment>-Orchestration)")
    args = parser.parse_args(argv)
    session = session or default_session()
    stack_name = args.stack or f"{args.environment}-Orchestration"
    try:
        settings = read_settings(session.client("cloudformation"), stack_name)
        clients = checks.Clients(
            s3=session.client("s3"),
            ecr=session.client("ecr"),
            sagemaker=session.client("sagemaker"),
            scheduler=session.client("scheduler"),
        )
        results = checks.run_all_resource_checks(settings, clients)
    except UnreadableEnvironment as error:
        print(f"validate: {error}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as error:
        print(f"validate: {error}; configure AWS credentials and region for the environment's account", file=sys.stderr)
        return 2
    print(render(args.environment, results))
    return 0 if all(r["status"] in checks.OK for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
