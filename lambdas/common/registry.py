"""The Model Registry questions more than one Lambda asks."""

from __future__ import annotations

from typing import Any


def latest_approved_package(sagemaker: Any, group: str) -> str | None:
    """ARN of the most recently created Approved package in `group`, or None when there is none."""
    packages = sagemaker.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    )["ModelPackageSummaryList"]
    return packages[0]["ModelPackageArn"] if packages else None
