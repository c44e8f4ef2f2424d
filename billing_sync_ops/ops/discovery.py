"""Where a running local runtime tells the operator tools how to reach it.

The runtime writes one JSON file while it runs and removes it when it stops:

    {"endpoint_url": "http://127.0.0.1:<moto port>", "region": "us-east-1",
     "outputs": {"ExceptionQueueUrl": ..., "ExceptionTableName": ..., "LineageTableName": ...,
                 "LedgerTableName": ..., "PostingQueueUrl": ..., "RawArchiveBucketName": ...,
                 "BillingBusName": ..., ...every other stack output},
     "pid": <process id of the runtime>, "webhook_url": "http://127.0.0.1:<port>/webhooks/stripe"}

The path is `build/local/runtime.json` under the repository root, or `$BILLING_SYNC_LOCAL_STATE`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

DISCOVERY_ENV = "BILLING_SYNC_LOCAL_STATE"
_REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DISCOVERY_PATH = _REPO_ROOT / "build" / "local" / "runtime.json"


def discovery_path() -> Path:
    override = os.environ.get(DISCOVERY_ENV)
    return Path(override) if override else DEFAULT_DISCOVERY_PATH


def write_discovery(runtime: Any, *, extra_outputs: Mapping[str, str] | None = None) -> Path:
    """Writes the discovery file of a started LocalRuntime (atomically) and returns its path.

    `extra_outputs` adds or overrides outputs the synthesised stack does not declare. Raises OSError.
    """
    outputs = {name: value for name, value in runtime.stack.outputs.items() if value is not None}
    outputs.update(extra_outputs or {})
    document = {
        "endpoint_url": runtime.sqs.meta.endpoint_url,
        "region": runtime.sqs.meta.region_name,
        "outputs": outputs,
        "pid": os.getpid(),
        "webhook_url": runtime.webhook_url,
    }
    path = discovery_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".json.tmp")
    partial.write_text(json.dumps(document, indent=2, sort_keys=True))
    partial.replace(path)
    return path


def remove_discovery() -> None:
    """Removes the discovery file when this process wrote it; another runtime's file is left alone."""
    path = discovery_path()
    try:
        if json.loads(path.read_text()).get("pid") not in (None, os.getpid()):
            return
    except (OSError, ValueError):
        pass
    path.unlink(missing_ok=True)


def read_discovery() -> dict[str, Any] | None:
    """The discovery document, or None when there is no readable file."""
    try:
        document = json.loads(discovery_path().read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) else None


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
