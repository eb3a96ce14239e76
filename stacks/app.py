"""Builds the whole app from validated configuration; shared by app.py and the tests."""

from __future__ import annotations

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from stacks.config import ProjectConfig
from stacks.stage import MlopsStage


def build_app(app: App, config: ProjectConfig) -> dict[str, MlopsStage]:
    """Add one stage per environment and the cdk-nag AwsSolutions checks to `app`."""
    stages = {
        environment.name: MlopsStage(app, project_name=config.project_name, environment=environment)
        for environment in config.environments
    }
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return stages
