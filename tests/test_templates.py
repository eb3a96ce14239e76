"""Whole-template checks: snapshots, determinism, cfn-lint and the cdk-nag gate."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from aws_cdk import App
from aws_cdk import aws_s3 as s3
from conftest import ENVIRONMENTS, REPO_ROOT, cdk_context
from syrupy.extensions.json import JSONSnapshotExtension

from stacks.synth.application import build_app
from stacks.synth.config import load_config
from stacks.synth.nag import STAGE_WIDE, unacknowledged_findings


def _templates(outdir) -> dict[str, dict]:
    return {
        f"{path.parent.name}/{path.name}": json.loads(path.read_text())
        for path in sorted(outdir.glob("assembly-*/*.template.json"))
    }


@pytest.fixture
def json_snapshot(snapshot):
    return snapshot.use_extension(JSONSnapshotExtension)


def test_one_assembly_per_environment(synthesized):
    assert sorted(p.name for p in synthesized.outdir.glob("assembly-*")) == sorted(f"assembly-{e}" for e in ENVIRONMENTS)


def test_template_snapshots(synthesized, json_snapshot):
    templates = _templates(synthesized.outdir)
    assert templates, "no templates were synthesized"
    for name, template in templates.items():
        assert template == json_snapshot(name=name.replace("/", "__"))


# The SDK hashes the scripts' absolute directory with their contents (sagemaker.workflow.utilities._hash_file_or_dir):
# stable in Lambda (/var/task), a temporary directory here. The uploaded archive's contents are tested on their own.
CODE_HASH = re.compile(r"/code/[0-9a-f]{64}/")


def test_pipeline_definition_snapshots(pipeline_definitions, json_snapshot):
    """A change to a step shows up as a reviewable diff of what SageMaker receives, like the templates."""
    for environment, (_, definitions) in pipeline_definitions.items():
        for name, definition in definitions.items():
            stable = json.loads(CODE_HASH.sub("/code/<scripts-hash>/", json.dumps(definition)))
            assert stable == json_snapshot(name=f"{environment}__{name}")


# Resources that hold data, subscriptions or a fixed name, with the logical ids every environment was first
# deployed with. A new id makes CloudFormation create a second resource and delete the first (stacks/synth/logical_ids.py);
# the registration's provider function is here because a custom resource's service token cannot change.
KEPT_LOGICAL_IDS = {
    "Storage": {
        "AccessLogsBucket83982689",
        "AccessLogsBucketPolicy7F77476F",
        "ArtifactsBucket2AAC5544",
        "ArtifactsBucketPolicy852CB646",
        "DataKey17AFBB84",
        "DataKeyAliasF989EB84",
        "FeaturesBucketBFEC40D9",
        "FeaturesBucketPolicyAE597187",
        "InferenceRepositoryA326C223",
        "LogsKeyA6AB43B2",
        "LogsKeyAliasEDDECDD8",
        "RawDataBucket57F26C03",
        "RawDataBucketPolicyAAD9269B",
        "TrainingRepositoryC4752F44",
    },
    "Pipelines": {
        "ModelPackageGroup",
        "PipelineRegistration",
        "RegisterPipelinesLogsD64AABE1",
        "RegistrationProviderLogs21B114F2",
        "ResolveBatchInputsLogs36A6C423",
        "RegistrationProviderframeworkonEvent334FDBE0",
        "ImagesBuildLogsF5958BAA",
        "ImagesIsCompleteLogsFFCE5D79",
        "ImagesOnEventLogs66CAFC64",
        "ImagesProviderLogsD9F38495",
        "ImagesWaiterLogs0E1905C1",
        "CheckTrainingDataFunctionLogs53605EC6",
    },
    "Orchestration": {
        "Alerts91F83244",
        "AlertsDeadLettersWaitingDE352B52",
        "DeployEndpointErrors26289E48",
        "MonitoringDriftAlarmA61703FF",
        "MonitoringRetrainLogs5D92FCFA",
        "SystemTestCheckLogs0CB41589",
        "SystemTestLogs131CC717",
        "AlertsKey9D05DB5E",
        "AlertsPolicy425C338D",
        "DeadLettersBBF8BAAB",
        "DeadLettersPolicy05322138",
        "DeployEndpointLogsD02E0EC5",
        "Endpoint5xxErrorsF2F1F6DC",
        "EndpointModelLatencyB07AEF96",
    },
}
STATEFUL_TYPES = {
    "AWS::KMS::Key",
    "AWS::KMS::Alias",
    "AWS::S3::Bucket",
    "AWS::S3::BucketPolicy",
    "AWS::ECR::Repository",
    "AWS::SNS::Topic",
    "AWS::SNS::TopicPolicy",
    "AWS::SQS::Queue",
    "AWS::SQS::QueuePolicy",
    "AWS::Logs::LogGroup",
    "AWS::SageMaker::ModelPackageGroup",
    "Custom::SageMakerPipelines",
}


def test_stateful_and_named_resources_keep_their_logical_ids(synthesized):
    for environment in ENVIRONMENTS:
        for name, kept in KEPT_LOGICAL_IDS.items():
            resources = synthesized.template(environment, name.lower()).to_json()["Resources"]
            stateful = {
                logical_id
                for logical_id, resource in resources.items()
                if resource["Type"] in STATEFUL_TYPES
                or (resource["Type"] == "AWS::CloudWatch::Alarm" and "AlarmName" in resource["Properties"])
            }
            assert kept <= set(resources), (environment, name, sorted(kept - set(resources)))
            assert stateful <= kept, f"{environment}/{name}: new stateful resources {sorted(stateful - kept)}; add their ids here"


def test_a_second_synth_elsewhere_gives_identical_templates(synthesized, tmp_path):
    """Synth is deterministic, and asset hashes come from file contents, not from where the repository lies on disk."""
    checkout = tmp_path / "elsewhere" / "checkout"
    # What a clone holds, without asking git: CodePipeline's source artifact is a zip of the tree with no .git.
    ignored = [line.strip().rstrip("/") for line in (REPO_ROOT / ".gitignore").read_text().splitlines() if line.strip()]
    shutil.copytree(REPO_ROOT, checkout, ignore=shutil.ignore_patterns(".git", *ignored), symlinks=True)
    (checkout / ".cache").symlink_to(REPO_ROOT / ".cache")  # the downloaded wheels and built layers, as after `make setup`
    outdir = tmp_path / "out"
    script = (
        "import json, sys; from aws_cdk import App; from stacks.synth.application import build_app;"
        "from stacks.synth.config import load_config;"
        "ctx = json.load(open('cdk.json'))['context']; app = App(context=ctx, outdir=sys.argv[1]);"
        "build_app(app, load_config(ctx['mlops'])); app.synth()"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(outdir)],
        cwd=checkout,
        check=True,
        timeout=900,
        env={**__import__("os").environ, "PYTHONPATH": str(checkout)},
    )
    assert _templates(outdir) == _templates(synthesized.outdir)


# W3005 (a DependsOn made redundant by a GetAtt) comes from aws-cdk-lib itself: lambda.Function depends
# on its role and its role's policy explicitly, and so does its auto-delete provider. Harmless; the app
# cannot change it.
CDK_GENERATED_WARNINGS = [
    re.compile(
        r"W3005:'(\w+Role\w*)' dependency already enforced by a 'GetAtt' at "
        r"'Resources/\w+/Properties/(Role|RoleArn|Environment/Variables/SETTINGS/Fn::Join/\d+/\d+)'"
    )
]


def test_cfn_lint_finds_no_error_and_no_warning_of_ours(synthesized):
    files = [str(p) for p in synthesized.template_files()]
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), "--format", "parseable", *files], capture_output=True, text=True, timeout=600)
    assert result.stderr == ""
    findings = [line.split(":", 5)[5] for line in result.stdout.splitlines()]
    assert [f for f in findings if not any(p.fullmatch(f) for p in CDK_GENERATED_WARNINGS)] == []


def test_cdk_nag_reports_no_unacknowledged_finding(synthesized):
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())
    violations = [v for r in report["pluginReports"] for v in r["violations"]]
    assert violations == []


@pytest.mark.parametrize("fail_synth", [True, False], ids=["in-process", "as-the-cli-runs-it"])
def test_the_app_fails_synth_on_any_unacknowledged_finding(tmp_path, fail_synth):
    """The gate is attached to the real app: one careless bucket in a stage is named with its rule ids, whether
    aws-cdk-lib fails synth itself or the CDK CLI asks it not to (the CLI then reports no stage's findings)."""
    context = {**cdk_context(), "@aws-cdk/core:failSynthOnValidationErrors": fail_synth}
    app = App(context=context, outdir=str(tmp_path))
    stages = build_app(app, load_config(context["mlops"]))
    first = next(iter(stages))
    s3.CfnBucket(stages[first].storage, "Careless")
    if fail_synth:
        with pytest.raises(RuntimeError, match="ValidationFailed"):
            app.synth()
    else:
        app.synth()
    findings = [f.split(":")[0] for f in unacknowledged_findings(tmp_path)]
    assert {f for f in findings if f.startswith("AwsSolutions")} == {
        f"AwsSolutions-S1 {first}/Storage/Careless",
        f"AwsSolutions-S10 {first}/Storage/Careless",
    }
    assert f"NIST.800.53.R5-S3BucketSSLRequestsOnly {first}/Storage/Careless" in findings
    assert all(f.endswith(f" {first}/Storage/Careless") for f in findings)


def _acknowledgments(outdir) -> list[tuple[str, str, str]]:
    found = []
    for path in outdir.glob("assembly-*/*.metadata.json"):
        for construct, entries in json.loads(path.read_text()).items():
            for entry in entries:
                if entry["type"] == "aws:cdk:acknowledged-rules":
                    found += [(construct, rule, reason) for rule, reason in entry["data"].items()]
    return found


def test_every_acknowledgment_is_narrow_and_explained(synthesized):
    """One finding per acknowledgment, with a reason; only the reviewed rule families are acknowledged at all.

    IAM5 Action findings are the wildcard actions of aws-cdk-lib's own grant methods; IAM4 and L1 are the
    Provider framework's function, whose policy and runtime aws-cdk-lib chooses. Of the NIST 800-53 and HIPAA
    packs, the stage-wide rules are acknowledged once per stack and the others on the construct they concern.
    """
    acknowledgments = _acknowledgments(synthesized.outdir)
    assert acknowledgments
    stage_wide = "|".join(STAGE_WIDE)
    for construct, rule, reason in acknowledgments:
        assert re.fullmatch(
            r"Annotation::(AwsSolutions-(S1|SQS3|L1|CB3|SF2|IAM4\[Policy::[^\]\s]+\]|IAM5\[(Resource|Action)::\S+\])"
            rf"|(NIST\.800\.53\.R5|HIPAA\.Security)-({stage_wide}|LambdaDLQ|S3BucketReplicationEnabled|S3DefaultEncryptionKMS"
            r"|CodeBuildProjectSourceRepoUrl))",
            rule,
        ), (construct, rule)
        if re.search(rf"-({stage_wide})$", rule):
            assert re.fullmatch(r"/\w+/(Storage|Pipelines|Orchestration)", construct), (construct, rule)
        if rule.startswith(("Annotation::AwsSolutions-L1", "Annotation::AwsSolutions-IAM4")):
            assert re.search(r"/(PipelineRegistration|Images)/Provider/framework-\w+$", construct), (construct, rule)
        assert len(reason) >= 40 and reason.endswith("."), (construct, rule, reason)
    assert not [a for a in acknowledgments if a[1].endswith("[Resource::*]") and "no resource-level permissions" not in a[2]]
