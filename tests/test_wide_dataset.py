"""A dataset of thirty features, synthesized as a user's app would be: compliance-clean and deployable."""

from __future__ import annotations

import rehearsal
from aws_strict import Assembly
from conftest import NONPRODUCTION, cdk_context, synthesize

FEATURES = 30


def test_thirty_features_synthesize_clean_and_fit_lambdas_environment_limit(tmp_path):
    """Over ten features the drift alarm is a composite of member alarms (tests/test_orchestration.py); the members
    notify nobody themselves, which the compliance packs must accept, and the register function's settings carry
    the whole dataset block, which must stay within Lambda's 4 KB of environment variables."""
    context = cdk_context()
    mlops = context["mlops"]
    mlops["dataset"] = {
        "target": "churned",
        "problem_type": "binary",
        "features": [{"name": f"customer_feature_{index:02d}", "type": "numeric"} for index in range(FEATURES)],
    }
    mlops["quality_gate"] = {"metric": "auc", "threshold": 0.8}
    mlops["environments"] = {NONPRODUCTION: mlops["environments"].get(NONPRODUCTION, {"production": False})}
    synthesize(context, tmp_path)  # fails on any unacknowledged finding of the three packs
    assembly = Assembly(tmp_path / f"assembly-{NONPRODUCTION}")
    functions = rehearsal.functions(assembly, tmp_path)
    assert [p for f in functions.values() for p in rehearsal.configuration_problems(f)] == []
    members = [r for _, _, r in assembly.resources("AWS::CloudWatch::Alarm") if "-data-drift-" in r["Properties"]["AlarmName"]]
    assert len(members) == 3 and len(list(assembly.resources("AWS::CloudWatch::CompositeAlarm"))) == 1
