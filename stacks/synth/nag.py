"""cdk-nag acknowledgments that name a token-valued resource the way cdk-nag prints it."""

from __future__ import annotations

import json
import weakref
from collections.abc import Sequence
from pathlib import Path

from aws_cdk import Acknowledgment, Stack, Token, Validations
from constructs import IConstruct


def resource_finding(scope: IConstruct, token: str, suffix: str) -> str:
    """`Resource::<Logical.Attr><suffix>` for a GetAtt, the intrinsic's JSON for anything else (a cross-stack output)."""
    resolved = Stack.of(scope).resolve(token)
    if isinstance(resolved, dict) and "Fn::GetAtt" in resolved:
        logical_id, attribute = resolved["Fn::GetAtt"]
        return f"Resource::<{logical_id}.{attribute}>{suffix}"
    return f"Resource::{json.dumps(resolved, separators=(',', ':'))}{suffix}"


def arn_finding(scope: IConstruct, service: str, resource: str) -> str:
    """`Resource::<arn>` of a resource in `scope`'s stack, as cdk-nag prints it.

    An environment-agnostic stack prints <AWS::Partition>, <AWS::Region> and <AWS::AccountId>; a stack with
    an account and region (cdk.json's `account` and `region`) prints them, and its partition, as literals.
    """
    stack = Stack.of(scope)

    def printed(value: str, pseudo: str) -> str:
        return f"<AWS::{pseudo}>" if Token.is_unresolved(value) else value

    partition, region, account = (
        printed(stack.partition, "Partition"),
        printed(stack.region, "Region"),
        printed(stack.account, "AccountId"),
    )
    return f"Resource::arn:{partition}:{service}:{region}:{account}:{resource}"


# The IAM5 reasons acknowledged so far, per app and (policy path, rule): kept here rather than read back from the
# construct's metadata, which costs a jsii round trip per finding (about a tenth of a synth).
_IAM5_REASONS: weakref.WeakKeyDictionary[IConstruct, dict[tuple[str, str], str]] = weakref.WeakKeyDictionary()


def acknowledge_iam5(policy: IConstruct, findings: dict[str, str]) -> None:
    """Acknowledge AwsSolutions-IAM5 findings (finding -> reason) on one policy.

    A finding several grants share (Resource::* of two grants on one role) keeps every grant's reason: the
    acknowledgment written last, which synth uses, carries all of them.
    """
    reasons = _IAM5_REASONS.setdefault(policy.node.root, {})
    path = policy.node.path
    for finding, reason in findings.items():
        rule = f"AwsSolutions-IAM5[{finding}]"
        earlier = reasons.get((path, rule))
        if earlier and reason in earlier:
            continue
        combined = f"{earlier} {reason}" if earlier else reason
        reasons[(path, rule)] = combined
        Validations.of(policy).acknowledge(Acknowledgment(id=rule, reason=combined))


LAMBDA_VPC_POLICY_FINDING = (
    "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]"
)


def acknowledge_lambda_vpc_policy(scope: IConstruct, whose: str) -> None:
    """AWSLambdaVPCAccessExecutionRole on a VPC function's role: Lambda's documented network-interface permissions."""
    Validations.of(scope).acknowledge(
        Acknowledgment(
            id=LAMBDA_VPC_POLICY_FINDING,
            reason=f"{whose} runs in the environment's VPC; Lambda creates and deletes its network interfaces with the "
            "permissions of this AWS managed policy (Lambda Developer Guide, VPC access), of which "
            "ec2:DescribeNetworkInterfaces works only on all resources.",
        )
    )


def acknowledge_provider_functions(
    provider: IConstruct, framework_functions: tuple[str, ...], handlers: list[str], invoked: str, in_vpc: bool = False
) -> None:
    """The CDK Provider framework's own functions: its managed logging policy, its runtime, and invoking `handlers`.

    `framework_functions` names the framework's children ("framework-onEvent", ...); `handlers` are the
    ARNs (tokens) of the functions they invoke, `invoked` what those are, for the reason. `in_vpc`: the
    framework gave their roles the VPC access policy too.
    """
    for child in framework_functions:
        framework = provider.node.find_child(child)
        if in_vpc:
            acknowledge_lambda_vpc_policy(framework, "The CDK Provider framework's function")
        Validations.of(framework).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
                reason="The CDK Provider framework's own functions log with the AWS-managed basic execution policy.",
            ),
            Acknowledgment(id="AwsSolutions-L1", reason="The CDK Provider framework chooses its own Node.js runtime."),
        )
        acknowledge_compliance(
            framework,
            "LambdaDLQ",
            "aws-cdk-lib's Provider framework function, invoked by CloudFormation and its own waiter, which fail the "
            "custom resource with the error; a dead-letter queue holds only failed asynchronous invocations.",
        )
        acknowledge_iam5(
            framework.node.find_child("ServiceRole").node.find_child("DefaultPolicy"),
            {
                resource_finding(provider, arn, ":*"): f"The Provider framework invokes the {invoked}'s versions and aliases."
                for arn in handlers
            },
        )


def unacknowledged_findings(outdir: Path) -> list[str]:
    """'<rule> <construct path>: <description>' for every finding of the synth's validation report.

    Synth fails on any of them: cdk-nag's rules run as policy-validation plugins, and the CDK CLI asks the app
    not to fail itself (context @aws-cdk/core:failSynthOnValidationErrors false), then reports only the
    stacks it selected, which are none of a staged app's. So the app reads the report and fails on it.
    """
    report = outdir / "validation-report.json"
    if not report.is_file():
        return []
    findings = []
    for plugin in json.loads(report.read_text())["pluginReports"]:
        for violation in plugin["violations"]:
            description = violation.get("description", "").strip().splitlines()[0] if violation.get("description") else ""
            findings += [f"{violation['ruleName']} {c['constructPath']}: {description}" for c in violation["violatingConstructs"]]
    return sorted(findings)


# The compliance packs that run beside AwsSolutions on every synth; their rules share names across packs.
COMPLIANCE_PACKS = ("NIST.800.53.R5", "HIPAA.Security")


def acknowledge_compliance(scope: IConstruct, rule: str, reason: str) -> None:
    """Acknowledge one rule of both compliance packs (e.g. "LambdaDLQ") on `scope` and what it holds."""
    for pack in COMPLIANCE_PACKS:
        Validations.of(scope).acknowledge(Acknowledgment(id=f"{pack}-{rule}", reason=reason))


# Rules every stack of a stage answers the same way, acknowledged once per stack.
STAGE_WIDE = {
    "IAMNoInlinePolicy": "Each role's statements are written by aws-cdk-lib's grant methods into a policy attached to that "
    "one role and scoped to its resources; managed policies would share them between roles. The roles' calls are "
    "evaluated against them in tests/test_rehearsal.py and tests/test_strict_aws.py.",
    "LambdaConcurrency": "New accounts have a Lambda concurrency quota of 10, which reserved concurrency for these "
    "functions would exhaust; SageMaker serializes what the deployer changes, and the other functions run once per "
    "deploy, pipeline step or schedule.",
    "LambdaInsideVPC": "The functions call only AWS APIs, over TLS and as their own roles, and hold no network "
    "listener; without a VPC in the environment's configuration they run in Lambda's managed network.",
}


def acknowledge_stage_wide(stacks: Sequence[IConstruct], in_vpc: bool = False) -> None:
    """In an environment with a VPC every function runs in it, so LambdaInsideVPC is met, not acknowledged."""
    for stack in stacks:
        for rule, reason in STAGE_WIDE.items():
            if not (in_vpc and rule == "LambdaInsideVPC"):
                acknowledge_compliance(stack, rule, reason)
