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


def data_quality_baseline(package: dict) -> tuple[str, str] | None:
    """(statistics, constraints) S3 URIs of a DescribeModelPackage answer's drift-check baseline, or None.

    The training pipeline registers them as DriftCheckBaselines.ModelDataQuality; packages registered
    before it did have none.
    """
    baseline = (package.get("DriftCheckBaselines") or {}).get("ModelDataQuality") or {}
    statistics = (baseline.get("Statistics") or {}).get("S3Uri")
    constraints = (baseline.get("Constraints") or {}).get("S3Uri")
    return (statistics, constraints) if statistics and constraints else None
