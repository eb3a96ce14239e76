"""Model Monitor's analyzer as a pipeline step's job (the job role, the environment's key, one instance), and the
network every job of both pipelines runs with."""

from __future__ import annotations

from sagemaker.network import NetworkConfig
from sagemaker.utils import instance_supports_kms
from sagemaker.workflow.check_job_config import CheckJobConfig
from sagemaker.workflow.entities import PipelineVariable
from sagemaker.workflow.parameters import ParameterString
from sagemaker.workflow.pipeline_context import PipelineSession

from common.contracts import PipelineSettings


def network_config(settings: PipelineSettings) -> NetworkConfig:
    """Isolated processing: no network for the container; in the environment's subnets when it has a VPC."""
    network = settings.network
    if network is None:
        return NetworkConfig(enable_network_isolation=True)
    return NetworkConfig(
        enable_network_isolation=True, subnets=list(network.subnet_ids), security_group_ids=list(network.security_group_ids)
    )


def vpc_arguments(settings: PipelineSettings) -> dict:
    """Estimator's and Model's `subnets`/`security_group_ids` or `vpc_config`; nothing without a VPC."""
    network = settings.network
    if network is None:
        return {}
    return {"subnets": list(network.subnet_ids), "security_group_ids": list(network.security_group_ids)}


def model_vpc_config(settings: PipelineSettings) -> dict[str, list[str | PipelineVariable]] | None:
    """Model's `vpc_config` (CreateModel's VpcConfig); None without a VPC."""
    network = settings.network
    if network is None:
        return None
    return {"Subnets": list(network.subnet_ids), "SecurityGroupIds": list(network.security_group_ids)}


def analyzer_job(
    settings: PipelineSettings, session: PipelineSession, instance_type: str | ParameterString, base_job_name: str
) -> CheckJobConfig:
    """SageMaker refuses a volume key on instance types with NVMe storage; the configured type decides."""
    s = settings
    return CheckJobConfig(
        role=s.job_role_arn,
        instance_count=1,
        instance_type=instance_type,
        volume_kms_key=s.kms_key_arn if instance_supports_kms(s.training.processing_instance_type) else None,
        output_kms_key=s.kms_key_arn,
        # The analyzer reads and writes S3 channels only; the execution role starts isolated jobs alone.
        network_config=network_config(s),
        base_job_name=base_job_name,
        sagemaker_session=session,
    )
