"""Every service-to-resource delivery of every stage, evaluated against the receiving resource's policy.

A service principal has no identity policy: only the resource's policy (and, for an encrypted resource, its KMS
key's policy) lets CloudWatch, EventBridge or CloudWatch Logs in. Each delivery is evaluated with the request
context the sending service gives AWS: a condition on a key it does not send fails, as on AWS. Where AWS
recommends confused-deputy conditions, the statement that lets the service in must test aws:SourceArn or
aws:SourceAccount; where it documents that the service sends neither (EventBridge to an SNS topic and to the
topic's key), an unconditioned statement is the only one that works.

Deliveries made with a role (Scheduler's dead-letter queue, a function's dead-letter queue) are evaluated
against the role. A delivery of a kind this file does not know fails, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from aws_strict import (
    ACCOUNT,
    PARTITION,
    REGION,
    Assembly,
    allowed,
    confused_deputy_keys,
    resource_policy_allows,
)
from conftest import ENVIRONMENTS

SECURE = {"aws:SecureTransport": "true"}
# What each sending service puts in the request context of a delivery it makes for `source` (an ARN).
CONTEXT = {
    # CloudWatch User Guide, "Preventing confused deputy security issues" (alarm actions to SNS).
    "cloudwatch.amazonaws.com": lambda source: {"aws:SourceArn": source, "aws:SourceAccount": ACCOUNT, **SECURE},
    # EventBridge User Guide, rule dead-letter queues and Lambda targets; for SNS topics and their keys AWS documents
    # that condition blocks cannot be used ("Using resource-based policies for Amazon EventBridge", "Amazon SNS
    # permissions"; SNS Developer Guide, "Enable compatibility between event sources from AWS services and encrypted
    # topics"), so those deliveries carry no source keys here.
    "events.amazonaws.com": lambda source: {"aws:SourceArn": source, "aws:SourceAccount": ACCOUNT, **SECURE},
}
EVENTBRIDGE_TO_SNS = lambda source: dict(SECURE)  # noqa: E731
# The KMS actions a service needs to write to an encrypted topic (SNS Developer Guide, key management).
TOPIC_KEY_ACTIONS = ("kms:Decrypt", "kms:GenerateDataKey")
# CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using AWS KMS".
LOG_KEY_ACTIONS = ("kms:Encrypt", "kms:Decrypt", "kms:ReEncryptFrom", "kms:GenerateDataKey", "kms:DescribeKey")
# aws-cdk-lib's auto-delete-objects provider (a singleton custom resource provider of non-production buckets) offers no
# log group setting; it runs when a bucket is deleted, and Lambda creates its group then.
CDK_OWN_LOGGING = {"index.handler"}


@dataclass
class Stage:
    assembly: Assembly

    def by_arn(self, resource_type: str, arn: str) -> tuple[str, str, dict]:
        for stack, logical_id, resource in self.assembly.resources(resource_type):
            if self.assembly.attribute(stack, logical_id, "Arn") == arn or self.assembly.physical_name(stack, logical_id) == arn:
                return stack, logical_id, resource
        raise AssertionError(f"no {resource_type} {arn} in the stage")

    def topic_policy(self, topic_arn: str) -> dict:
        documents = [
            self.assembly.resolve(s, r["Properties"]["PolicyDocument"])
            for s, _, r in self.assembly.resources("AWS::SNS::TopicPolicy")
            if topic_arn in self.assembly.resolve(s, r["Properties"]["Topics"])
        ]
        return {"Statement": [st for d in documents for st in d["Statement"]]}

    def queue_policy(self, queue_arn: str) -> dict:
        stack, logical_id, _ = self.by_arn("AWS::SQS::Queue", queue_arn)
        url = self.assembly.physical_name(stack, logical_id)
        documents = [
            self.assembly.resolve(s, r["Properties"]["PolicyDocument"])
            for s, _, r in self.assembly.resources("AWS::SQS::QueuePolicy")
            if url in self.assembly.resolve(s, r["Properties"]["Queues"])
        ]
        return {"Statement": [st for d in documents for st in d["Statement"]]}

    def key_policy(self, key_arn: str) -> dict:
        stack, _, key = self.by_arn("AWS::KMS::Key", key_arn)
        return self.assembly.resolve(stack, key["Properties"]["KeyPolicy"])

    def topic_key(self, topic_arn: str) -> str | None:
        stack, _, topic = self.by_arn("AWS::SNS::Topic", topic_arn)
        key = topic["Properties"].get("KmsMasterKeyId")
        return self.assembly.resolve(stack, key) if key else None

    def queue_key(self, queue_arn: str) -> str | None:
        stack, _, queue = self.by_arn("AWS::SQS::Queue", queue_arn)
        key = queue["Properties"].get("KmsMasterKeyId")
        return self.assembly.resolve(stack, key) if key else None

    def role_statements(self, role_arn: str) -> list[dict]:
        return self.assembly.role_statements(*self.assembly.role_logical_id(role_arn))


@pytest.fixture(scope="module", params=ENVIRONMENTS)
def stage(request, assemblies) -> Stage:
    return Stage(assemblies[request.param])


def _deliver(stage: Stage, service: str, action: str, resource: str, policy: dict, context: dict, recommended: bool) -> list[str]:
    statement = resource_policy_allows(policy, service, action, resource, context)
    if statement is None:
        return [f"{service} may not {action} on {resource}"]
    if recommended and not confused_deputy_keys(statement):
        return [f"{service} may {action} on {resource} without an aws:SourceArn or aws:SourceAccount condition"]
    return []


def _to_topic(stage: Stage, service: str, source: str, topic_arn: str, context: dict, recommended: bool) -> list[str]:
    problems = _deliver(stage, service, "sns:Publish", topic_arn, stage.topic_policy(topic_arn), context, recommended)
    key = stage.topic_key(topic_arn)
    if key is None:
        return [*problems, f"topic {topic_arn} is not encrypted with a customer managed key"]
    for action in TOPIC_KEY_ACTIONS:
        problems += _deliver(stage, service, action, key, stage.key_policy(key), context, recommended)
    return [f"{source} -> {p}" for p in problems]


def _to_queue(stage: Stage, service: str, source: str, queue_arn: str) -> list[str]:
    context = CONTEXT[service](source)
    problems = _deliver(stage, service, "sqs:SendMessage", queue_arn, stage.queue_policy(queue_arn), context, True)
    key = stage.queue_key(queue_arn)
    if key is not None and key != "alias/aws/sqs":
        problems += _deliver(stage, service, "kms:GenerateDataKey", key, stage.key_policy(key), context, True)
    return [f"{source} -> {p}" for p in problems]


def test_every_alarm_action_reaches_its_topic(stage):
    """CloudWatch publishes alarm notifications as cloudwatch.amazonaws.com: the topic and its key must let it in."""
    problems, alarms = [], 0
    for stack, logical_id, alarm in [
        *stage.assembly.resources("AWS::CloudWatch::Alarm"),
        *stage.assembly.resources("AWS::CloudWatch::CompositeAlarm"),
    ]:
        properties = stage.assembly.resolve(stack, alarm["Properties"])
        arn = stage.assembly.attribute(stack, logical_id, "Arn")
        for kind in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            for action in properties.get(kind, []):
                alarms += 1
                if ":sns:" not in action:
                    problems.append(f"{logical_id} {kind} {action}: a kind of alarm action this test does not evaluate")
                    continue
                context = CONTEXT["cloudwatch.amazonaws.com"](arn)
                problems += _to_topic(stage, "cloudwatch.amazonaws.com", logical_id, action, context, recommended=True)
    assert alarms >= 3
    assert problems == []


def test_every_rule_target_is_delivered_and_has_a_dead_letter_queue(stage):
    problems, checked = [], 0
    permissions = [stage.assembly.resolve(s, r["Properties"]) for s, _, r in stage.assembly.resources("AWS::Lambda::Permission")]
    for stack, logical_id, rule in stage.assembly.resources("AWS::Events::Rule"):
        rule_arn = stage.assembly.attribute(stack, logical_id, "Arn")
        for target in stage.assembly.resolve(stack, rule["Properties"])["Targets"]:
            checked += 1
            arn = target["Arn"]
            if "DeadLetterConfig" not in target:
                problems.append(f"{logical_id} -> {arn}: no dead-letter queue; an undeliverable event would be lost")
            else:
                problems += _to_queue(stage, "events.amazonaws.com", rule_arn, target["DeadLetterConfig"]["Arn"])
            if ":sns:" in arn:
                problems += _to_topic(
                    stage, "events.amazonaws.com", rule_arn, arn, EVENTBRIDGE_TO_SNS(rule_arn), recommended=False
                )
            elif ":lambda:" in arn:
                if not any(
                    p["FunctionName"] == arn and p["Principal"] == "events.amazonaws.com" and p.get("SourceArn") == rule_arn
                    for p in permissions
                ):
                    problems.append(f"{logical_id} -> {arn}: no Lambda permission for this rule (SourceArn)")
            elif ":pipeline/" in arn:
                statements = stage.role_statements(target["RoleArn"])
                if not allowed(statements, "sagemaker:StartPipelineExecution", arn):
                    problems.append(f"{logical_id} -> {arn}: its role may not start the pipeline")
            else:
                problems.append(f"{logical_id} -> {arn}: a kind of rule target this test does not evaluate")
    assert checked >= 6
    assert problems == []


def test_schedules_may_send_to_their_dead_letter_queue_and_trust_only_this_account(stage):
    """Scheduler sends an undeliverable invocation to the dead-letter queue with the schedule's role
    (EventBridge Scheduler User Guide, "Configuring a dead-letter queue")."""
    problems = []
    for stack, logical_id, schedule in stage.assembly.resources("AWS::Scheduler::Schedule"):
        target = stage.assembly.resolve(stack, schedule["Properties"]["Target"])
        if "DeadLetterConfig" not in target:
            problems.append(f"{logical_id}: no dead-letter queue")
            continue
        queue = target["DeadLetterConfig"]["Arn"]
        if not allowed(stage.role_statements(target["RoleArn"]), "sqs:SendMessage", queue):
            problems.append(f"{logical_id}: its role may not send to {queue}")
        problems += _trust_problems(stage, target["RoleArn"], "scheduler.amazonaws.com")
    assert problems == []


def _trust_problems(stage: Stage, role_arn: str, service: str) -> list[str]:
    stack, logical_id = stage.assembly.role_logical_id(role_arn)
    trust = stage.assembly.resolve(stack, stage.assembly.templates[stack]["Resources"][logical_id]["Properties"])
    document = trust["AssumeRolePolicyDocument"]
    statement = resource_policy_allows(document, service, "sts:AssumeRole", "*", {"aws:SourceAccount": ACCOUNT})
    if statement is None:
        return [f"{logical_id} does not trust {service}"]
    if not confused_deputy_keys(statement):
        return [f"{logical_id} trusts {service} without aws:SourceAccount"]
    return []


def test_functions_may_send_to_their_dead_letter_queues(stage):
    """Lambda sends a failed asynchronous event to the function's dead-letter queue with the function's role
    (Lambda Developer Guide, "Retaining records of asynchronous invocations")."""
    problems = []
    for stack, logical_id, function in stage.assembly.resources("AWS::Lambda::Function"):
        properties = stage.assembly.resolve(stack, function["Properties"])
        queue = (properties.get("DeadLetterConfig") or {}).get("TargetArn")
        if queue and not allowed(stage.role_statements(properties["Role"]), "sqs:SendMessage", queue):
            problems.append(f"{logical_id} may not send to its dead-letter queue {queue}")
    assert problems == []


def _log_group_arn(name: str) -> str:
    return f"arn:{PARTITION}:logs:{REGION}:{ACCOUNT}:log-group:{name}"


def test_every_log_group_is_encrypted_with_a_key_that_lets_cloudwatch_logs_in(stage):
    """CloudWatch Logs uses the key as logs.<region>.amazonaws.com, with the log group in the encryption context."""
    problems, groups = [], 0
    for stack, logical_id, group in stage.assembly.resources("AWS::Logs::LogGroup"):
        groups += 1
        key = group["Properties"].get("KmsKeyId")
        if key is None:
            problems.append(f"{logical_id} uses CloudWatch Logs' own key, not the environment's")
            continue
        key_arn = stage.assembly.resolve(stack, key)
        context = {"kms:EncryptionContext:aws:logs:arn": _log_group_arn(stage.assembly.physical_name(stack, logical_id))}
        for action in LOG_KEY_ACTIONS:
            if (
                resource_policy_allows(stage.key_policy(key_arn), f"logs.{REGION}.amazonaws.com", action, key_arn, context)
                is None
            ):
                problems.append(f"{logical_id}: the key does not let CloudWatch Logs {action} for this log group")
    assert groups >= 8
    assert problems == []


def test_functions_and_state_machines_log_to_their_own_log_groups(stage):
    """A function without its log group in the template gets one from Lambda, unencrypted and kept forever; a state
    machine's group outside /aws/vendedlogs/ grows the account's one CloudWatch Logs resource policy, which is
    limited to 5,120 characters (Step Functions Developer Guide, "Best practices: logging")."""
    declared = {stage.assembly.physical_name(s, i) for s, i, _ in stage.assembly.resources("AWS::Logs::LogGroup")}
    problems = []
    for stack, logical_id, function in stage.assembly.resources("AWS::Lambda::Function"):
        if function["Properties"]["Handler"] in CDK_OWN_LOGGING:
            continue
        group = (function["Properties"].get("LoggingConfig") or {}).get("LogGroup")
        if group is None or stage.assembly.resolve(stack, group) not in declared:
            problems.append(f"{logical_id} logs to a log group the template does not hold")
    for stack, logical_id, machine in stage.assembly.resources("AWS::StepFunctions::StateMachine"):
        for destination in (machine["Properties"].get("LoggingConfiguration") or {}).get("Destinations", []):
            arn = stage.assembly.resolve(stack, destination["CloudWatchLogsLogGroup"]["LogGroupArn"])
            if ":log-group:/aws/vendedlogs/" not in arn:
                problems.append(f"{logical_id} logs to {arn}, outside /aws/vendedlogs/")
    assert problems == []


def test_s3_rules_match_buckets_that_send_events_to_eventbridge(stage):
    buckets = {
        stage.assembly.physical_name(s, i)
        for s, i, r in stage.assembly.resources("AWS::S3::Bucket")
        if (r["Properties"].get("NotificationConfiguration") or {}).get("EventBridgeConfiguration", {}).get("EventBridgeEnabled")
    }
    for stack, logical_id, rule in stage.assembly.resources("AWS::Events::Rule"):
        pattern = stage.assembly.resolve(stack, rule["Properties"]["EventPattern"])
        if pattern.get("source") == ["aws.s3"]:
            named = set(pattern["detail"]["bucket"]["name"])
            assert named <= buckets, f"{logical_id} waits for events of buckets that do not send them: {named - buckets}"


def test_the_evaluation_is_strict():
    """The evaluator itself: a condition on a key the sender does not send fails; a Deny wins."""
    document = {
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sns:Publish", "Resource": "t"},
            {
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": "t",
                "Condition": {"StringEquals": {"aws:SourceAccount": ACCOUNT}},
            },
            {
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sns:Publish",
                "Resource": "t",
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            },
        ]
    }
    assert resource_policy_allows(document, "events.amazonaws.com", "sns:Publish", "t", SECURE)
    assert resource_policy_allows(document, "cloudwatch.amazonaws.com", "sns:Publish", "t", SECURE) is None
    assert resource_policy_allows(
        document, "cloudwatch.amazonaws.com", "sns:Publish", "t", {**SECURE, "aws:SourceAccount": ACCOUNT}
    )
    assert resource_policy_allows(document, "events.amazonaws.com", "sns:Publish", "t", {"aws:SecureTransport": "false"}) is None
