"""Workflows on Step Functions: start a saga by name; a duplicate start of one execution name is a no-op."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.aws.errors import error_code
from billing_sync.domain.errors import PublishError


class StepFunctionsWorkflows:
    def __init__(self, client: Any, state_machines: Mapping[str, str], *, execution_input: Mapping[str, Any]) -> None:
        """`state_machines` maps a workflow name to its state machine ARN; `execution_input` is merged into
        every execution's input (the saga's wait settings)."""
        self._client = client
        self._state_machines = dict(state_machines)
        self._input = dict(execution_input)

    def start(self, workflow: str, *, name: str, event: dict[str, Any]) -> bool:
        arn = self._state_machines.get(workflow)
        if arn is None:
            raise PublishError(f"no state machine configured for workflow {workflow}")
        execution_input = {**self._input, "event": event, "name": name, "waits": {"count": 0}}
        try:
            self._client.start_execution(stateMachineArn=arn, name=name[:80], input=json.dumps(execution_input))
        except ClientError as exc:
            if error_code(exc) == "ExecutionAlreadyExists":
                return False
            raise PublishError(f"could not start {workflow} execution {name}: {exc}") from exc
        except BotoCoreError as exc:
            raise PublishError(f"could not start {workflow} execution {name}: {exc}") from exc
        return True
