"""Security properties of the key, buckets and repositories, for both kinds of environment and their differences."""

from __future__ import annotations

from aws_cdk.assertions import Match
from conftest import CONFIG, NONPRODUCTION, PRODUCTION, PROJECT

from common.names import ENVIRONMENT_TAG, PROJECT_TAG, ResourceNames

DATA_BUCKET_LOG_PREFIXES = ("raw-data/", "features/", "artifacts/")


def _buckets(template) -> dict:
    return template.find_resources("AWS::S3::Bucket")


def _data_buckets(template) -> dict:
    return {name: bucket for name, bucket in _buckets(template).items() if "LoggingConfiguration" in bucket["Properties"]}


def test_key_rotates(synthesized, environment):
    template = synthesized.template(environment, "storage")
    template.has_resource_properties("AWS::KMS::Key", {"EnableKeyRotation": True})
    template.has_resource_properties("AWS::KMS::Alias", {"AliasName": f"alias/{ResourceNames(PROJECT, environment).prefix}"})


def test_three_data_buckets_use_the_kms_key_and_log_access(synthesized, environment):
    template = synthesized.template(environment, "storage")
    data = _data_buckets(template)
    assert sorted(b["Properties"]["LoggingConfiguration"]["LogFilePrefix"] for b in data.values()) == sorted(
        DATA_BUCKET_LOG_PREFIXES
    )
    key_id = next(iter(template.find_resources("AWS::KMS::Key")))
    for bucket in data.values():
        rule = bucket["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert rule["ServerSideEncryptionByDefault"] == {
            "SSEAlgorithm": "aws:kms",
            "KMSMasterKeyID": {"Fn::GetAtt": [key_id, "Arn"]},
        }
        assert rule["BucketKeyEnabled"] is True


def test_every_bucket_blocks_public_access_and_is_versioned_with_lifecycle(synthesized, environment):
    buckets = _buckets(synthesized.template(environment, "storage"))
    assert len(buckets) == 4
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        rule = props["LifecycleConfiguration"]["Rules"][0]
        assert rule["Status"] == "Enabled"
        assert "NoncurrentDays" in rule["NoncurrentVersionExpiration"]
        assert "DaysAfterInitiation" in rule["AbortIncompleteMultipartUpload"]


def test_access_log_bucket_uses_sse_s3_as_s3_requires(synthesized, environment):
    logs = [
        b
        for b in _buckets(synthesized.template(environment, "storage")).values()
        if "LoggingConfiguration" not in b["Properties"]
    ]
    assert len(logs) == 1
    encryption = logs[0]["Properties"]["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
    assert encryption["ServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}


def test_every_bucket_denies_insecure_transport(synthesized, environment):
    template = synthesized.template(environment, "storage")
    policies = template.find_resources("AWS::S3::BucketPolicy")
    assert len(policies) == 4
    for policy in policies.values():
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert any(
            s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} and s["Action"] == "s3:*"
            for s in statements
        )


def test_only_the_raw_data_bucket_sends_events_to_eventbridge(synthesized, environment):
    buckets = _buckets(synthesized.template(environment, "storage")).values()
    notifying = [b for b in buckets if "NotificationConfiguration" in b["Properties"]]
    assert len(notifying) == 1
    assert notifying[0]["Properties"]["LoggingConfiguration"]["LogFilePrefix"] == "raw-data/"
    assert notifying[0]["Properties"]["NotificationConfiguration"] == {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}


def test_repositories_scan_on_push_are_immutable_and_kms_encrypted(synthesized, environment):
    template = synthesized.template(environment, "storage")
    repositories = template.find_resources("AWS::ECR::Repository")
    names = ResourceNames(PROJECT, environment)
    assert sorted(r["Properties"]["RepositoryName"] for r in repositories.values()) == sorted(
        [names.inference_repository, names.training_repository]
    )
    for repository in repositories.values():
        props = repository["Properties"]
        assert props["ImageScanningConfiguration"] == {"ScanOnPush": True}
        assert props["ImageTagMutability"] == "IMMUTABLE"
        assert props["EncryptionConfiguration"]["EncryptionType"] == "KMS"
        assert "untagged" in props["LifecyclePolicy"]["LifecyclePolicyText"]


def test_prod_retains_data_and_dev_destroys_it(reference_synthesized):
    for environment in (NONPRODUCTION, PRODUCTION):
        policy = "Retain" if CONFIG.environment(environment).storage.retain_data else "Delete"
        template = reference_synthesized.template(environment, "storage")
        for kind in ("AWS::KMS::Key", "AWS::S3::Bucket", "AWS::ECR::Repository"):
            resources = template.find_resources(kind)
            assert resources and all(r["DeletionPolicy"] == policy for r in resources.values()), (environment, kind)


def test_only_dev_empties_buckets_and_repositories_on_delete(reference_synthesized):
    for environment in (NONPRODUCTION, PRODUCTION):
        emptied = not CONFIG.environment(environment).storage.retain_data
        template = reference_synthesized.template(environment, "storage")
        assert len(template.find_resources("Custom::S3AutoDeleteObjects")) == (4 if emptied else 0), environment
        repositories = template.find_resources("AWS::ECR::Repository").values()
        assert [r["Properties"].get("EmptyOnDelete") for r in repositories] == [emptied, emptied], environment


def test_dev_and_prod_lifecycles_follow_their_config(reference_synthesized):
    for environment in (NONPRODUCTION, PRODUCTION):
        days = CONFIG.environment(environment).storage.noncurrent_version_expiration_days
        template = reference_synthesized.template(environment, "storage")
        template.has_resource_properties(
            "AWS::S3::Bucket",
            {
                "LifecycleConfiguration": {
                    "Rules": [Match.object_like({"NoncurrentVersionExpiration": {"NoncurrentDays": days}})]
                },
            },
        )


def test_resources_carry_project_and_environment_tags(synthesized, environment):
    template = synthesized.template(environment, "storage")
    template.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "Tags": Match.array_with([{"Key": ENVIRONMENT_TAG, "Value": environment}, {"Key": PROJECT_TAG, "Value": PROJECT}]),
        },
    )
    template.has_resource_properties(
        "AWS::KMS::Key",
        {
            "Tags": Match.array_with([{"Key": ENVIRONMENT_TAG, "Value": environment}]),
        },
    )


def test_every_tagged_resource_of_every_stack_carries_project_and_environment(synthesized, environment):
    for stack in ("storage", "pipelines", "orchestration"):
        resources = synthesized.template(environment, stack).to_json()["Resources"]
        tagged = {
            name: r["Properties"]["Tags"]
            for name, r in resources.items()
            if isinstance(r.get("Properties", {}).get("Tags"), list)
        }
        assert tagged, stack
        for name, tags in tagged.items():
            pairs = {(t["Key"], t["Value"]) for t in tags}
            assert {(PROJECT_TAG, PROJECT), (ENVIRONMENT_TAG, environment)} <= pairs, (stack, name)
