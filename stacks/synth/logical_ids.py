"""Logical ids that outlive refactoring: a resource that holds state or a name keeps the id it was deployed with.

CloudFormation treats a new logical id as a new resource: it creates one, then deletes the old one.
For a key, queue or topic that loses data or subscriptions; for a resource with a fixed name (an alarm)
the delete removes what the create just wrote. So when such a resource moves into a construct, it
keeps its id.
"""

from __future__ import annotations

from aws_cdk import CfnResource
from constructs import IConstruct


def keep_logical_id(resource: IConstruct, logical_id: str) -> None:
    """Pin the CloudFormation logical id of `resource` (an L2 construct or its L1) to `logical_id`."""
    cfn = resource if isinstance(resource, CfnResource) else resource.node.default_child
    if not isinstance(cfn, CfnResource):
        raise TypeError(f"{resource.node.path} has no CloudFormation resource to pin")
    cfn.override_logical_id(logical_id)
