"""Encryption key, S3 buckets and ECR repositories: everything that holds data or images."""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Acknowledgment, CfnOutput, Duration, RemovalPolicy, Stack, Validations
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from lambdas.common import layout
from lambdas.common.names import ResourceNames
from stacks.synth.config import EnvironmentConfig, StorageConfig
from stacks.synth.log_groups import LogGroups, grant_logs
from stacks.synth.nag import acknowledge_compliance, acknowledge_iam5, resource_finding


@dataclass(frozen=True)
class DataStores:
    """What the other stacks use of storage: the key, the buckets, the repositories' names and the access policies."""

    key: kms.IKey
    raw_data_bucket: s3.IBucket
    features_bucket: s3.IBucket
    artifacts_bucket: s3.IBucket
    training_repository_name: str
    inference_repository_name: str
    data_access_policy: iam.IManagedPolicy
    artifacts_read_policy: iam.IManagedPolicy
    code_upload_policy: iam.IManagedPolicy
    monitoring_access_policy: iam.IManagedPolicy
    system_test_read_policy: iam.IManagedPolicy
    log_groups: LogGroups


class StorageStack(Stack):
    """One customer-managed key encrypts the data buckets and the image repositories.

    Production retains the key, the buckets and the repositories when the stack is deleted;
    other environments destroy them, emptying buckets and repositories first.
    """

    def __init__(
        self, scope: Construct, construct_id: str, *, names: ResourceNames, environment: EnvironmentConfig, **kwargs
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        storage = environment.storage
        retain = storage.retain_data
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        prefix = names.prefix

        self.key = kms.Key(
            self,
            "DataKey",
            alias=f"alias/{prefix}",
            description=f"Encrypts data, models and images of {prefix}",
            enable_key_rotation=True,
            removal_policy=removal,
        )

        self.logs_key = kms.Key(
            self,
            "LogsKey",
            alias=f"alias/{prefix}-logs",
            description=f"Encrypts the log groups of {prefix}",
            enable_key_rotation=True,
            removal_policy=removal,
        )
        log_prefix = names.log_group_prefix
        grant_logs(self.logs_key, log_prefix)

        self.access_logs_bucket = s3.Bucket(
            self,
            "AccessLogsBucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs",
                    expiration=Duration.days(storage.access_log_expiration_days),
                    noncurrent_version_expiration=Duration.days(storage.noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(1),
                )
            ],
            removal_policy=removal,
            auto_delete_objects=not retain,
        )
        Validations.of(self.access_logs_bucket).acknowledge(
            Acknowledgment(
                id="AwsSolutions-S1",
                reason="This bucket is the server access log destination; logging it into itself would loop. "
                "S3 requires SSE-S3 on log destinations, so it cannot use the KMS key.",
            )
        )
        acknowledge_compliance(
            self.access_logs_bucket,
            "S3DefaultEncryptionKMS",
            "S3 delivers server access logs only to a bucket encrypted with SSE-S3 (Amazon S3 User Guide, "
            '"Enabling Amazon S3 server access logging"), so this one bucket cannot use the KMS key.',
        )

        self._acknowledge_replication(self.access_logs_bucket)
        self.raw_data_bucket = self._data_bucket("RawDataBucket", "raw-data", storage, removal)
        # Native CloudFormation property instead of `event_bridge_enabled`, which adds a custom-resource Lambda.
        raw_bucket_resource = self.raw_data_bucket.node.default_child
        assert isinstance(raw_bucket_resource, s3.CfnBucket)
        raw_bucket_resource.add_property_override("NotificationConfiguration.EventBridgeConfiguration.EventBridgeEnabled", True)
        self.features_bucket = self._data_bucket("FeaturesBucket", "features", storage, removal)
        self.artifacts_bucket = self._data_bucket("ArtifactsBucket", "artifacts", storage, removal)

        self.training_repository_name = names.training_repository
        self.inference_repository_name = names.inference_repository
        self.training_repository = self._repository("TrainingRepository", self.training_repository_name, retain)
        self.inference_repository = self._repository("InferenceRepository", self.inference_repository_name, retain)

        self.data_access_policy = self._data_access_policy()
        self.artifacts_read_policy = self._artifacts_policy(
            "ArtifactsReadPolicy",
            "Read the artifacts bucket (pipeline property files such as the evaluation report)",
            "/*",
            "Property files are written per pipeline execution under the artifacts bucket.",
            ("s3:GetBucket*", "s3:GetObject*", "s3:List*"),
        )
        self.artifacts_bucket.grant_read(self.artifacts_read_policy)
        self.code_upload_policy = self._artifacts_policy(
            "CodeUploadPolicy",
            "Upload pipeline scripts under code/ of the artifacts bucket",
            f"/{layout.CODE}/*",
            "The SageMaker SDK uploads pipeline scripts under code/, named by content hash.",
            ("s3:Abort*", "kms:GenerateDataKey*", "kms:ReEncrypt*"),
        )
        self.artifacts_bucket.grant_put(self.code_upload_policy, f"{layout.CODE}/*")
        # The SDK checks its default bucket by listing code/ there before it uploads.
        self.code_upload_policy.add_statements(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.artifacts_bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [layout.CODE, f"{layout.CODE}/*"]}},
            )
        )

        self.monitoring_access_policy = self._monitoring_access_policy()
        self.system_test_read_policy = self._system_test_read_policy(
            data_buckets=(self.raw_data_bucket, self.features_bucket, self.artifacts_bucket)
        )

        for name, value in (
            ("RawDataBucketName", self.raw_data_bucket.bucket_name),
            ("ArtifactsBucketName", self.artifacts_bucket.bucket_name),
            ("TrainingRepositoryUri", self.training_repository.repository_uri),
            ("InferenceRepositoryUri", self.inference_repository.repository_uri),
        ):
            CfnOutput(self, name, value=value)

        self.stores = DataStores(
            key=self.key,
            raw_data_bucket=self.raw_data_bucket,
            features_bucket=self.features_bucket,
            artifacts_bucket=self.artifacts_bucket,
            training_repository_name=self.training_repository_name,
            inference_repository_name=self.inference_repository_name,
            data_access_policy=self.data_access_policy,
            artifacts_read_policy=self.artifacts_read_policy,
            code_upload_policy=self.code_upload_policy,
            monitoring_access_policy=self.monitoring_access_policy,
            system_test_read_policy=self.system_test_read_policy,
            log_groups=LogGroups(
                key=self.logs_key, prefix=log_prefix, retention_days=storage.log_retention_days, removal_policy=removal
            ),
        )

    def _monitoring_access_policy(self) -> iam.ManagedPolicy:
        """Model Monitor's jobs: list and read the captured requests and the baselines, write reports; nothing else."""
        bucket = self.artifacts_bucket
        captured, baselines, reports = f"{layout.DATA_CAPTURE}/", layout.BASELINES, f"{layout.MONITORING}/"
        policy = iam.ManagedPolicy(
            self,
            "MonitoringAccessPolicy",
            description="Read captured requests and data-quality baselines, write monitoring reports",
            statements=[
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{captured}*", f"{baselines}*", f"{reports}*"]}},
                ),
                iam.PolicyStatement(
                    actions=["s3:GetObject"],
                    resources=[bucket.arn_for_objects(f"{captured}*"), bucket.arn_for_objects(f"{baselines}*")],
                ),
                iam.PolicyStatement(
                    actions=["s3:PutObject", "s3:AbortMultipartUpload"], resources=[bucket.arn_for_objects(f"{reports}*")]
                ),
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"], resources=[self.key.key_arn]
                ),
                # The job's volume is encrypted with the key: SageMaker creates a grant for it, as the job role does.
                iam.PolicyStatement(
                    actions=["kms:CreateGrant"],
                    resources=[self.key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
            ],
        )
        acknowledge_iam5(
            policy,
            {
                resource_finding(self, bucket.bucket_arn, f"/{captured}*"): "Captured requests, in objects SageMaker names "
                "by endpoint, variant and hour.",
                resource_finding(self, bucket.bucket_arn, f"/{baselines}*"): "Baselines the training pipeline writes under "
                "its execution ids.",
                resource_finding(self, bucket.bucket_arn, f"/{reports}*"): "Reports the monitoring jobs write under their "
                "schedules and execution times.",
            },
        )
        return policy

    def _system_test_read_policy(self, data_buckets: tuple[s3.IBucket, ...]) -> iam.ManagedPolicy:
        """The system test: each bucket's encryption, the held-out samples beside evaluation reports, and whether
        captured requests arrived (listing only)."""
        bucket = self.artifacts_bucket
        sample = layout.SAMPLES
        policy = iam.ManagedPolicy(
            self,
            "SystemTestReadPolicy",
            description="Read bucket encryption, held-out samples and the data-capture listing",
            statements=[
                iam.PolicyStatement(actions=["s3:GetEncryptionConfiguration"], resources=[b.bucket_arn for b in data_buckets]),
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[bucket.arn_for_objects(sample)]),
                # The system test lists the sample's key before it reads it: a package trained before it had a
                # sample then reads as not-applicable instead of an error.
                iam.PolicyStatement(
                    actions=["s3:ListBucket"],
                    resources=[bucket.bucket_arn],
                    conditions={"StringLike": {"s3:prefix": [f"{layout.DATA_CAPTURE}/*", sample]}},
                ),
                iam.PolicyStatement(actions=["kms:Decrypt"], resources=[self.key.key_arn]),
            ],
        )
        acknowledge_iam5(
            policy,
            {
                resource_finding(self, bucket.bucket_arn, f"/{sample}"): "Held-out samples the training "
                "pipeline writes under its execution ids.",
            },
        )
        return policy

    def _data_access_policy(self) -> iam.ManagedPolicy:
        """Read raw data, read and write features and artifacts, use the key, pull the images."""
        data_buckets = (self.raw_data_bucket, self.features_bucket, self.artifacts_bucket)
        policy = iam.ManagedPolicy(
            self,
            "DataAccessPolicy",
            description="Data and image access of the SageMaker execution role",
            statements=[
                iam.PolicyStatement(actions=["s3:ListBucket"], resources=[b.bucket_arn for b in data_buckets]),
                iam.PolicyStatement(actions=["s3:GetObject"], resources=[self.raw_data_bucket.arn_for_objects("*")]),
                iam.PolicyStatement(
                    actions=["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"],
                    resources=[self.features_bucket.arn_for_objects("*"), self.artifacts_bucket.arn_for_objects("*")],
                ),
                iam.PolicyStatement(
                    actions=["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey", "kms:DescribeKey"], resources=[self.key.key_arn]
                ),
                iam.PolicyStatement(
                    actions=["kms:CreateGrant"],
                    resources=[self.key.key_arn],
                    conditions={"Bool": {"kms:GrantIsForAWSResource": "true"}},
                ),
                iam.PolicyStatement(
                    actions=["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer", "ecr:BatchCheckLayerAvailability"],
                    resources=[self.training_repository.repository_arn, self.inference_repository.repository_arn],
                ),
            ],
        )
        acknowledge_iam5(
            policy,
            {
                resource_finding(self, bucket.bucket_arn, "/*"): "Objects of one bucket of this environment: SageMaker jobs "
                "read and write keys generated per pipeline execution."
                for bucket in data_buckets
            },
        )
        return policy

    def _artifacts_policy(
        self, construct_id: str, description: str, suffix: str, reason: str, grant_actions: tuple[str, ...]
    ) -> iam.ManagedPolicy:
        """A managed policy of this stack for an artifacts-bucket grant that roles of other stacks attach.

        `grant_actions` are the wildcard actions of the bucket's own grant method, acknowledged as such.
        """
        policy = iam.ManagedPolicy(self, construct_id, description=description)
        findings = {resource_finding(self, self.artifacts_bucket.bucket_arn, suffix): reason}
        findings.update(
            {
                f"Action::{action}": f"Part of the bucket's own grant method: {description[0].lower()}{description[1:]}."
                for action in grant_actions
            }
        )
        acknowledge_iam5(policy, findings)
        return policy

    @staticmethod
    def _acknowledge_replication(bucket: s3.IBucket) -> None:
        acknowledge_compliance(
            bucket,
            "S3BucketReplicationEnabled",
            "An environment lives in one region: versioning, noncurrent-version expiration and production's retention "
            "guard its data; copying it to a second region is a disaster-recovery decision each organization makes.",
        )

    def _data_bucket(self, construct_id: str, log_prefix: str, storage: StorageConfig, removal: RemovalPolicy) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            construct_id,
            encryption=s3.BucketEncryption.KMS,
            encryption_key=self.key,
            bucket_key_enabled=True,
            enforce_ssl=True,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            versioned=True,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix=f"{log_prefix}/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-noncurrent-versions",
                    noncurrent_version_expiration=Duration.days(storage.noncurrent_version_expiration_days),
                    abort_incomplete_multipart_upload_after=Duration.days(7),
                )
            ],
            removal_policy=removal,
            auto_delete_objects=removal == RemovalPolicy.DESTROY,
        )
        self._acknowledge_replication(bucket)
        return bucket

    def _repository(self, construct_id: str, name: str, retain: bool) -> ecr.Repository:
        return ecr.Repository(
            self,
            construct_id,
            repository_name=name,
            image_scan_on_push=True,
            image_tag_mutability=ecr.TagMutability.IMMUTABLE,
            encryption=ecr.RepositoryEncryption.KMS,
            encryption_key=self.key,
            lifecycle_rules=[
                ecr.LifecycleRule(
                    description="Expire untagged images after a week",
                    tag_status=ecr.TagStatus.UNTAGGED,
                    max_image_age=Duration.days(7),
                    rule_priority=1,
                ),
                ecr.LifecycleRule(
                    description="Keep the 30 most recent tagged images",
                    tag_status=ecr.TagStatus.ANY,
                    max_image_count=30,
                    rule_priority=2,
                ),
            ],
            removal_policy=RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY,
            empty_on_delete=not retain,
        )
