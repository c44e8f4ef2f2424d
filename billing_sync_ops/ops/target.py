"""Which billing-sync the operator tools act on: a deployed stack, or the local runtime.

`--stack-name NAME` reads the stack's outputs with the caller's AWS credentials; `--local` reads the
discovery file a running local runtime writes. Without either, a running local runtime is used when
its discovery file names a live process. Raises TargetNotFoundError (exit code 3) otherwise.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from billing_sync_ops.ops.discovery import discovery_path, process_alive, read_discovery


class TargetNotFoundError(Exception):
    """No deployed stack or local runtime could be found, or it lacks an output a command needs."""


@dataclass
class Target:
    description: str
    local: bool
    outputs: dict[str, str]
    region: str | None
    endpoint_url: str | None = None
    session: Any = None
    _clients: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.session.client(service, endpoint_url=self.endpoint_url)
        return self._clients[service]

    def output(self, name: str) -> str:
        """Raises TargetNotFoundError when the target does not declare `name`."""
        value = self.outputs.get(name)
        if not value:
            raise TargetNotFoundError(f"{self.description} has no {name} output")
        return value

    def optional_output(self, name: str) -> str | None:
        return self.outputs.get(name) or None

    @cached_property
    def caller(self) -> str:
        """Who is acting, for the audit trail: the STS caller ARN (locally, a fallback name)."""
        try:
            return str(self.client("sts").get_caller_identity()["Arn"])
        except (BotoCoreError, ClientError) as exc:
            if self.local:
                return f"local:{os.environ.get('USER', 'operator')}"
            raise TargetNotFoundError(f"cannot tell who is calling (sts get-caller-identity): {exc}") from exc


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--stack-name", help="act on this deployed CloudFormation stack (caller's AWS credentials)")
    group.add_argument("--local", action="store_true", help="act on the running local runtime (billing-sync local)")
    parser.add_argument("--region", help="AWS region of the stack (default: the caller's configured region)")


def resolve_target(args: argparse.Namespace) -> Target:
    """Raises TargetNotFoundError."""
    if getattr(args, "stack_name", None):
        return _stack_target(args.stack_name, getattr(args, "region", None))
    return _local_target(explicit=bool(getattr(args, "local", False)))


def _stack_target(stack_name: str, region: str | None) -> Target:
    session = boto3.session.Session(region_name=region)
    try:
        stacks = session.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as exc:
        raise TargetNotFoundError(f"stack {stack_name!r} not found: {exc.response['Error'].get('Message')}") from exc
    except BotoCoreError as exc:
        raise TargetNotFoundError(f"cannot describe stack {stack_name!r}: {exc}") from exc
    if not stacks:
        raise TargetNotFoundError(f"stack {stack_name!r} not found")
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stacks[0].get("Outputs", [])}
    return Target(
        description=f"stack {stack_name} ({session.region_name})",
        local=False,
        outputs=outputs,
        region=session.region_name,
        session=session,
    )


def _local_target(*, explicit: bool) -> Target:
    path = discovery_path()
    document = read_discovery()
    if document is None:
        hint = "start one with `billing-sync local serve`, or pass --stack-name NAME for a deployed stack"
        lead = "no local runtime" if explicit else "no target: pass --stack-name NAME or --local; no local runtime"
        raise TargetNotFoundError(f"{lead} (no discovery file at {path}); {hint}")
    pid = document.get("pid")
    if isinstance(pid, int) and not process_alive(pid):
        raise TargetNotFoundError(f"the local runtime in {path} (pid {pid}) is not running; start it again")
    region = document.get("region") or "us-east-1"
    # moto accepts any key; explicit dummy credentials keep a real profile away from the local endpoint.
    session = boto3.session.Session(aws_access_key_id="local", aws_secret_access_key="local", region_name=region)
    return Target(
        description=f"local runtime at {document.get('endpoint_url')}",
        local=True,
        outputs=dict(document.get("outputs") or {}),
        region=region,
        endpoint_url=document.get("endpoint_url"),
        session=session,
    )
