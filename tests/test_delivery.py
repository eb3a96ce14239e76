"""The optional delivery pipeline: its stages with a `delivery` block, nothing without one, clear errors for bad blocks."""

from __future__ import annotations

import copy
import json
import re

import pytest
from aws_strict import REGION, Assembly, allowed
from conftest import NONPRODUCTION, NONPRODUCTION_NAMES, PRODUCTION, REPO_ROOT, UNKNOWN_ENVIRONMENT, reference_context, synthesize

from stacks.delivery import SYNTH_COMMANDS
from stacks.synth.config import ConfigError, load_config

PIPELINE_ACCOUNT, DEV_ACCOUNT, PROD_ACCOUNT = "333333333333", "111111111111", "222222222222"
CONNECTION = f"arn:aws:codeconnections:eu-west-1:{PIPELINE_ACCOUNT}:connection/0a1b2c3d-1111-2222-3333-444455556666"
DELIVERY = {
    "account": PIPELINE_ACCOUNT,
    "region": "eu-west-1",
    "connection_arn": CONNECTION,
    "repository": "my-org/abalone-mlops",
    "branch": "main",
    "environments": [NONPRODUCTION, PRODUCTION],
}


def delivered_context(delivery: dict | None = None) -> dict:
    context = reference_context()
    environments = context["mlops"]["environments"]
    environments[NONPRODUCTION].update(account=DEV_ACCOUNT, region="eu-west-1")
    environments[PRODUCTION].update(account=PROD_ACCOUNT, region="eu-west-1")
    context["mlops"]["delivery"] = copy.deepcopy(DELIVERY if delivery is None else delivery)
    return context


@pytest.fixture(scope="module")
def delivered(tmp_path_factory):
    outdir = tmp_path_factory.mktemp("delivered")
    synthesize(delivered_context(), outdir)
    return outdir


def _pipeline_stages(outdir) -> list[dict]:
    template = json.loads((outdir / "Delivery.template.json").read_text())
    (pipeline,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CodePipeline::Pipeline"]
    return pipeline["Properties"]["Stages"]


def test_the_pipeline_deploys_dev_tests_it_waits_for_approval_then_deploys_prod(delivered):
    stages = {s["Name"]: s["Actions"] for s in _pipeline_stages(delivered)}
    assert list(stages) == ["Source", "Build", "UpdatePipeline", "Assets", NONPRODUCTION, PRODUCTION]
    (source,) = stages["Source"]
    assert source["ActionTypeId"]["Provider"] == "CodeStarSourceConnection"
    assert (source["Configuration"]["ConnectionArn"], source["Configuration"]["BranchName"]) == (CONNECTION, "main")

    def ordered(actions: list[dict]) -> list[tuple[str, str]]:
        return [(a["Name"], a["ActionTypeId"]["Provider"]) for a in sorted(actions, key=lambda a: a["RunOrder"])]

    dev, prod = ordered(stages[NONPRODUCTION]), ordered(stages[PRODUCTION])
    assert dev[-1] == (f"SystemTest-{NONPRODUCTION}", "StepFunctions") and all(p == "CloudFormation" for _, p in dev[:-1])
    assert prod[0] == (f"Approve-{PRODUCTION}", "Manual") and all(p == "CloudFormation" for _, p in prod[1:])
    assert not [name for name, _ in prod if name.startswith("SystemTest")], "production is approved, not system-tested"
    (test,) = [a for a in stages[NONPRODUCTION] if a["Name"] == f"SystemTest-{NONPRODUCTION}"]
    assert test["Configuration"]["StateMachineArn"] == (
        f"arn:aws:states:eu-west-1:{DEV_ACCOUNT}:stateMachine:{NONPRODUCTION_NAMES.system_test}"
    )
    assert test["RoleArn"] == f"arn:aws:iam::{DEV_ACCOUNT}:role/{NONPRODUCTION_NAMES.system_test_invoker}"


def test_the_synth_step_runs_the_readmes_test_and_synth_commands(delivered):
    readme = (REPO_ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    documented = [re.sub(r"\s+#.*", "", line).strip() for line in quick_start.strip().splitlines()]
    assert sorted(documented) == sorted(SYNTH_COMMANDS)
    template = json.loads((delivered / "Delivery.template.json").read_text())
    specs = [
        json.loads(r["Properties"]["Source"]["BuildSpec"])
        for r in template["Resources"].values()
        if r["Type"] == "AWS::CodeBuild::Project" and "make" in r["Properties"]["Source"].get("BuildSpec", "")
    ]
    (spec,) = specs
    assert spec["phases"]["build"]["commands"] == list(SYNTH_COMMANDS)
    assert spec["artifacts"]["base-directory"] == "cdk.out"


def test_only_the_tested_environment_trusts_the_pipeline_account(delivered):
    def invoker(environment: str) -> list[dict]:
        (template,) = (delivered / f"assembly-{environment}").glob("*Orchestration*.template.json")
        resources = json.loads(template.read_text())["Resources"].values()
        return [r for r in resources if r["Type"] == "AWS::IAM::Role" and "system-test-invoker" in json.dumps(r)]

    (role,) = invoker(NONPRODUCTION)
    (statement,) = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert PIPELINE_ACCOUNT in json.dumps(statement["Principal"])
    assert invoker(PRODUCTION) == []


def test_without_a_delivery_block_there_is_no_pipeline_and_no_invoker(synthesized):
    assert not (synthesized.outdir / "Delivery.template.json").exists()
    for template in synthesized.outdir.glob("assembly-*/*.template.json"):
        assert "system-test-invoker" not in template.read_text()


BAD_BLOCKS = [
    (
        {"environments": [NONPRODUCTION, UNKNOWN_ENVIRONMENT]},
        f"'mlops.delivery.environments' = {UNKNOWN_ENVIRONMENT!r} is invalid: is not an environment",
    ),
    (
        {"environments": [NONPRODUCTION, NONPRODUCTION]},
        f"'mlops.delivery.environments' = {NONPRODUCTION!r} is invalid: is listed twice",
    ),
    ({"environments": []}, "'mlops.delivery.environments' = [] is invalid: must be a list of environment names"),
    (
        {"environments": [PRODUCTION, NONPRODUCTION]},
        f"is invalid: production environment {PRODUCTION!r} must follow a non-production one, whose system test gates it",
    ),
    (
        {"connection_arn": "arn:aws:codecommit:eu-west-1:333333333333:abalone"},
        "must be the ARN of a CodeStar connection to GitHub, GitLab or Bitbucket",
    ),
    ({"repository": "abalone-mlops"}, "'mlops.delivery.repository' = 'abalone-mlops' is invalid: must be 'owner/repository'"),
    ({"branch": "-main"}, "'mlops.delivery.branch' = '-main' is invalid: must be a branch name"),
    ({"account": "3333"}, "'mlops.delivery.account' = '3333' is invalid: must be the 12-digit account id"),
    ({"source": "codecommit"}, "'mlops.delivery.source' = 'codecommit' is invalid: unknown key"),
]


@pytest.mark.parametrize("change, message", BAD_BLOCKS, ids=[m[:40] for _, m in BAD_BLOCKS])
def test_a_bad_delivery_block_is_named(change, message):
    context = delivered_context({**DELIVERY, **change})
    with pytest.raises(ConfigError) as error:
        load_config(context["mlops"])
    assert message in str(error.value)


def test_a_delivered_environment_needs_its_account_and_region():
    context = delivered_context()
    del context["mlops"]["environments"][PRODUCTION]["account"], context["mlops"]["environments"][PRODUCTION]["region"]
    with pytest.raises(ConfigError) as error:
        load_config(context["mlops"])
    assert str(error.value) == (
        f"cdk.json context 'mlops.environments.{PRODUCTION}.account' = None is invalid: "
        "the delivery pipeline deploys only to environments with account and region"
    )


def test_the_pipelines_acknowledgments_are_narrow_and_explained(delivered):
    """CDK Pipelines' own findings, each acknowledged by itself with a reason, as the environments' are."""
    metadata = json.loads((delivered / "Delivery.metadata.json").read_text())
    acknowledged = [
        (rule, reason)
        for entries in metadata.values()
        for entry in entries
        if entry["type"] == "aws:cdk:acknowledged-rules"
        for rule, reason in entry["data"].items()
    ]
    assert {rule for rule, _ in acknowledged} >= {"Annotation::AwsSolutions-S1", "Annotation::AwsSolutions-IAM5[Resource::*]"}
    for rule, reason in acknowledged:
        assert re.fullmatch(
            r"Annotation::(AwsSolutions-(S1|IAM5\[(Resource|Action)::\S+\])|(NIST\.800\.53\.R5|HIPAA\.Security)-(IAMNoInlinePolicy"
            r"|CodeBuildProjectSourceRepoUrl|S3BucketLoggingEnabled|S3BucketReplicationEnabled|S3BucketVersioningEnabled))",
            rule,
        ), rule
        assert len(reason) >= 40 and reason.endswith("."), (rule, reason)


def test_the_source_action_may_use_a_codeconnections_connection(delivered):
    """A connection's ARN names its service; IAM matches UseConnection's prefix against it."""
    assembly = Assembly(delivered)
    ((stack, logical_id),) = [
        (s, i) for s, i, _ in assembly.resources("AWS::IAM::Role") if "Source" in i and "CodePipelineActionRole" in i
    ]
    statements = assembly.role_statements(stack, logical_id)
    assert allowed(statements, "codeconnections:UseConnection", CONNECTION)


def test_the_system_test_invoker_may_do_what_the_step_functions_action_does(delivered):
    assembly = Assembly(delivered / f"assembly-{NONPRODUCTION}")
    ((stack, logical_id),) = [(s, i) for s, i, r in assembly.resources("AWS::IAM::Role") if "InvokerRole" in i]
    statements = assembly.role_statements(stack, logical_id)
    machine = f"arn:aws:states:{REGION}:{DEV_ACCOUNT}:stateMachine:{NONPRODUCTION_NAMES.system_test}"
    execution = f"arn:aws:states:{REGION}:{DEV_ACCOUNT}:execution:{NONPRODUCTION_NAMES.system_test}:delivery-1"
    for action, resource in (
        ("states:DescribeStateMachine", machine),
        ("states:StartExecution", machine),
        ("states:DescribeExecution", execution),
    ):
        assert allowed(statements, action, resource), action
