"""What moto lacks of SageMaker's monitoring API, answered as the API reference documents it.

botocore has validated (strictly) and serialized each request before these answer it, so a request that
AWS would reject fails here as well. moto accepts a second job definition of the same name; SageMaker
answers ResourceInUse, and so does this.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError
from conftest import ACCOUNT, REGION


def client_error(operation: str, code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": 400}}, operation)


def _ok(body: dict) -> tuple[AWSResponse, dict]:
    return AWSResponse(url=None, status_code=200, headers={}, raw=None), body


class MonitoringSchedules:
    """Monitoring schedules in memory; job definitions stay with moto, with SageMaker's duplicate-name check."""

    def __init__(self) -> None:
        self.schedules: dict[str, dict] = {}
        self.definitions: set[str] = set()
        self.calls: list[tuple[str, dict]] = []

    def install(self, events) -> None:
        for operation in ("Create", "Update", "Describe", "Delete"):
            events.register(f"before-call.sagemaker.{operation}MonitoringSchedule", self._answer)
        events.register("before-call.sagemaker.CreateDataQualityJobDefinition", self._create_definition)
        events.register("before-call.sagemaker.DeleteDataQualityJobDefinition", self._delete_definition)

    def _create_definition(self, model, params, **kwargs):
        name = json.loads(params["body"])["JobDefinitionName"]
        if name in self.definitions:
            raise client_error(model.name, "ResourceInUse", f"Job definition {name} already exists.")
        self.definitions.add(name)
        return None

    def _delete_definition(self, model, params, **kwargs):
        name = json.loads(params["body"])["JobDefinitionName"]
        if any(s["MonitoringScheduleConfig"]["MonitoringJobDefinitionName"] == name for s in self.schedules.values()):
            raise client_error(model.name, "ResourceInUse", f"Job definition {name} is used by a monitoring schedule.")
        self.definitions.discard(name)
        return None

    def _answer(self, model, params, **kwargs):
        request = json.loads(params["body"])
        operation, name = model.name, request["MonitoringScheduleName"]
        self.calls.append((operation, request))
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:monitoring-schedule/{name}"
        existing = self.schedules.get(name)
        if operation == "CreateMonitoringSchedule":
            if existing:
                raise client_error(operation, "ResourceInUse", f"Monitoring schedule {arn} already exists.")
            self._check_definition(operation, request)
            now = datetime.now(UTC)
            self.schedules[name] = {
                "MonitoringScheduleArn": arn,
                "MonitoringScheduleName": name,
                "MonitoringScheduleStatus": "Scheduled",
                "MonitoringType": request["MonitoringScheduleConfig"]["MonitoringType"],
                "CreationTime": now,
                "LastModifiedTime": now,
                "MonitoringScheduleConfig": request["MonitoringScheduleConfig"],
            }
            return _ok({"MonitoringScheduleArn": arn})
        if existing is None:
            raise client_error(operation, "ResourceNotFound", f"Monitoring schedule {arn} does not exist.")
        if operation == "DescribeMonitoringSchedule":
            return _ok(existing)
        if operation == "UpdateMonitoringSchedule":
            self._check_definition(operation, request)
            existing.update(MonitoringScheduleConfig=request["MonitoringScheduleConfig"], LastModifiedTime=datetime.now(UTC))
            return _ok({"MonitoringScheduleArn": arn})
        del self.schedules[name]
        return _ok({})

    def _check_definition(self, operation: str, request: dict) -> None:
        definition = request["MonitoringScheduleConfig"].get("MonitoringJobDefinitionName")
        if definition not in self.definitions:
            raise client_error(operation, "ResourceNotFound", f"Job definition {definition} does not exist.")
