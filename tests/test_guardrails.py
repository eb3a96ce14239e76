"""Enterprise guardrails: a permissions boundary on every role, and every function, build and job in the VPC.

One synth of the whole app with a `network` block and a `permissions_boundary` in every environment (dev by policy
name, prod by ARN), shared by this module's tests; the shipped cdk.json (the session's synth) has neither.
The app's cdk-nag gate runs on it like on every synth.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from aws_cdk import App, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Annotations, Match
from aws_strict import Assembly
from conftest import cdk_context, synthesize, template_deployer_settings, template_pipeline_settings

from lambdas.common.contracts import NetworkConfig
from stacks.synth.guardrails import place_functions_in_vpc
from stacks.synth.nag import unacknowledged_findings

VPC = "vpc-0123456789abcdef0"
SUBNETS = ["subnet-0123456789abcdef0", "subnet-0fedcba9876543210"]
GROUPS = ["sg-0123456789abcdef0", "sg-00000000"]
BOUNDARIES = {"dev": "team-boundary", "prod": "arn:aws:iam::123456789012:policy/boundaries/team-boundary"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    context = cdk_context()
    for name, environment in context["mlops"]["environments"].items():
        environment["network"] = {"vpc_id": VPC, "subnet_ids": SUBNETS, "security_group_ids": GROUPS}
        environment["permissions_boundary"] = BOUNDARIES[name]
    return synthesize(context, tmp_path_factory.mktemp("guarded.out"))


def _templates(outdir: Path) -> dict[str, dict]:
    return {str(p.relative_to(outdir)): json.loads(p.read_text()) for p in sorted(outdir.glob("assembly-*/*.template.json"))}


def _resources(outdir: Path, kind: str) -> list[tuple[str, str, dict]]:
    return [
        (name, logical_id, resource.get("Properties", {}))
        for name, template in _templates(outdir).items()
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == kind
    ]


def _boundary_arn(environment: str) -> object:
    if environment == "prod":
        return BOUNDARIES["prod"]
    return {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":policy/team-boundary"]]}


def test_the_guarded_synth_has_no_unacknowledged_compliance_finding(guarded):
    """AwsSolutions, NIST 800-53 rev. 5 and HIPAA Security, as `make synth` fails on them."""
    assert unacknowledged_findings(guarded.outdir) == []


def test_every_role_of_every_stack_carries_the_boundary_and_none_without_it(guarded, synthesized):
    roles = _resources(guarded.outdir, "AWS::IAM::Role")
    # The framework's own roles are among them: Provider framework, waiter, bucket auto-delete (a CfnResource).
    assert len(roles) > 25 and any("AutoDeleteObjects" in logical_id for _, logical_id, _ in roles)
    for template, logical_id, properties in roles:
        environment = template.split("/")[0].removeprefix("assembly-")
        assert properties.get("PermissionsBoundary") == _boundary_arn(environment), (template, logical_id)
    assert all("PermissionsBoundary" not in p for _, _, p in _resources(synthesized.outdir, "AWS::IAM::Role"))


def test_every_function_and_the_image_build_run_in_the_subnets(guarded, synthesized):
    functions = _resources(guarded.outdir, "AWS::Lambda::Function")
    framework = [f for f in functions if "AWS CDK resource provider framework" in str(f[2].get("Description"))]
    assert len(functions) > 20 and len(framework) == 8 and any("AutoDeleteObjects" in f[1] for f in functions)
    for template, logical_id, properties in functions:
        config = properties.get("VpcConfig")
        assert config == {"SubnetIds": SUBNETS, "SecurityGroupIds": GROUPS}, (template, logical_id)
    builds = _resources(guarded.outdir, "AWS::CodeBuild::Project")
    assert len(builds) == 2
    assert all(p["VpcConfig"] == {"VpcId": VPC, "Subnets": SUBNETS, "SecurityGroupIds": GROUPS} for _, _, p in builds)
    # Nothing here creates a security group or a rule on the user's groups.
    assert not _resources(guarded.outdir, "AWS::EC2::SecurityGroup")
    assert not _resources(guarded.outdir, "AWS::EC2::SecurityGroupIngress")
    assert not _resources(guarded.outdir, "AWS::EC2::SecurityGroupEgress")
    without = _resources(synthesized.outdir, "AWS::Lambda::Function") + _resources(synthesized.outdir, "AWS::CodeBuild::Project")
    assert all("VpcConfig" not in p for _, _, p in without)


def _policies_of(outdir: Path, role_description: str) -> list[dict]:
    """Every statement of the role described so, from its inline policies and the policies attached to it."""
    templates = _templates(outdir)
    statements = []
    for name, template in templates.items():
        if not name.startswith("assembly-dev/"):
            continue
        resources = template["Resources"]
        roles = [
            lid
            for lid, r in resources.items()
            if r["Type"] == "AWS::IAM::Role" and str(r["Properties"].get("Description", "")).startswith(role_description)
        ]
        for resource in resources.values():
            if resource["Type"] == "AWS::IAM::Policy" and any({"Ref": role} in resource["Properties"]["Roles"] for role in roles):
                statements += resource["Properties"]["PolicyDocument"]["Statement"]
    assert statements, role_description
    return statements


def _actions(statement: dict) -> list[str]:
    return statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]


@pytest.mark.parametrize("role", ["SageMaker processing, training and transform jobs", "Model Monitor's data-quality jobs"])
def test_sagemaker_roles_manage_interfaces_in_the_subnets_only(guarded, synthesized, role):
    """The SageMaker Developer Guide's list ("Give SageMaker Access to Resources in your Amazon VPC"), scoped."""
    statements = _policies_of(guarded.outdir, role)
    granted = {a for s in statements for a in _actions(s) if a.startswith("ec2:")}
    assert granted == {
        "ec2:CreateNetworkInterface",
        "ec2:CreateNetworkInterfacePermission",
        "ec2:DeleteNetworkInterface",
        "ec2:DeleteNetworkInterfacePermission",
        "ec2:DescribeNetworkInterfaces",
        "ec2:DescribeVpcs",
        "ec2:DescribeDhcpOptions",
        "ec2:DescribeSubnets",
        "ec2:DescribeSecurityGroups",
    }
    for statement in statements:
        if "ec2:CreateNetworkInterface" in _actions(statement):
            resources = json.dumps(statement["Resource"])
            assert all(s in resources for s in SUBNETS) and all(g in resources for g in GROUPS) and '"*"' not in resources
        elif any(a.startswith("ec2:") and not a.startswith("ec2:Describe") for a in _actions(statement)):
            assert json.dumps(statement["Condition"]["ArnEquals"]["ec2:Subnet"]).count("subnet/subnet-") == len(SUBNETS)
    assert not any(a.startswith("ec2:") for s in _policies_of(synthesized.outdir, role) for a in _actions(s))


def test_the_pipeline_execution_role_starts_only_jobs_in_the_subnets(guarded):
    """sagemaker:VpcSubnets and VpcSecurityGroupIds are required and limited to the configuration's (IAM condition keys)."""
    statements = _policies_of(guarded.outdir, "SageMaker Pipelines executions")
    creating = {
        a: s for s in statements for a in _actions(s) if a.startswith("sagemaker:Create") and a != "sagemaker:CreateModelPackage"
    }
    in_vpc = {
        "sagemaker:CreateProcessingJob",
        "sagemaker:CreateTrainingJob",
        "sagemaker:CreateHyperParameterTuningJob",
        "sagemaker:CreateModel",
    }
    assert in_vpc <= set(creating)
    for action in in_vpc:
        condition = creating[action]["Condition"]
        assert condition["ForAllValues:StringEquals"] == {
            "sagemaker:VpcSubnets": SUBNETS,
            "sagemaker:VpcSecurityGroupIds": GROUPS,
        }
        assert condition["Null"] == {"sagemaker:VpcSubnets": "false", "sagemaker:VpcSecurityGroupIds": "false"}
    deployer = _policies_of(guarded.outdir, "Endpoint deployer")
    for statement in deployer:
        if {"sagemaker:CreateModel", "sagemaker:CreateDataQualityJobDefinition"} & set(_actions(statement)):
            assert statement["Condition"]["ForAllValues:StringEquals"]["sagemaker:VpcSubnets"] == SUBNETS


def test_the_network_reaches_the_register_function_and_the_deployer(guarded):
    assembly = Assembly(guarded.outdir / "assembly-dev")
    expected = {"vpc_id": VPC, "subnet_ids": SUBNETS, "security_group_ids": GROUPS}
    for settings in (template_pipeline_settings(assembly), template_deployer_settings(assembly)):
        assert settings.network is not None and settings.network.to_dict() == expected


def test_lambda_inside_vpc_is_met_not_acknowledged(guarded):
    """Without a network the stage acknowledges NIST/HIPAA LambdaInsideVPC; with one, every function satisfies it."""
    for stage in guarded.stages.values():
        for stack in (stage.storage, stage.pipelines, stage.orchestration):
            acknowledged = [
                rule
                for entry in stack.node.metadata
                if entry.type == "aws:cdk:acknowledged-rules" and isinstance(entry.data, dict)
                for rule in entry.data
            ]
            assert acknowledged and not [rule for rule in acknowledged if "LambdaInsideVPC" in rule], stack.node.path


def test_a_function_built_without_the_vpc_fails_synth():
    app = App()
    stack = Stack(app, "Bare")
    lambda_.Function(
        stack,
        "Outside",
        runtime=lambda_.Runtime.PYTHON_3_13,
        handler="index.handler",
        code=lambda_.Code.from_inline("def handler(event, context): pass"),
        role=iam.Role(stack, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com")),
    )
    place_functions_in_vpc(app, NetworkConfig(vpc_id=VPC, subnet_ids=tuple(SUBNETS), security_group_ids=tuple(GROUPS)))
    app.synth()
    Annotations.from_stack(stack).has_error("/Bare/Outside/Resource", Match.string_like_regexp("outside the environment's VPC"))
