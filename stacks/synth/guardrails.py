"""Enterprise guardrails across a whole stage: a permissions boundary on every role, every function in the VPC."""

from __future__ import annotations

import jsii
from aws_cdk import Annotations, AspectPriority, Aspects, CfnResource, IAspect, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import IConstruct

from lambdas.common.contracts import NetworkConfig
from stacks.constructs.vpc_placement import LAMBDA_VPC_POLICY
from stacks.synth.nag import acknowledge_lambda_vpc_policy


def apply_permissions_boundary(stacks: list[Stack], boundary: str) -> None:
    """`boundary` (a policy ARN, or a policy name of the stack's account) on every IAM role of `stacks`.

    aws-cdk-lib's aspect sets PermissionsBoundary on every AWS::IAM::Role resource, the framework's own roles
    included (Provider framework, log retention, bucket auto-delete): roles that are CfnResources are covered too.
    A name becomes an ARN in each stack's own account, so it is imported per stack.
    """
    for stack in stacks:
        policy = (
            iam.ManagedPolicy.from_managed_policy_arn(stack, "PermissionsBoundary", boundary)
            if boundary.startswith("arn:")
            else iam.ManagedPolicy.from_managed_policy_name(stack, "PermissionsBoundary", boundary)
        )
        iam.PermissionsBoundary.of(stack).apply(policy)


@jsii.implements(IAspect)
class _FunctionsInVpc:
    """Places aws-cdk-lib's own handler functions in the VPC and refuses a function that is outside it.

    The handlers of aws-cdk-lib's custom resource providers (bucket auto-delete) are plain CfnResources with no
    VPC option; the VpcConfig and the VPC access policy of their role are added as overrides. Every other
    function is a lambda_.Function that was given the VPC where it was built; one that was not fails synth.
    """

    def __init__(self, network: NetworkConfig) -> None:
        self.vpc_config = {"SubnetIds": list(network.subnet_ids), "SecurityGroupIds": list(network.security_group_ids)}

    def visit(self, node: IConstruct) -> None:
        if isinstance(node, lambda_.CfnFunction):
            if node.vpc_config is None:
                Annotations.of(node).add_error("runs outside the environment's VPC (network); give it the VpcPlacement")
        elif isinstance(node, CfnResource) and node.cfn_resource_type == "AWS::Lambda::Function":
            role = node.node.scope.node.try_find_child("Role") if node.node.scope else None
            if not isinstance(role, CfnResource) or role.cfn_resource_type != "AWS::IAM::Role":
                Annotations.of(node).add_error("a handler function without its provider's role cannot be placed in the VPC")
                return
            node.add_property_override("VpcConfig", self.vpc_config)
            basic, vpc_access = ("service-role/AWSLambdaBasicExecutionRole", LAMBDA_VPC_POLICY)
            role.add_property_override(
                "ManagedPolicyArns",
                [{"Fn::Sub": f"arn:${{AWS::Partition}}:iam::aws:policy/{name}"} for name in (basic, vpc_access)],
            )
            acknowledge_lambda_vpc_policy(role, "aws-cdk-lib's custom resource handler")


def place_functions_in_vpc(scope: IConstruct, network: NetworkConfig) -> None:
    Aspects.of(scope).add(_FunctionsInVpc(network), priority=AspectPriority.MUTATING)
