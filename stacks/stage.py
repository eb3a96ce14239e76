"""One deployable environment: a cdk.Stage named after it, holding its stacks."""

from __future__ import annotations

from aws_cdk import Environment, Stack, Stage, Tags
from constructs import Construct

from lambdas.common.names import ENVIRONMENT_TAG, PROJECT_TAG, ResourceNames
from pipeline_scripts.dataset import Dataset
from stacks.orchestration import OrchestrationStack
from stacks.pipelines import PipelinesStack
from stacks.storage import StorageStack
from stacks.synth.config import EnvironmentConfig
from stacks.synth.guardrails import apply_permissions_boundary, place_functions_in_vpc
from stacks.synth.nag import acknowledge_stage_wide


class MlopsStage(Stage):
    """All stacks of one environment; `cdk deploy '<env>/*'` deploys exactly this stage."""

    def __init__(
        self,
        scope: Construct,
        *,
        project_name: str,
        dataset: Dataset,
        environment: EnvironmentConfig,
        delivery_account: str | None = None,
    ) -> None:
        env = Environment(account=environment.account, region=environment.region) if environment.account else None
        super().__init__(scope, environment.name, env=env)
        Tags.of(self).add(PROJECT_TAG, project_name)
        Tags.of(self).add(ENVIRONMENT_TAG, environment.name)
        names = ResourceNames(project_name, environment.name)

        self.storage = StorageStack(self, "Storage", names=names, environment=environment)
        self.pipelines = PipelinesStack(
            self, "Pipelines", names=names, dataset=dataset, environment=environment, storage=self.storage.stores
        )
        self.orchestration = OrchestrationStack(
            self,
            "Orchestration",
            names=names,
            dataset=dataset,
            environment=environment,
            stores=self.storage.stores,
            job_role=self.pipelines.roles.job_role,
            training_image_tag=self.pipelines.images.training_tag,
            model_package_group=self.pipelines.model_package_group,
            # Only a delivered non-production environment's test gates a pipeline.
            system_test_invoker_account=None if environment.production else delivery_account,
        )
        stacks: list[Stack] = [self.storage, self.pipelines, self.orchestration]
        acknowledge_stage_wide(stacks, in_vpc=environment.network is not None)
        if environment.permissions_boundary:
            apply_permissions_boundary(stacks, environment.permissions_boundary)
        if environment.network:
            place_functions_in_vpc(self, environment.network)
