"""The environment's Model Registry group, and the grants on its packages that the platform's roles take."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_iam as iam
from aws_cdk import aws_sagemaker as sagemaker
from constructs import Construct

from stacks.synth.arns import sagemaker_arn
from stacks.synth.logical_ids import keep_logical_id
from stacks.synth.nag import acknowledge_iam5, arn_finding


class ModelPackageGroup(Construct):
    """`name` is the group's; each grant adds one statement to the grantee's policy and acknowledges its wildcards there."""

    def __init__(
        self, scope: Construct, construct_id: str, *, name: str, description: str, removal_policy: RemovalPolicy
    ) -> None:
        super().__init__(scope, construct_id)
        self.name = name
        self.resource = sagemaker.CfnModelPackageGroup(
            self, "Resource", model_package_group_name=name, model_package_group_description=description
        )
        self.resource.apply_removal_policy(removal_policy)
        keep_logical_id(self.resource, "ModelPackageGroup")

    def _grant(self, grantee: iam.IRole, actions: list[str], resources: list[str]) -> None:
        grantee.add_to_principal_policy(iam.PolicyStatement(actions=actions, resources=resources))

    def _acknowledge(self, grantee: iam.IRole, reasons: dict[str, str]) -> None:
        policy = grantee.node.find_child("DefaultPolicy")
        acknowledge_iam5(policy, reasons)

    def grant_read_packages(self, grantee: iam.IRole) -> None:
        """Find the latest approved package and describe any version of this group."""
        self._grant(grantee, ["sagemaker:DescribeModelPackage"], [sagemaker_arn(grantee, "model-package", f"{self.name}/*")])
        self._grant(grantee, ["sagemaker:ListModelPackages"], ["*"])
        self._acknowledge(
            grantee,
            {
                arn_finding(grantee, "sagemaker", f"model-package/{self.name}/*"): "Versions of this environment's one model "
                "package group, numbered by SageMaker on registration.",
                "Resource::*": "sagemaker:ListModelPackages supports no resource-level permissions for a request that names "
                "a group.",
            },
        )

    def grant_describe_group(self, grantee: iam.IRole) -> None:
        self._grant(grantee, ["sagemaker:DescribeModelPackageGroup"], [sagemaker_arn(grantee, "model-package-group", self.name)])

    def grant_register(self, grantee: iam.IRole) -> None:
        """Register new versions (with their tags) into this group: the training pipeline's execution role alone."""
        self._grant(
            grantee,
            [
                "sagemaker:CreateModelPackage",
                "sagemaker:DescribeModelPackage",
                "sagemaker:DescribeModelPackageGroup",
                "sagemaker:AddTags",
            ],
            [sagemaker_arn(grantee, "model-package-group", self.name), sagemaker_arn(grantee, "model-package", f"{self.name}/*")],
        )
        self._acknowledge(
            grantee,
            {
                arn_finding(grantee, "sagemaker", f"model-package/{self.name}/*"): "Versions inside this environment's one "
                "model package group, numbered by SageMaker on registration.",
            },
        )
