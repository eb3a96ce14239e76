"""Schedules, rules, the deployer, alarms, topic and queue, for both kinds of environment; rules matched against real events."""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import replace

import aws_events
import pytest
from aws_cdk import App, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam
from aws_cdk.assertions import Match, Template
from conftest import (
    ACCOUNT,
    CONFIG,
    ENVIRONMENTS,
    NONPRODUCTION,
    PRODUCTION,
    PROJECT,
    REGION,
    cdk_context,
    reference_context,
    synthesize,
    template_deployer_settings,
)
from moto.events.models import EventPattern

from lambdas.common.names import ResourceNames
from pipeline_scripts.dataset import Dataset, Feature
from stacks.constructs.model_package_group import ModelPackageGroup
from stacks.orchestration import OrchestrationStack
from stacks.storage import StorageStack
from stacks.synth.config import EnvironmentConfig, load_config
from stacks.synth.image_sources import image_tag

RAW_BUCKET = "raw-data-bucket"
PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::URLSuffix": "amazonaws.com"}


ALARM_TYPES = ("AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm")


def resolve(value, resources: dict | None = None):
    """Concrete values for the intrinsics a rule pattern holds, as CloudFormation would deploy them."""
    if isinstance(value, list):
        return [resolve(v, resources) for v in value]
    if not isinstance(value, dict):
        return value
    if "Ref" in value and value["Ref"] in PSEUDO:
        return PSEUDO[value["Ref"]]
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(resolve(p, resources) for p in parts)
    if "Fn::GetStackOutput" in value:
        output = value["Fn::GetStackOutput"]["OutputName"]
        assert "RawDataBucket" in output, output
        return RAW_BUCKET
    if "Fn::GetAtt" in value and resources is not None:
        logical_id, attribute = value["Fn::GetAtt"]
        alarm = resources[logical_id]
        assert alarm["Type"] in ALARM_TYPES and attribute == "Arn", value
        return f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{alarm['Properties']['AlarmName']}"
    return {k: resolve(v, resources) for k, v in value.items()}


def rule_pattern(template, description_start: str) -> EventPattern:
    rules = [
        r["Properties"]
        for r in template.find_resources("AWS::Events::Rule").values()
        if r["Properties"].get("Description", "").startswith(description_start)
    ]
    assert len(rules) == 1, description_start
    return EventPattern.load(json.dumps(resolve(rules[0]["EventPattern"], template.to_json()["Resources"])))


def test_model_approval_rule(synthesized, environment):
    pattern = rule_pattern(synthesized.template(environment, "orchestration"), "An approved model version")
    group = ResourceNames(PROJECT, environment).model_package_group
    assert pattern.matches_event(aws_events.model_package_state_change(group, "Approved"))
    assert not pattern.matches_event(aws_events.model_package_state_change(group, "PendingManualApproval"))
    assert not pattern.matches_event(aws_events.model_package_state_change(group, "Rejected"))
    assert not pattern.matches_event(aws_events.model_package_state_change("another-group", "Approved"))


def test_new_data_rule_fires_on_the_marker_only(synthesized, environment):
    storage = CONFIG.environment(environment).storage
    prefix, marker = storage.raw_data_prefix, storage.training_trigger_suffix
    batch_input = CONFIG.environment(environment).batch_prediction.input_prefix
    pattern = rule_pattern(synthesized.template(environment, "orchestration"), f"A '{marker}' marker")
    assert pattern.matches_event(aws_events.s3_object_created(RAW_BUCKET, f"{prefix}2026-11-23/{marker}"))
    assert pattern.matches_event(aws_events.s3_object_created(RAW_BUCKET, f"{prefix}{marker}"))
    assert not pattern.matches_event(aws_events.s3_object_created(RAW_BUCKET, f"{prefix}2026-11-23/part-0001.csv"))
    assert not pattern.matches_event(aws_events.s3_object_created(RAW_BUCKET, f"{batch_input}2026-11-23/{marker}"))
    assert not pattern.matches_event(aws_events.s3_object_created("someone-elses-bucket", f"{prefix}{marker}"))


def test_new_image_rule_fires_on_the_configured_training_tag(synthesized, environment):
    pattern = rule_pattern(synthesized.template(environment, "orchestration"), "The configured training image tag")
    names = ResourceNames(PROJECT, environment)
    repository, tag = names.training_repository, image_tag("training")
    assert pattern.matches_event(aws_events.ecr_image_action(repository, tag))
    assert not pattern.matches_event(aws_events.ecr_image_action(repository, tag, action="DELETE"))
    assert not pattern.matches_event(aws_events.ecr_image_action(repository, tag, result="FAILURE"))
    assert not pattern.matches_event(aws_events.ecr_image_action(repository, "experiment-7"))
    assert not pattern.matches_event(aws_events.ecr_image_action(names.inference_repository, tag))


def test_critical_image_findings_alert(synthesized, environment):
    pattern = rule_pattern(synthesized.template(environment, "orchestration"), "An image scan found CRITICAL")
    names = ResourceNames(PROJECT, environment)
    for repository in (names.training_repository, names.inference_repository):
        assert pattern.matches_event(aws_events.ecr_image_scan(repository, {"CRITICAL": 10, "MEDIUM": 9}))
        assert not pattern.matches_event(aws_events.ecr_image_scan(repository, {"HIGH": 3, "MEDIUM": 9}))
        assert not pattern.matches_event(aws_events.ecr_image_scan(repository, {"CRITICAL": 1}, status="FAILED"))
    assert not pattern.matches_event(aws_events.ecr_image_scan("someone-elses-repository", {"CRITICAL": 1}))


def test_pipeline_failure_rule(synthesized, environment):
    pattern = rule_pattern(synthesized.template(environment, "orchestration"), "A training or batch-prediction execution failed")
    names = ResourceNames(PROJECT, environment)
    for name in (names.training_pipeline, names.batch_pipeline):
        assert pattern.matches_event(aws_events.pipeline_execution_status_change(name, "Failed"))
        assert not pattern.matches_event(aws_events.pipeline_execution_status_change(name, "Succeeded"))
    assert not pattern.matches_event(aws_events.pipeline_execution_status_change("another-pipeline", "Failed"))


def test_endpoint_in_service_rule(synthesized, environment):
    pattern = rule_pattern(synthesized.template(environment, "orchestration"), "A created or updated endpoint")
    endpoint = ResourceNames(PROJECT, environment).endpoint
    assert pattern.matches_event(aws_events.endpoint_state_change(endpoint, "IN_SERVICE"))
    assert not pattern.matches_event(aws_events.endpoint_state_change(endpoint, "CREATING"))
    assert not pattern.matches_event(aws_events.endpoint_state_change("other-endpoint", "IN_SERVICE"))


def _targets(template, description_start: str) -> list[dict]:
    (rule,) = [
        r["Properties"]
        for r in template.find_resources("AWS::Events::Rule").values()
        if r["Properties"]["Description"].startswith(description_start)
    ]
    return rule["Targets"]


def test_rule_targets_start_pipelines_or_the_deployer_with_dead_letters(synthesized, environment):
    template = synthesized.template(environment, "orchestration")
    (queue_id,) = template.find_resources("AWS::SQS::Queue")
    pipeline = ResourceNames(PROJECT, environment).training_pipeline
    marker = CONFIG.environment(environment).storage.training_trigger_suffix
    for description in (f"A '{marker}' marker", "The configured training image tag"):
        (target,) = _targets(template, description)
        assert f":pipeline/{pipeline}" in json.dumps(target["Arn"])
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
        assert "RoleArn" in target
    (deployer_id,) = [
        logical_id
        for logical_id, f in template.find_resources("AWS::Lambda::Function").items()
        if f["Properties"]["Description"].startswith("Approved model package")
    ]
    for description in ("An approved model version", "A created or updated endpoint"):
        (target,) = _targets(template, description)
        assert target["Arn"] == {"Fn::GetAtt": [deployer_id, "Arn"]}
        assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
        assert target["RetryPolicy"]["MaximumRetryAttempts"] == 3
    template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "Principal": "events.amazonaws.com",
            "FunctionName": {"Fn::GetAtt": [deployer_id, "Arn"]},
        },
    )


def _schedules(template) -> dict:
    return {
        s["Properties"]["Description"].split(" ")[0]: s["Properties"]
        for s in template.find_resources("AWS::Scheduler::Schedule").values()
    }


def test_schedules_use_cron_in_the_time_zone_and_pass_parameters(synthesized, environment):
    template = synthesized.template(environment, "orchestration")
    schedules = _schedules(template)
    assert set(schedules) == {"Nightly", "Daily"}
    nightly, daily = schedules["Nightly"], schedules["Daily"]
    configured = CONFIG.environment(environment).schedules
    state = {True: "ENABLED", False: "DISABLED"}
    assert (nightly["ScheduleExpression"], nightly["ScheduleExpressionTimezone"], nightly["State"]) == (
        configured.retraining_cron,
        configured.timezone,
        state[configured.retraining_enabled],
    )
    assert (daily["ScheduleExpression"], daily["ScheduleExpressionTimezone"], daily["State"]) == (
        configured.batch_prediction_cron,
        configured.timezone,
        state[configured.batch_prediction_enabled],
    )
    names = ResourceNames(PROJECT, environment)
    assert f":pipeline/{names.training_pipeline}" in json.dumps(nightly["Target"]["Arn"])
    assert f":pipeline/{names.batch_pipeline}" in json.dumps(daily["Target"]["Arn"])
    assert [p["Name"] for p in nightly["Target"]["SageMakerPipelineParameters"]["PipelineParameterList"]] == ["InputDataUri"]
    assert [p["Name"] for p in daily["Target"]["SageMakerPipelineParameters"]["PipelineParameterList"]] == [
        "InputPrefixUri",
        "OutputPrefixUri",
    ]
    (queue_id,) = template.find_resources("AWS::SQS::Queue")
    for schedule in schedules.values():
        assert schedule["Target"]["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [queue_id, "Arn"]}}
        assert schedule["Target"]["RoleArn"]["Fn::GetAtt"][0].startswith("TriggersStarterRole")


def test_pipeline_starter_role_may_only_start_these_pipelines(synthesized, environment):
    template = synthesized.template(environment, "orchestration")
    starter = [
        p
        for p in template.find_resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"][0]["Ref"].startswith("TriggersStarterRole")
    ]
    statements = [
        s
        for p in starter
        for s in p["Properties"]["PolicyDocument"]["Statement"]
        if s["Action"] == "sagemaker:StartPipelineExecution"
    ]
    resources = json.dumps([s["Resource"] for s in statements])
    names = ResourceNames(PROJECT, environment)
    assert f"pipeline/{names.training_pipeline}" in resources and f"pipeline/{names.batch_pipeline}" in resources
    assert "pipeline/*" not in resources


def test_alarms_alert_and_drive_rollback(synthesized, assemblies, environment):
    template = synthesized.template(environment, "orchestration")
    alarms = {
        a["Properties"].get("AlarmName", a["Properties"]["AlarmDescription"]): a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
    }
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    for alarm in alarms.values():
        assert alarm["AlarmActions"] == [{"Ref": topic_id}]
    names = ResourceNames(PROJECT, environment)
    errors, latency = alarms[names.alarm("5xx-errors")], alarms[names.alarm("model-latency")]
    assert (errors["MetricName"], errors["Namespace"], errors["Threshold"]) == ("Invocation5XXErrors", "AWS/SageMaker", 1)
    assert (latency["MetricName"], latency["ExtendedStatistic"], latency["Threshold"]) == ("ModelLatency", "p99", 200_000)
    assert template_deployer_settings(assemblies[environment]).rollback_alarm_names == (
        names.alarm("5xx-errors"),
        names.alarm("model-latency"),
    )
    descriptions = {a["AlarmDescription"] for a in alarms.values()}
    assert "The endpoint deployer failed; see its log group" in descriptions
    assert "Events that could not be delivered to a pipeline, the deployer or the topic" in descriptions


def test_topic_and_queue_are_encrypted_and_ssl_only(synthesized, environment):
    template = synthesized.template(environment, "orchestration")
    (key_id,) = template.find_resources("AWS::KMS::Key")
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties("AWS::SNS::Topic", {"KmsMasterKeyId": {"Fn::GetAtt": [key_id, "Arn"]}})
    template.has_resource_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True, "MessageRetentionPeriod": 1209600})
    for kind in ("AWS::SNS::TopicPolicy", "AWS::SQS::QueuePolicy"):
        template.has_resource_properties(
            kind,
            {
                "PolicyDocument": {
                    "Statement": Match.array_with(
                        [Match.object_like({"Effect": "Deny", "Condition": {"Bool": {"aws:SecureTransport": "false"}}})]
                    )
                }
            },
        )


def test_deployer_settings_match_what_the_lambda_reads(synthesized, assemblies, environment):
    template = synthesized.template(environment, "orchestration")
    (deployer,) = [
        f["Properties"]
        for f in template.find_resources("AWS::Lambda::Function").values()
        if f["Properties"]["Description"].startswith("Approved model package")
    ]
    assert set(deployer["Environment"]["Variables"]) == {"SETTINGS"}
    settings = template_deployer_settings(assemblies[environment])
    configured = CONFIG.environment(environment).endpoint
    expected = (
        configured.instance_type,
        configured.initial_instance_count,
        configured.min_capacity,
        configured.max_capacity,
        configured.data_capture_percentage,
    )
    endpoint = settings.endpoint
    assert (
        endpoint.instance_type,
        endpoint.initial_instance_count,
        endpoint.min_capacity,
        endpoint.max_capacity,
        endpoint.data_capture_percentage,
    ) == expected
    assert settings.volume_kms_key_arn == settings.kms_key_arn, "ml.t2 and ml.m5 have EBS volumes, which take the key"
    assert deployer["Timeout"] == 900 and "TargetArn" in deployer["DeadLetterConfig"]
    # No reserved concurrency: new accounts (a quota of 10) cannot reserve any; SageMaker serializes deployments.
    assert "ReservedConcurrentExecutions" not in deployer
    template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig", {"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 3600}
    )


def test_deployer_role_is_scoped_to_this_endpoint(synthesized, environment):
    template = synthesized.template(environment, "orchestration")
    role_id = next(k for k in template.find_resources("AWS::IAM::Role") if k.startswith("DeployEndpointRole"))
    statements = [
        s
        for p in template.find_resources("AWS::IAM::Policy").values()
        if p["Properties"]["Roles"] == [{"Ref": role_id}]
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    endpoint = next(s for s in statements if "sagemaker:UpdateEndpoint" in s["Action"])
    resources = json.dumps(endpoint["Resource"])
    name = ResourceNames(PROJECT, environment).endpoint
    assert f':endpoint/{name}"' in resources and f":endpoint-config/{name}-v*" in resources
    passrole = next(s for s in statements if s["Action"] == "iam:PassRole")
    assert "RolesJobRole" in json.dumps(passrole["Resource"])


def test_log_retention_and_email_subscription_follow_the_config(tmp_path):
    context = reference_context()
    context["mlops"]["environments"] = {PRODUCTION: context["mlops"]["environments"][PRODUCTION]}
    prod = context["mlops"]["environments"][PRODUCTION]
    prod["alert_email"] = "oncall@example.com"
    prod.setdefault("schedules", {}).update(retraining_enabled=False, timezone="Europe/Berlin")
    template = synthesize(context, tmp_path).template(PRODUCTION, "orchestration")
    template.has_resource_properties("AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "oncall@example.com"})
    schedules = _schedules(template)
    assert (schedules["Nightly"]["State"], schedules["Daily"]["State"]) == ("DISABLED", "ENABLED")
    assert {s["ScheduleExpressionTimezone"] for s in schedules.values()} == {"Europe/Berlin"}
    template.has_resource_properties(
        "AWS::Logs::LogGroup", {"RetentionInDays": CONFIG.environment(PRODUCTION).storage.log_retention_days}
    )


def test_an_environment_without_alert_email_has_no_email_subscription(synthesized):
    for environment in ENVIRONMENTS:
        email = CONFIG.environment(environment).alert_email
        subscriptions = synthesized.template(environment, "orchestration").find_resources("AWS::SNS::Subscription")
        assert [s["Properties"]["Endpoint"] for s in subscriptions.values()] == ([email] if email else []), environment


@pytest.mark.parametrize("kind", ["AWS::KMS::Key", "AWS::SQS::Queue", "AWS::Logs::LogGroup"])
def test_prod_retains_and_dev_destroys_orchestration_state(reference_synthesized, kind):
    for environment in (NONPRODUCTION, PRODUCTION):
        policy = "Retain" if CONFIG.environment(environment).storage.retain_data else "Delete"
        resources = reference_synthesized.template(environment, "orchestration").find_resources(kind)
        assert resources and all(r["DeletionPolicy"] == policy for r in resources.values())


def _orchestration(environment: EnvironmentConfig, dataset: Dataset) -> OrchestrationStack:
    """Storage and Orchestration alone (the Pipelines stack's role and group stood in for): for paths the shipped
    cdk.json lacks."""
    names = ResourceNames(load_config(cdk_context()["mlops"]).project_name, environment.name)
    app = App(context=cdk_context())
    storage = StorageStack(app, "Storage", names=names, environment=environment)
    registry = Stack(app, "Registry")
    job_role = iam.Role(registry, "Job", assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"))
    group = ModelPackageGroup(
        registry, "Group", name=names.model_package_group, description="models", removal_policy=RemovalPolicy.DESTROY
    )
    return OrchestrationStack(
        app,
        "Orchestration",
        names=names,
        environment=environment,
        dataset=dataset,
        stores=storage.stores,
        job_role=job_role,
        training_image_tag="sha-0123456789abcdef",
        model_package_group=group,
    )


def test_with_monitoring_disabled_there_is_no_schedule_role_alarm_or_retraining():
    config = load_config(cdk_context()["mlops"])
    first = config.environments[0]
    first = replace(first, monitoring=replace(first.monitoring, enabled=False))
    names = ResourceNames(config.project_name, first.name)
    stack = _orchestration(first, config.dataset)
    template = Template.from_stack(stack)
    descriptions = [f["Properties"]["Description"] for f in template.find_resources("AWS::Lambda::Function").values()]
    assert not [d for d in descriptions if d.startswith("Drift alarm")], "no retraining on drift"
    settings = stack.deployer.settings
    assert settings.monitoring.enabled is False and settings.monitoring_role_arn is None
    assert settings.monitoring_schedule_name == names.monitoring_schedule, "the deployer still removes an old schedule"
    alarms = [a["Properties"].get("AlarmName") for a in template.find_resources("AWS::CloudWatch::Alarm").values()]
    assert names.alarm("data-drift") not in alarms
    assert not [r for r in template.find_resources("AWS::IAM::Role") if r.startswith("Monitoring")]


def test_thirty_features_are_watched_by_ten_per_alarm_and_one_composite_that_alerts_and_retrains():
    """A metric-math alarm holds at most 10 metrics (CloudWatch User Guide): 30 features take three member alarms,
    and the composite alarm under the drift alarm's name is what alerts and what retraining listens to."""
    config = load_config(cdk_context()["mlops"])
    environment = config.environments[0]
    features = tuple(Feature(f"f{index}", "numeric") for index in range(30))
    names = ResourceNames(config.project_name, environment.name)
    template = Template.from_stack(_orchestration(environment, replace(config.dataset, features=features)))
    members = {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in template.find_resources("AWS::CloudWatch::Alarm").values()
        if a["Properties"]["AlarmName"].startswith(names.alarm("data-drift-"))
    }
    assert sorted(members) == [names.alarm(f"data-drift-{n}") for n in (1, 2, 3)]
    watched = sorted(m["MetricStat"]["Metric"]["MetricName"] for a in members.values() for m in a["Metrics"] if "MetricStat" in m)
    assert watched == sorted(f"feature_baseline_drift__c{index}" for index in range(30))
    assert all("AlarmActions" not in a for a in members.values()), "one notification, from the composite"
    (composite,) = template.find_resources("AWS::CloudWatch::CompositeAlarm").values()
    properties = composite["Properties"]
    assert properties["AlarmName"] == names.alarm("data-drift")
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    assert properties["AlarmActions"] == [{"Ref": topic_id}]
    composite_arn = f"arn:aws:cloudwatch:{REGION}:{ACCOUNT}:alarm:{properties['AlarmName']}"
    (policy,) = template.find_resources("AWS::SNS::TopicPolicy").values()
    publishers = [
        resolve(s["Condition"]["ArnLike"]["aws:SourceArn"])
        for s in policy["Properties"]["PolicyDocument"]["Statement"]
        if s["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    ]
    assert [p for p in publishers if fnmatch.fnmatchcase(composite_arn, p)], "the topic's policy lets the composite in"
    member_ids = {a["Properties"]["AlarmName"]: k for k, a in template.find_resources("AWS::CloudWatch::Alarm").items()}
    rule = json.dumps(properties["AlarmRule"])
    assert all(f'"{member_ids[name]}", "Arn"' in rule for name in members) and rule.count("ALARM(") == 3
    retrain = rule_pattern(template, "The drift alarm entering ALARM")
    assert retrain.matches_event(aws_events.cloudwatch_alarm_state_change(names.alarm("data-drift"), "ALARM"))
    assert not retrain.matches_event(aws_events.cloudwatch_alarm_state_change(names.alarm("data-drift-1"), "ALARM"))


def test_budget_selects_the_environments_tagged_costs_and_alerts_on_forecast_and_actual(synthesized, environment):
    template = synthesized.template(environment, "orchestration")
    config = load_config(cdk_context()["mlops"])
    names = ResourceNames(config.project_name, environment)
    (budget,) = template.find_resources("AWS::Budgets::Budget").values()
    data = budget["Properties"]["Budget"]
    assert (data["BudgetName"], data["BudgetType"], data["TimeUnit"]) == (names.prefix, "COST", "MONTHLY")
    assert data["BudgetLimit"] == {"Amount": config.environment(environment).budget.monthly_usd, "Unit": "USD"}
    assert data["FilterExpression"] == {
        "And": [
            {"Tags": {"Key": "project", "Values": [names.project], "MatchOptions": ["EQUALS"]}},
            {"Tags": {"Key": "environment", "Values": [environment], "MatchOptions": ["EQUALS"]}},
        ]
    }
    stack_tags = {
        t["Key"]: t["Value"] for t in next(iter(template.find_resources("AWS::SNS::Topic").values()))["Properties"]["Tags"]
    }
    assert stack_tags == {"project": names.project, "environment": environment}, "the tags the budget selects on"
    (topic_id,) = template.find_resources("AWS::SNS::Topic")
    notifications = {
        (n["Notification"]["NotificationType"], n["Notification"]["Threshold"]): n["Subscribers"]
        for n in budget["Properties"]["NotificationsWithSubscribers"]
    }
    assert notifications == {
        ("FORECASTED", 80): [{"SubscriptionType": "SNS", "Address": {"Ref": topic_id}}],
        ("ACTUAL", 100): [{"SubscriptionType": "SNS", "Address": {"Ref": topic_id}}],
    }


def test_the_dashboard_shows_the_endpoint_both_pipelines_and_every_alarm(synthesized, environment):
    template = synthesized.template(environment, "orchestration")
    names = ResourceNames(load_config(cdk_context()["mlops"]).project_name, environment)
    (dashboard,) = template.find_resources("AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == names.prefix
    body = json.dumps(dashboard["Properties"]["DashboardBody"])
    for shown in (names.endpoint, names.training_pipeline, names.batch_pipeline, "AWS/Sagemaker/ModelBuildingPipeline"):
        assert f'\\"{shown}\\"' in body, shown
    resources = template.to_json()["Resources"]
    alarm_ids = {logical_id for logical_id, r in resources.items() if r["Type"] in ALARM_TYPES}
    shown_ids = set(re.findall(r'"Fn::GetAtt": \["([A-Za-z0-9]+)", "Arn"\]', body))
    assert alarm_ids and alarm_ids <= shown_ids, "every alarm of the environment is on the dashboard"
    outputs = template.to_json()["Outputs"]
    (url,) = [o["Value"] for k, o in outputs.items() if k.startswith("DashboardUrl")]
    assert resolve(url).endswith(f"#dashboards/dashboard/{names.prefix}")
