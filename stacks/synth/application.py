"""Builds the whole app from validated configuration; shared by app.py and the tests."""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks

from stacks.delivery import DeliveryProps, DeliveryStack
from stacks.stage import MlopsStage
from stacks.synth.config import ProjectConfig


def build_app(app: App, config: ProjectConfig) -> dict[str, MlopsStage]:
    """Add one stage per environment, the delivery pipeline when configured, and the cdk-nag checks."""
    delivery = config.delivery
    stages = {
        environment.name: MlopsStage(
            app,
            project_name=config.project_name,
            dataset=config.dataset,
            environment=environment,
            delivery_account=delivery.account if delivery and environment.name in delivery.environments else None,
        )
        for environment in config.environments
    }
    if delivery:
        DeliveryStack(
            app,
            "Delivery",
            props=DeliveryProps(
                project_name=config.project_name, delivery=delivery, environments=config.environments, stages=stages
            ),
        )
    # AwsSolutions, and the packs a security reviewer runs: NIST 800-53 rev. 5 and HIPAA Security.
    Validations.of(app).add_plugins(AwsSolutionsChecks(app), NIST80053R5Checks(app), HIPAASecurityChecks(app))
    return stages
