"""The environment's existing VPC, imported by id (no lookup: synth stays offline), and what running in it takes."""

from __future__ import annotations

from aws_cdk import Annotations, Fn, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from constructs import Construct

from lambdas.common.contracts import NetworkConfig
from stacks.synth.nag import acknowledge_iam5, acknowledge_lambda_vpc_policy, arn_finding

# Lambda creates and deletes the functions' network interfaces with the execution role (Lambda Developer Guide,
# "Giving Lambda functions access to resources in an Amazon VPC"); this AWS managed policy holds exactly those
# permissions, and aws-cdk-lib attaches it to the roles it creates for VPC functions (the Provider framework's).
LAMBDA_VPC_POLICY = "service-role/AWSLambdaVPCAccessExecutionRole"
# What SageMaker does with a job's or model's role to place it in a VPC ("Give SageMaker Access to Resources in
# your Amazon VPC", SageMaker Developer Guide). The Describe actions support no resource-level permissions.
SAGEMAKER_ENI_DESCRIBE = (
    "ec2:DescribeNetworkInterfaces",
    "ec2:DescribeVpcs",
    "ec2:DescribeDhcpOptions",
    "ec2:DescribeSubnets",
    "ec2:DescribeSecurityGroups",
)
SAGEMAKER_ENI_MANAGE = (
    "ec2:CreateNetworkInterface",
    "ec2:CreateNetworkInterfacePermission",
    "ec2:DeleteNetworkInterface",
    "ec2:DeleteNetworkInterfacePermission",
)


class VpcPlacement(Construct):
    """`network`'s VPC, subnets and security groups in one stack, for functions, builds and SageMaker's roles."""

    def __init__(self, scope: Construct, construct_id: str, *, network: NetworkConfig) -> None:
        super().__init__(scope, construct_id)
        self.network = network
        self.subnets = [ec2.Subnet.from_subnet_id(self, f"Subnet{i}", subnet) for i, subnet in enumerate(network.subnet_ids)]
        for subnet in self.subnets:
            Annotations.of(subnet).acknowledge_warning(
                "@aws-cdk/aws-ec2:noSubnetRouteTableId",
                "Nothing here reads the subnets' route tables: the functions, build and jobs only run in them.",
            )
        # The attributes require availability zones, which only selecting subnets by type reads; these are selected by
        # id, so a token that is never rendered stands in (a real list would be a lookup in a pinned stack).
        self.vpc = ec2.Vpc.from_vpc_attributes(
            self, "Vpc", vpc_id=network.vpc_id, availability_zones=[Fn.select(0, Fn.get_azs())]
        )
        # Immutable: the groups are the user's, and nothing here adds rules to them.
        self.security_groups = [
            ec2.SecurityGroup.from_security_group_id(self, f"SecurityGroup{i}", group, mutable=False)
            for i, group in enumerate(network.security_group_ids)
        ]
        self._lambda_roles: set[str] = set()

    @property
    def subnet_selection(self) -> ec2.SubnetSelection:
        return ec2.SubnetSelection(subnets=self.subnets)

    def function_options(self) -> dict:
        """lambda_.Function's (and the Provider framework's) arguments that place a function in the subnets."""
        return {"vpc": self.vpc, "vpc_subnets": self.subnet_selection, "security_groups": self.security_groups}

    def grant_lambda_network_interfaces(self, role: iam.IRole) -> None:
        """A role we create for a function: aws-cdk-lib attaches the VPC policy only to the roles it creates itself."""
        if role.node.path in self._lambda_roles:
            return
        self._lambda_roles.add(role.node.path)
        role.add_managed_policy(iam.ManagedPolicy.from_aws_managed_policy_name(LAMBDA_VPC_POLICY))
        acknowledge_lambda_vpc_policy(role, "Each function of this role")

    def grant_sagemaker_network_interfaces(self, role: iam.IRole) -> None:
        """The role of SageMaker jobs and models: interfaces in these subnets and groups only, describing anything."""
        stack = Stack.of(self)

        def ec2_arn(resource: str, name: str) -> str:
            return stack.format_arn(service="ec2", resource=resource, resource_name=name)

        role.add_to_principal_policy(iam.PolicyStatement(actions=list(SAGEMAKER_ENI_DESCRIBE), resources=["*"]))
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ec2:CreateNetworkInterface"],
                resources=[
                    ec2_arn("network-interface", "*"),
                    *(ec2_arn("subnet", subnet) for subnet in self.network.subnet_ids),
                    *(ec2_arn("security-group", group) for group in self.network.security_group_ids),
                ],
            )
        )
        # The interfaces SageMaker creates are named at run time; their subnet scopes them (ec2:Subnet).
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=[a for a in SAGEMAKER_ENI_MANAGE if a != "ec2:CreateNetworkInterface"],
                resources=[ec2_arn("network-interface", "*")],
                conditions={"ArnEquals": {"ec2:Subnet": [ec2_arn("subnet", subnet) for subnet in self.network.subnet_ids]}},
            )
        )
        acknowledge_iam5(
            role.node.find_child("DefaultPolicy"),
            {
                "Resource::*": "The EC2 Describe actions SageMaker places a job in the VPC with support no resource-level "
                "permissions.",
                arn_finding(self, "ec2", "network-interface/*"): "SageMaker names the network interfaces of jobs and "
                "models when it creates them; limited to the environment's subnets.",
            },
        )
