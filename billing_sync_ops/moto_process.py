"""moto in a process of its own: the AWS endpoint of the local runtime.

The handlers, the pollers and moto are all Python; in one process they would take turns on one
interpreter lock, and moto's own work (DynamoDB expressions and transactions above all) is most of the
local runtime's CPU time. In its own process moto runs on another core.

The child is forked (it starts from the runtime's interpreter, not a fresh one), serves
`ThreadedMotoServer` on 127.0.0.1 and a free port, and executes state machines
(`execute_state_machine`), whose Lambda tasks go to `lambda_endpoint`, the runtime's local Lambda
service, which runs the real handlers. The child ignores SIGINT and SIGTERM (after a Ctrl-C `local
serve` still drains through it) and exits when told to, when its parent closes the pipe, or when its
parent is gone.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
import signal
from multiprocessing.connection import Connection
from typing import Any

_READY_SECONDS = 120  # moto's first import on a busy machine
_PARENT_CHECK_SECONDS = 1.0


class MotoProcess:
    """`start()` forks moto's server; `endpoint_url` and `pid` tell where it is; `stop()` ends it.

    Raises RuntimeError from `start()` when the child does not come up (nothing is left running).
    """

    def __init__(self, *, lambda_endpoint: str | None = None) -> None:
        self._lambda_endpoint = lambda_endpoint
        self._process: Any = None
        self._connection: Connection | None = None
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> MotoProcess:
        context = multiprocessing.get_context("fork")
        self._connection, child_end = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(child_end, self._lambda_endpoint),
            name="billing-sync-moto",
            daemon=True,
        )
        self._process.start()
        child_end.close()
        try:
            if not self._connection.poll(_READY_SECONDS):
                raise RuntimeError(f"moto did not start within {_READY_SECONDS} s")
            status, detail = self._connection.recv()
        except BaseException:
            self.stop()
            raise
        if status != "ready":
            self.stop()
            raise RuntimeError(f"moto did not start: {detail}")
        self.port = int(detail)
        return self

    def stop(self, timeout_seconds: float = 10) -> None:
        """Asks the child to stop and kills it when it has not within `timeout_seconds`; a no-op once stopped."""
        if self._process is None:
            return
        if self._connection is not None:
            with contextlib.suppress(OSError):
                self._connection.send("stop")
            self._connection.close()
            self._connection = None
        stop_child(self._process, timeout_seconds)
        self._process = None


def ignore_stop_signals() -> None:
    """A child of the runtime stops when the runtime tells it to: Ctrl-C or SIGTERM sent to the whole
    process group would otherwise end it while `local serve` drains through it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def stop_child(process: Any, timeout_seconds: float) -> None:
    """Waits for a multiprocessing child to exit, then kills it (it ignores SIGTERM); reaps it."""
    process.join(timeout_seconds)
    if process.is_alive():
        process.kill()
        process.join()
    process.close()


def _serve(connection: Connection, lambda_endpoint: str | None) -> None:
    ignore_stop_signals()
    parent = os.getppid()
    try:
        from moto.core.config import default_user_config
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)
        default_user_config.setdefault("stepfunctions", {})["execute_state_machine"] = True
        if lambda_endpoint is not None:
            _send_lambda_tasks(lambda_endpoint)
        one_snapshot_per_transaction()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        port = server.get_host_and_port()[1]
    except BaseException as exc:
        connection.send(("error", repr(exc)))
        return
    connection.send(("ready", port))
    try:
        while True:
            if connection.poll(_PARENT_CHECK_SECONDS):
                try:
                    if connection.recv() == "stop":
                        break
                except EOFError:
                    break
            elif os.getppid() != parent:
                break
    finally:
        server.stop()


def _send_lambda_tasks(lambda_endpoint: str) -> None:
    """moto's interpreter gets its Lambda client from `lambda_eval_utils.boto_client_for`; every task's
    invoke goes to the runtime's Lambda service (moto's Lambda backend holds no function of the stack)."""
    import boto3
    from botocore.config import Config
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    original = lambda_eval_utils.boto_client_for
    # A task runs as long as its function may (up to Lambda's 900 s); the state machine's Retry retries.
    config = Config(read_timeout=900, connect_timeout=10, retries={"total_max_attempts": 1})

    @functools.cache
    def lambda_client(region: str) -> Any:
        return boto3.session.Session().client(
            "lambda",
            region_name=region,
            endpoint_url=lambda_endpoint,
            aws_access_key_id="local",
            aws_secret_access_key="local",
            config=config,
        )

    def boto_client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        if service != "lambda":
            return original(region=region, service=service, state_credentials=state_credentials)
        return lambda_client(region)

    lambda_eval_utils.boto_client_for = boto_client_for


def one_snapshot_per_transaction() -> None:
    """moto's TransactWriteItems deep-copies a table once per item of the transaction (its rollback
    snapshot), all before the first write; the copies are identical, so one per table is taken. The
    running balances apply each ledger document in one transaction of several items on a table that grows
    with every document: without this, those copies were a fifth of moto's time in `local serve`."""
    import copy
    import threading

    from moto.dynamodb import models

    local = threading.local()

    class SnapshotOnce:
        def __getattr__(self, name: str) -> Any:
            return getattr(copy, name)

        @staticmethod
        def deepcopy(value: Any, memo: Any = None) -> Any:
            snapshots: dict[int, Any] | None = getattr(local, "snapshots", None)
            if snapshots is None or not isinstance(value, models.Table):
                return copy.deepcopy(value, memo)
            if id(value) not in snapshots:
                snapshots[id(value)] = copy.deepcopy(value)
            return snapshots[id(value)]

    transact_write_items = models.DynamoDBBackend.transact_write_items

    def snapshot_once(backend: Any, transact_items: list[dict[str, Any]]) -> None:
        local.snapshots = {}
        try:
            transact_write_items(backend, transact_items)
        finally:
            local.snapshots = None

    models.copy = SnapshotOnce()  # type: ignore[assignment]
    models.DynamoDBBackend.transact_write_items = snapshot_once  # type: ignore[method-assign,assignment]


def partition_queries() -> None:
    """moto's Query on a table's own key reads every item of the table (`Table.all_items()`, sorted) to keep
    one partition. In a long soak the waiting room holds thousands of items and every release queries it,
    and the ledger holds ten thousand documents that each payout's matching queries by reference index, so
    the run slowed as the tables grew. Here a query on the table's key reads its partition by hash key, and
    a query on an index sorts only the items whose attributes equal its hash key conditions (moto keeps
    exactly those): the same results in the same order."""
    import inspect
    import threading

    from moto.dynamodb.models.table import Table

    local = threading.local()
    all_items = Table.all_items
    query = Table.query
    signature = inspect.signature(query)

    def partition_items(self: Any) -> Any:
        conditions = getattr(local, "index_conditions", None)
        if conditions:
            matching = [
                item
                for hash_set in self.items.values()
                for item in (hash_set.values() if self.range_key_attr else [hash_set])
                if all((found := item.attrs.get(name)) and found == value for name, value in conditions)
            ]
            return sorted(matching, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)
        hash_key = getattr(local, "hash_key", None)
        if hash_key is None:
            return all_items(self)
        held = self.items.get(hash_key)
        if held is None:
            return []
        items = list(held.values()) if self.range_key_attr else [held]
        return sorted(items, key=lambda x: (x.hash_key, x.range_key) if x.range_key else x.hash_key)

    def query_partition(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs).arguments
        if bound.get("index_name") is not None:
            local.index_conditions = bound.get("hash_key_conditions")
            try:
                return query(self, *args, **kwargs)
            finally:
                local.index_conditions = None
        if bound.get("hash_key") is None:
            return query(self, *args, **kwargs)
        local.hash_key = bound["hash_key"]
        try:
            return query(self, *args, **kwargs)
        finally:
            local.hash_key = None

    Table.all_items = partition_items  # type: ignore[method-assign]
    Table.query = query_partition  # type: ignore[method-assign]
