"""The local environment, built from the synthesised CloudFormation template of the deployed stack.

`synthesize_template` runs the CDK app; `provision` creates in the AWS endpoint the given boto3 session
points at (moto on loopback, or anything honouring `AWS_ENDPOINT_URL`) every resource the runtime
needs, reading names, keys, queue settings, redrive policies, rules and event patterns from the
template, and describes the functions, event source mappings and API routes so a local dispatcher can
play them. Step Functions state machines are created from their definitions, with Lambda task ARNs
substituted (functions are not created in the endpoint: each gets the ARN
`arn:aws:lambda:<region>:<account>:function:<name>` the local runtime dispatches in-process). IAM,
Lambda permissions, log groups, alarms and API Gateway resources are not created.

Errors: `TemplateError` when the template is missing something the runtime needs or uses an intrinsic
function this resolver does not understand; `SynthesisError` when the CDK app fails.
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

STACK_NAME = "BillingSync"
TEMPLATE_FILE = f"{STACK_NAME}.template.json"
LOCAL_ACCOUNT_ID = "123456789012"
DEFAULT_LOCAL_WEBHOOK_SECRETS = ("whsec_local_billing_sync",)
_SYNTH_INPUTS = ("infra", "app.py", "cdk.json")


class TemplateError(Exception):
    """The template lacks something the local runtime needs, or uses an unsupported intrinsic."""


class SynthesisError(Exception):
    """The CDK app did not produce a template."""


@dataclass(frozen=True)
class LocalFunction:
    logical_id: str
    handler: str
    environment: dict[str, str]
    timeout_seconds: int
    name: str = ""  # the function name (FunctionName, else the logical id)
    arn: str = ""  # arn:aws:lambda:<region>:<account>:function:<name>
    reserved_concurrency: int | None = None  # ReservedConcurrentExecutions

    @property
    def module(self) -> str:
        """`stripe_webhook` for handler `billing_sync.handlers.stripe_webhook.lambda_handler`."""
        return self.handler.rsplit(".", 2)[-2]


@dataclass(frozen=True)
class EventSourceMapping:
    queue_url: str
    queue_arn: str
    function_logical_id: str
    batch_size: int
    report_batch_item_failures: bool
    maximum_concurrency: int | None = None


@dataclass(frozen=True)
class StreamSourceMapping:
    """A DynamoDB stream -> function mapping (the ledger's stream feeds the running balances)."""

    stream_arn: str
    function_logical_id: str
    batch_size: int
    report_batch_item_failures: bool


@dataclass(frozen=True)
class ApiRoute:
    http_method: str
    path: str
    function_logical_id: str
    # Headers API Gateway's request validator requires; it answers 400 without calling the function.
    required_headers: tuple[str, ...] = ()

    def path_parameters(self, path: str) -> dict[str, str] | None:
        """`{name: segment}` when `path` matches this route's resource path (`/events/{event_id}/lineage`), else
        None; an empty dict for a path without parameters."""
        wanted, given = self.path.strip("/").split("/"), path.strip("/").split("/")
        if len(wanted) != len(given):
            return None
        parameters: dict[str, str] = {}
        for pattern, segment in zip(wanted, given, strict=True):
            if pattern.startswith("{") and pattern.endswith("}"):
                if not segment:
                    return None
                parameters[pattern[1:-1]] = urllib.parse.unquote(segment)
            elif pattern != segment:
                return None
        return parameters


@dataclass(frozen=True)
class LocalStack:
    outputs: dict[str, str | None]
    functions: dict[str, LocalFunction]
    event_source_mappings: list[EventSourceMapping]
    api_routes: list[ApiRoute]
    queues: dict[str, str]
    tables: dict[str, str] = field(default_factory=dict)
    buckets: dict[str, str] = field(default_factory=dict)
    event_buses: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    state_machines: dict[str, str] = field(default_factory=dict)  # logical id -> state machine ARN
    stream_source_mappings: list[StreamSourceMapping] = field(default_factory=list)

    def function_for(self, module: str) -> LocalFunction:
        """The function whose handler lives in `billing_sync.handlers.<module>`; raises KeyError."""
        for function in self.functions.values():
            if function.module == module:
                return function
        raise KeyError(f"no function with handler module {module!r}")

    def route(self, http_method: str, path: str) -> ApiRoute:
        """The API route for `http_method path` (a `{name}` segment matches one path segment); raises KeyError."""
        for api_route in self.api_routes:
            if api_route.http_method == http_method.upper() and api_route.path_parameters(path) is not None:
                return api_route
        raise KeyError(f"no route {http_method} {path}")


def synthesize_template(repo_root: Path, out_dir: Path) -> dict[str, Any]:
    """Runs the CDK app into `out_dir` unless its template is newer than every CDK input; returns it.

    A state machine whose definition CDK publishes as a file asset (`DefinitionS3Location`, from
    `DefinitionBody.from_file`) gets that file's text as its `DefinitionString` in the returned template
    (the file on disk is not changed), so `provision` can create it without S3 assets.
    Raises SynthesisError when the app fails or writes no template.
    """
    repo_root = Path(repo_root).resolve()
    out_dir = Path(out_dir).resolve()
    template_path = out_dir / TEMPLATE_FILE
    if template_path.exists() and template_path.stat().st_mtime > _newest_input_mtime(repo_root):
        print(f"reusing synthesised stack {template_path}", file=sys.stderr)
    else:
        print(f"synthesising stack into {out_dir} ...", file=sys.stderr)
        result = subprocess.run(
            [sys.executable, "app.py"],
            cwd=repo_root,
            env={
                **os.environ,
                "CDK_OUTDIR": str(out_dir),
                "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
            },
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SynthesisError(f"`python app.py` failed ({result.returncode}):\n{result.stderr[-4000:]}")
        if not template_path.exists():
            raise SynthesisError(f"`python app.py` wrote no {TEMPLATE_FILE} into {out_dir}")
    return _inline_definition_assets(json.loads(template_path.read_text()), out_dir)


def _inline_definition_assets(template: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    manifest_path = out_dir / f"{STACK_NAME}.assets.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    asset_files = {
        destination.get("objectKey"): out_dir / asset["source"]["path"]
        for asset in manifest.get("files", {}).values()
        if asset.get("source", {}).get("packaging", "file") == "file" and "path" in asset.get("source", {})
        for destination in asset.get("destinations", {}).values()
    }
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        if resource.get("Type") != "AWS::StepFunctions::StateMachine" or "DefinitionS3Location" not in properties:
            continue
        key = properties["DefinitionS3Location"].get("Key")
        path = asset_files.get(key) or out_dir / f"asset.{key}"
        if isinstance(key, str) and path.is_file():
            del properties["DefinitionS3Location"]
            properties["DefinitionString"] = path.read_text()
    return template


def _newest_input_mtime(repo_root: Path) -> float:
    newest = 0.0
    for name in _SYNTH_INPUTS:
        path = repo_root / name
        candidates = path.rglob("*") if path.is_dir() else [path]
        for candidate in candidates:
            if candidate.is_file() and "__pycache__" not in candidate.parts:
                newest = max(newest, candidate.stat().st_mtime)
    return newest


def provision(
    template: Mapping[str, Any],
    *,
    session: boto3.session.Session | None = None,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    webhook_secrets: Iterable[str] = DEFAULT_LOCAL_WEBHOOK_SECRETS,
    time_scale: float = 1.0,
) -> LocalStack:
    """Creates the template's tables, queues, buses, rules, buckets, secrets and state machines; describes
    the rest.

    Clients come from `session` (default: a new one for `region`) with `endpoint_url` when given,
    otherwise boto3 honours `AWS_ENDPOINT_URL`. Existing resources of the same name are reused (a state
    machine's definition is updated). `time_scale` below 1 shortens the state machines' Retry intervals
    (IntervalSeconds, MaxDelaySeconds) and fixed Wait seconds to the local clock, in whole seconds, at
    least 1. Raises TemplateError, or botocore's ClientError when the endpoint refuses a call.
    """
    session = session or boto3.session.Session(region_name=region)

    def client(service: str) -> Any:
        return session.client(service, region_name=region, endpoint_url=endpoint_url)  # type: ignore[call-overload]

    resources: dict[str, dict[str, Any]] = dict(template.get("Resources", {}))
    resolver = _Resolver(resources, region=region, account_id=_account_id(client))
    by_type = _group_by_type(resources)

    _record_functions(by_type.get("AWS::Lambda::Function", {}), resolver, region=region)
    _create_tables(client("dynamodb"), by_type.get("AWS::DynamoDB::Table", {}), resolver)
    _create_queues(client("sqs"), by_type.get("AWS::SQS::Queue", {}), resolver)
    _create_buckets(client("s3"), by_type.get("AWS::S3::Bucket", {}), resolver, region)
    _create_topics(client("sns"), by_type.get("AWS::SNS::Topic", {}), resolver)
    _create_secrets(
        client("secretsmanager"),
        by_type.get("AWS::SecretsManager::Secret", {}),
        resolver,
        json.dumps(list(webhook_secrets)),
    )
    events = client("events")
    _create_event_buses(events, by_type.get("AWS::Events::EventBus", {}), resolver)
    _create_rules(events, by_type.get("AWS::Events::Rule", {}), resolver)
    _create_state_machines(
        client("stepfunctions"),
        by_type.get("AWS::StepFunctions::StateMachine", {}),
        resolver,
        time_scale=time_scale,
    )

    return LocalStack(
        outputs={
            output_id: resolver.try_resolve(output["Value"])
            for output_id, output in template.get("Outputs", {}).items()
        },
        functions=_functions(by_type.get("AWS::Lambda::Function", {}), resolver),
        event_source_mappings=_event_source_mappings(by_type.get("AWS::Lambda::EventSourceMapping", {}), resolver),
        api_routes=_api_routes(resources, by_type.get("AWS::ApiGateway::Method", {})),
        queues=resolver.attribute_map("AWS::SQS::Queue", "QueueUrl"),
        tables=resolver.attribute_map("AWS::DynamoDB::Table", "Ref"),
        buckets=resolver.attribute_map("AWS::S3::Bucket", "Ref"),
        event_buses=resolver.attribute_map("AWS::Events::EventBus", "Ref"),
        secrets=resolver.attribute_map("AWS::SecretsManager::Secret", "Ref"),
        state_machines=resolver.attribute_map("AWS::StepFunctions::StateMachine", "Arn"),
        stream_source_mappings=_stream_source_mappings(by_type.get("AWS::Lambda::EventSourceMapping", {}), resolver),
    )


def _account_id(client: Any) -> str:
    try:
        return str(client("sts").get_caller_identity()["Account"])
    except ClientError:
        return LOCAL_ACCOUNT_ID


def _group_by_type(resources: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    grouped: dict[str, dict[str, dict[str, Any]]] = {}
    for logical_id, resource in resources.items():
        grouped.setdefault(resource["Type"], {})[logical_id] = dict(resource)
    return grouped


def _derived_name(logical_id: str, *, max_length: int, lowercase: bool = False) -> str:
    name = f"{STACK_NAME}-{logical_id}"[:max_length]
    return name.lower() if lowercase else name


class _Resolver:
    """Resolves Ref, Fn::GetAtt, Fn::Join, Fn::Sub, Fn::Select and Fn::Split against local resources."""

    def __init__(self, resources: Mapping[str, Mapping[str, Any]], *, region: str, account_id: str):
        self._resources = resources
        self._attributes: dict[str, dict[str, str]] = {}
        self._pseudo = {
            "AWS::Region": region,
            "AWS::AccountId": account_id,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::StackName": STACK_NAME,
            "AWS::StackId": f"arn:aws:cloudformation:{region}:{account_id}:stack/{STACK_NAME}/local",
            "AWS::NoValue": "",
        }

    @property
    def account_id(self) -> str:
        return self._pseudo["AWS::AccountId"]

    @property
    def region(self) -> str:
        return self._pseudo["AWS::Region"]

    def record(self, logical_id: str, **attributes: str) -> None:
        self._attributes.setdefault(logical_id, {}).update(attributes)

    def attribute_map(self, resource_type: str, attribute: str) -> dict[str, str]:
        return {
            logical_id: attributes[attribute]
            for logical_id, attributes in self._attributes.items()
            if self._resources[logical_id]["Type"] == resource_type and attribute in attributes
        }

    def try_resolve(self, value: Any) -> Any:
        try:
            return self.resolve(value)
        except TemplateError:
            return None

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1:
            return {key: self.resolve(item) for key, item in value.items()}
        ((key, argument),) = value.items()
        if key == "Ref":
            return self._ref(argument)
        if key == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._get_att(logical_id, attribute)
        if key == "Fn::Join":
            delimiter, parts = argument
            return delimiter.join(str(part) for part in self.resolve(parts))
        if key == "Fn::Sub":
            return self._sub(argument)
        if key == "Fn::Select":
            index, items = argument
            return self.resolve(items)[int(self.resolve(index))]
        if key == "Fn::Split":
            delimiter, source = argument
            return str(self.resolve(source)).split(delimiter)
        if key.startswith("Fn::"):
            raise TemplateError(f"unsupported intrinsic {key}")
        return {key: self.resolve(argument)}

    def _ref(self, name: str) -> str:
        if name in self._pseudo:
            return self._pseudo[name]
        return self._get_att(name, "Ref")

    def _get_att(self, logical_id: str, attribute: str) -> str:
        try:
            return self._attributes[logical_id][attribute]
        except KeyError:
            resource_type = self._resources.get(logical_id, {}).get("Type", "unknown resource")
            iam_value = self._iam_attribute(logical_id, resource_type, attribute)
            if iam_value is not None:
                return iam_value
            raise TemplateError(f"{logical_id} ({resource_type}) has no local {attribute}") from None

    def _iam_attribute(self, logical_id: str, resource_type: str, attribute: str) -> str | None:
        """IAM is not provisioned locally (moto enforces no policy): a role or managed policy output still
        resolves, to the ARN an unnamed resource of this stack would get."""
        if resource_type == "AWS::IAM::ManagedPolicy" and attribute in ("Ref", "PolicyArn"):
            return f"arn:aws:iam::{self.account_id}:policy/{_derived_name(logical_id, max_length=128)}"
        if resource_type == "AWS::IAM::Role" and attribute in ("Ref", "Arn"):
            name = _derived_name(logical_id, max_length=64)
            return name if attribute == "Ref" else f"arn:aws:iam::{self.account_id}:role/{name}"
        return None

    def _sub(self, argument: str | list[Any]) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else argument
        resolved_variables = {name: self.resolve(item) for name, item in variables.items()}

        def substitute(match: re.Match[str]) -> str:
            expression = match.group(1)
            if expression.startswith("!"):
                return "${" + expression[1:] + "}"
            if expression in resolved_variables:
                return str(resolved_variables[expression])
            if "." in expression and expression not in self._pseudo:
                logical_id, attribute = expression.split(".", 1)
                return self._get_att(logical_id, attribute)
            return self._ref(expression)

        return re.sub(r"\$\{([^}]+)\}", substitute, text)


def _create_tables(dynamodb: Any, tables: Mapping[str, Mapping[str, Any]], resolver: _Resolver) -> None:
    for logical_id, resource in tables.items():
        properties = resource["Properties"]
        name = resolver.resolve(properties.get("TableName")) or _derived_name(logical_id, max_length=255)
        request: dict[str, Any] = {
            "TableName": name,
            "KeySchema": properties["KeySchema"],
            "AttributeDefinitions": properties["AttributeDefinitions"],
            "BillingMode": properties.get("BillingMode", "PROVISIONED"),
        }
        if request["BillingMode"] == "PROVISIONED":
            request["ProvisionedThroughput"] = properties["ProvisionedThroughput"]
        indexes = [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection") if key in index}
            for index in properties.get("GlobalSecondaryIndexes", [])
        ]
        if indexes:
            request["GlobalSecondaryIndexes"] = indexes
        if "StreamSpecification" in properties:
            request["StreamSpecification"] = {"StreamEnabled": True, **properties["StreamSpecification"]}
        try:
            description = dynamodb.create_table(**request)["TableDescription"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceInUseException":
                raise
            description = dynamodb.describe_table(TableName=name)["Table"]
        streams = {"StreamArn": description["LatestStreamArn"]} if description.get("LatestStreamArn") else {}
        resolver.record(logical_id, Ref=name, Arn=description["TableArn"], **streams)


def _create_queues(sqs: Any, queues: Mapping[str, Mapping[str, Any]], resolver: _Resolver) -> None:
    # Dead-letter queues first: a redrive policy needs the ARN of the queue it points at.
    pending = dict(queues)
    while pending:
        ready = {
            logical_id: resource
            for logical_id, resource in pending.items()
            if resolver.try_resolve(resource.get("Properties", {}).get("RedrivePolicy")) is not None
            or "RedrivePolicy" not in resource.get("Properties", {})
        }
        if not ready:
            raise TemplateError(f"queues with unresolvable redrive policies: {sorted(pending)}")
        for logical_id, resource in ready.items():
            _create_queue(sqs, logical_id, resource.get("Properties", {}), resolver)
            del pending[logical_id]


def _create_queue(sqs: Any, logical_id: str, properties: Mapping[str, Any], resolver: _Resolver) -> None:
    is_fifo = bool(properties.get("FifoQueue"))
    name = resolver.resolve(properties.get("QueueName")) or _derived_name(logical_id, max_length=75 if is_fifo else 80)
    if is_fifo and not name.endswith(".fifo"):
        name = f"{name}.fifo"
    attributes = {
        attribute: str(properties[attribute])
        for attribute in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "MaximumMessageSize",
            "ReceiveMessageWaitTimeSeconds",
            "FifoQueue",
            "ContentBasedDeduplication",
        )
        if attribute in properties
    }
    if "RedrivePolicy" in properties:
        attributes["RedrivePolicy"] = json.dumps(resolver.resolve(properties["RedrivePolicy"]))
    url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    resolver.record(logical_id, Ref=url, QueueUrl=url, Arn=arn, QueueName=name)


def _create_topics(sns: Any, topics: Mapping[str, Mapping[str, Any]], resolver: _Resolver) -> None:
    """The alarm topic exists locally too, so the stack's outputs resolve (nothing publishes to it here)."""
    for logical_id, resource in topics.items():
        name = resolver.resolve(resource.get("Properties", {}).get("TopicName")) or _derived_name(
            logical_id, max_length=256
        )
        arn = sns.create_topic(Name=name)["TopicArn"]
        resolver.record(logical_id, Ref=arn, TopicArn=arn, TopicName=name)


def _create_buckets(s3: Any, buckets: Mapping[str, Mapping[str, Any]], resolver: _Resolver, region: str) -> None:
    for logical_id, resource in buckets.items():
        properties = resource.get("Properties", {})
        name = resolver.resolve(properties.get("BucketName")) or _derived_name(
            logical_id, max_length=63, lowercase=True
        )
        request: dict[str, Any] = {"Bucket": name}
        if region != "us-east-1":
            request["CreateBucketConfiguration"] = {"LocationConstraint": region}
        object_lock = properties.get("ObjectLockConfiguration")
        if properties.get("ObjectLockEnabled") is True:
            request["ObjectLockEnabledForBucket"] = True
        created = True
        try:
            s3.create_bucket(**request)
        except ClientError as error:
            if error.response["Error"]["Code"] not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise
            created = False
        if properties.get("VersioningConfiguration", {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        # A default retention applies only to a new, empty bucket; a reused one keeps what it has.
        if created and object_lock and "ObjectLockEnabledForBucket" in request:
            s3.put_object_lock_configuration(Bucket=name, ObjectLockConfiguration=object_lock)
        resolver.record(logical_id, Ref=name, Arn=f"arn:aws:s3:::{name}", DomainName=f"{name}.s3.amazonaws.com")


def _create_secrets(
    secretsmanager: Any, secrets: Mapping[str, Mapping[str, Any]], resolver: _Resolver, value: str
) -> None:
    for logical_id, resource in secrets.items():
        properties = resource.get("Properties", {})
        name = resolver.resolve(properties.get("Name")) or _derived_name(logical_id, max_length=512)
        try:
            arn = secretsmanager.create_secret(Name=name, SecretString=value)["ARN"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceExistsException":
                raise
            arn = secretsmanager.put_secret_value(SecretId=name, SecretString=value)["ARN"]
        resolver.record(logical_id, Ref=arn, Id=arn, Name=name)


def _create_event_buses(events: Any, buses: Mapping[str, Mapping[str, Any]], resolver: _Resolver) -> None:
    for logical_id, resource in buses.items():
        name = resolver.resolve(resource["Properties"]["Name"])
        try:
            arn = events.create_event_bus(Name=name)["EventBusArn"]
        except ClientError as error:
            if error.response["Error"]["Code"] != "ResourceAlreadyExistsException":
                raise
            arn = events.describe_event_bus(Name=name)["Arn"]
        resolver.record(logical_id, Ref=name, Name=name, Arn=arn)


def _create_rules(events: Any, rules: Mapping[str, Mapping[str, Any]], resolver: _Resolver) -> None:
    """Rules on local buses with their SQS targets; rules on buses outside the stack are skipped."""
    local_buses = set(resolver.attribute_map("AWS::Events::EventBus", "Ref").values())
    local_queue_arns = set(resolver.attribute_map("AWS::SQS::Queue", "Arn").values())
    for logical_id, resource in rules.items():
        properties = resource["Properties"]
        bus_name = resolver.try_resolve(properties.get("EventBusName", "default"))
        if bus_name not in local_buses or "EventPattern" not in properties:
            continue
        rule_name = resolver.resolve(properties.get("Name")) or _derived_name(logical_id, max_length=64)
        events.put_rule(
            Name=rule_name,
            EventBusName=bus_name,
            EventPattern=json.dumps(resolver.resolve(properties["EventPattern"])),
            State=properties.get("State", "ENABLED"),
        )
        targets = [
            {"Id": target["Id"], "Arn": arn}
            for target in properties.get("Targets", [])
            if (arn := resolver.try_resolve(target["Arn"])) in local_queue_arns
        ]
        if targets:
            events.put_targets(Rule=rule_name, EventBusName=bus_name, Targets=targets)
        resolver.record(logical_id, Ref=rule_name)


def scaled_seconds(seconds: float, time_scale: float) -> int:
    """A template duration on the local clock, in whole seconds (SQS takes no fractions), at least 1."""
    return max(1, math.ceil(seconds * time_scale - 1e-9))


def _record_functions(functions: Mapping[str, Mapping[str, Any]], resolver: _Resolver, *, region: str) -> None:
    """Functions are not created in the endpoint; each gets a name and ARN that state machines and
    environments resolve to, and that the local runtime dispatches in-process."""
    for logical_id, resource in functions.items():
        name = resolver.try_resolve(resource.get("Properties", {}).get("FunctionName")) or logical_id
        arn = f"arn:aws:lambda:{region}:{resolver.account_id}:function:{name}"
        resolver.record(logical_id, Ref=name, Arn=arn)


def _functions(functions: Mapping[str, Mapping[str, Any]], resolver: _Resolver) -> dict[str, LocalFunction]:
    described = {}
    for logical_id, resource in functions.items():
        properties = resource["Properties"]
        variables = properties.get("Environment", {}).get("Variables", {})
        described[logical_id] = LocalFunction(
            logical_id=logical_id,
            handler=properties["Handler"],
            environment={name: str(resolver.resolve(value)) for name, value in variables.items()},
            timeout_seconds=int(properties.get("Timeout", 3)),
            name=resolver.resolve({"Ref": logical_id}),
            arn=resolver.resolve({"Fn::GetAtt": [logical_id, "Arn"]}),
            reserved_concurrency=_optional_int(resolver.try_resolve(properties.get("ReservedConcurrentExecutions"))),
        )
    return described


def _optional_int(value: Any) -> int | None:
    return int(value) if isinstance(value, int | str) and str(value).isdigit() else None


def _create_state_machines(
    sfn: Any, machines: Mapping[str, Mapping[str, Any]], resolver: _Resolver, *, time_scale: float
) -> None:
    for logical_id, resource in machines.items():
        properties = resource.get("Properties", {})
        name = resolver.resolve(properties.get("StateMachineName")) or _derived_name(logical_id, max_length=80)
        definition = _state_machine_definition(logical_id, properties, resolver)
        if time_scale < 1:
            _scale_durations(definition, time_scale)
        role_arn = resolver.try_resolve(properties.get("RoleArn")) or (
            f"arn:aws:iam::{resolver.account_id}:role/{_derived_name(logical_id, max_length=64)}"
        )
        request = {"definition": json.dumps(definition), "roleArn": role_arn}
        try:
            arn = sfn.create_state_machine(name=name, type=properties.get("StateMachineType", "STANDARD"), **request)[
                "stateMachineArn"
            ]
        except ClientError as error:
            if error.response["Error"]["Code"] != "StateMachineAlreadyExists":
                raise
            arn = f"arn:aws:states:{resolver.region}:{resolver.account_id}:stateMachine:{name}"
            sfn.update_state_machine(stateMachineArn=arn, **request)
        resolver.record(logical_id, Ref=arn, Arn=arn, Name=name)


def _state_machine_definition(logical_id: str, properties: Mapping[str, Any], resolver: _Resolver) -> dict[str, Any]:
    """The definition as JSON, with intrinsics resolved and DefinitionSubstitutions applied."""
    if "Definition" in properties:
        text = json.dumps(resolver.resolve(properties["Definition"]))
    elif "DefinitionString" in properties:
        text = str(resolver.resolve(properties["DefinitionString"]))
    else:
        raise TemplateError(f"state machine {logical_id} has no inline definition (DefinitionS3Location is not read)")
    substitutions = {
        name: str(resolver.resolve(value)) for name, value in properties.get("DefinitionSubstitutions", {}).items()
    }
    if substitutions:
        text = re.sub(r"\$\{([^}]+)\}", lambda match: substitutions.get(match.group(1), match.group(0)), text)
    if unresolved := sorted(set(re.findall(r"\$\{([A-Za-z0-9_]+)\}", text))):
        raise TemplateError(f"state machine {logical_id} has unsubstituted {', '.join(unresolved)}")
    try:
        definition = json.loads(text)
    except ValueError as exc:
        raise TemplateError(f"state machine {logical_id}: the definition is not JSON: {exc}") from None
    if not isinstance(definition, dict):
        raise TemplateError(f"state machine {logical_id}: the definition is not a JSON object")
    return definition


def _scale_durations(node: Any, time_scale: float) -> None:
    """Retry intervals and fixed Wait seconds on the local clock, everywhere (branches and maps too)."""
    if isinstance(node, list):
        for item in node:
            _scale_durations(item, time_scale)
        return
    if not isinstance(node, dict):
        return
    for retrier in node.get("Retry", []) if isinstance(node.get("Retry"), list) else []:
        retrier["IntervalSeconds"] = scaled_seconds(retrier.get("IntervalSeconds", 1), time_scale)
        if "MaxDelaySeconds" in retrier:
            retrier["MaxDelaySeconds"] = scaled_seconds(retrier["MaxDelaySeconds"], time_scale)
    if node.get("Type") == "Wait" and isinstance(node.get("Seconds"), int | float):
        node["Seconds"] = scaled_seconds(node["Seconds"], time_scale)
    for value in node.values():
        _scale_durations(value, time_scale)


def _function_logical_id(reference: Any) -> str:
    if isinstance(reference, dict) and "Ref" in reference:
        return str(reference["Ref"])
    if isinstance(reference, dict) and "Fn::GetAtt" in reference:
        return str(reference["Fn::GetAtt"][0])
    raise TemplateError(f"cannot tell which function {reference!r} names")


def _event_source_mappings(mappings: Mapping[str, Mapping[str, Any]], resolver: _Resolver) -> list[EventSourceMapping]:
    queue_urls_by_arn = {
        arn: resolver.attribute_map("AWS::SQS::Queue", "QueueUrl")[logical_id]
        for logical_id, arn in resolver.attribute_map("AWS::SQS::Queue", "Arn").items()
    }
    described = []
    for resource in mappings.values():
        properties = resource["Properties"]
        queue_arn = resolver.try_resolve(properties.get("EventSourceArn"))
        if queue_arn not in queue_urls_by_arn:
            continue
        described.append(
            EventSourceMapping(
                queue_url=queue_urls_by_arn[queue_arn],
                queue_arn=queue_arn,
                function_logical_id=_function_logical_id(properties["FunctionName"]),
                batch_size=int(properties.get("BatchSize", 10)),
                report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
                maximum_concurrency=properties.get("ScalingConfig", {}).get("MaximumConcurrency"),
            )
        )
    return described


def _stream_source_mappings(
    mappings: Mapping[str, Mapping[str, Any]], resolver: _Resolver
) -> list[StreamSourceMapping]:
    stream_arns = set(resolver.attribute_map("AWS::DynamoDB::Table", "StreamArn").values())
    described = []
    for resource in mappings.values():
        properties = resource["Properties"]
        stream_arn = resolver.try_resolve(properties.get("EventSourceArn"))
        if stream_arn not in stream_arns:
            continue
        described.append(
            StreamSourceMapping(
                stream_arn=stream_arn,
                function_logical_id=_function_logical_id(properties["FunctionName"]),
                batch_size=int(properties.get("BatchSize", 100)),
                report_batch_item_failures="ReportBatchItemFailures" in properties.get("FunctionResponseTypes", []),
            )
        )
    return described


def _api_routes(resources: Mapping[str, Mapping[str, Any]], methods: Mapping[str, Mapping[str, Any]]) -> list[ApiRoute]:
    routes = []
    for resource in methods.values():
        properties = resource["Properties"]
        integration = properties.get("Integration", {})
        function_id = _integrated_function(resources, integration.get("Uri"))
        if function_id is None:
            continue
        routes.append(
            ApiRoute(
                http_method=properties["HttpMethod"].upper(),
                path=_resource_path(resources, properties["ResourceId"]),
                function_logical_id=function_id,
                required_headers=_validated_headers(resources, properties),
            )
        )
    return routes


def _validated_headers(resources: Mapping[str, Mapping[str, Any]], method: Mapping[str, Any]) -> tuple[str, ...]:
    validator_id = method.get("RequestValidatorId", {}).get("Ref")
    validator = resources.get(validator_id, {}).get("Properties", {}) if validator_id else {}
    if not validator.get("ValidateRequestParameters"):
        return ()
    prefix = "method.request.header."
    return tuple(
        sorted(
            name.removeprefix(prefix)
            for name, required in method.get("RequestParameters", {}).items()
            if name.startswith(prefix) and required is True
        )
    )


def _integrated_function(resources: Mapping[str, Mapping[str, Any]], uri: Any) -> str | None:
    if isinstance(uri, dict):
        if "Fn::GetAtt" in uri:
            logical_id = uri["Fn::GetAtt"][0]
            if resources.get(logical_id, {}).get("Type") == "AWS::Lambda::Function":
                return str(logical_id)
        for value in uri.values():
            if (found := _integrated_function(resources, value)) is not None:
                return found
    if isinstance(uri, list):
        for value in uri:
            if (found := _integrated_function(resources, value)) is not None:
                return found
    return None


def _resource_path(resources: Mapping[str, Mapping[str, Any]], resource_id: Any) -> str:
    parts: list[str] = []
    while isinstance(resource_id, dict) and "Ref" in resource_id:
        api_resource = resources[resource_id["Ref"]]
        if api_resource["Type"] != "AWS::ApiGateway::Resource":
            raise TemplateError(f"{resource_id['Ref']} is not an API Gateway resource")
        parts.append(api_resource["Properties"]["PathPart"])
        resource_id = api_resource["Properties"]["ParentId"]
    if not (isinstance(resource_id, dict) and "Fn::GetAtt" in resource_id):
        raise TemplateError(f"cannot walk API resource parent {resource_id!r}")
    return "/" + "/".join(reversed(parts))
