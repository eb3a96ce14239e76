"""The environment's log groups: named under one prefix, encrypted with the environment's logs key, kept as configured."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import ArnFormat, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_logs as logs
from constructs import Construct

RETENTION = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    2192: "SIX_YEARS",
    2557: "SEVEN_YEARS",
    2922: "EIGHT_YEARS",
    3288: "NINE_YEARS",
    3653: "TEN_YEARS",
}
# Step Functions' log groups go under /aws/vendedlogs/: each other group a state machine logs to grows the account's
# one CloudWatch Logs resource policy, limited to 5,120 characters (Step Functions Developer Guide, "Best practices").
VENDED_STATES = "/aws/vendedlogs/states/"


def retention(days: int) -> logs.RetentionDays:
    return getattr(logs.RetentionDays, RETENTION[days])


@dataclass(frozen=True)
class LogGroups:
    """`create` makes a log group of this environment; `key` is the one that may encrypt them (`grant_logs`)."""

    key: kms.IKey
    # "/<project>/<environment>": every function's and framework's group is named under it.
    prefix: str
    retention_days: int
    removal_policy: RemovalPolicy

    @property
    def vended_prefix(self) -> str:
        return f"{VENDED_STATES}{self.prefix.strip('/').replace('/', '-')}-"

    def name(self, purpose: str, state_machine: bool = False) -> str:
        return f"{self.vended_prefix}{purpose}" if state_machine else f"{self.prefix}/{purpose}"

    def create(self, scope: Construct, construct_id: str, purpose: str, state_machine: bool = False) -> logs.LogGroup:
        return logs.LogGroup(
            scope,
            construct_id,
            log_group_name=self.name(purpose, state_machine),
            encryption_key=self.key,
            retention=retention(self.retention_days),
            removal_policy=self.removal_policy,
        )


def grant_logs(key: kms.Key, prefix: str) -> None:
    """Let CloudWatch Logs use `key` for this environment's log groups only.

    The service principal is the region's, and the log group's ARN is in the encryption context of every
    request ("Encrypt log data in CloudWatch Logs using AWS KMS", CloudWatch Logs User Guide).
    """
    stack = Stack.of(key)
    groups = LogGroups(key=key, prefix=prefix, retention_days=1, removal_policy=RemovalPolicy.DESTROY)
    arns = [
        stack.format_arn(service="logs", resource="log-group", resource_name=pattern, arn_format=ArnFormat.COLON_RESOURCE_NAME)
        for pattern in (f"{prefix}/*", f"{groups.vended_prefix}*")
    ]
    key.add_to_resource_policy(
        iam.PolicyStatement(
            principals=[iam.ServicePrincipal(f"logs.{stack.region}.amazonaws.com")],
            actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"],
            resources=["*"],
            conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn": arns}},
        )
    )
