"""The local runtime keeps the running balances current from the ledger's stream (moto's DynamoDB streams,
played like the stack's event source mapping into the real balances handler), and the run report's trial
balances and deferred revenue roll-forward read from them equal the figures scanned from the ledger."""

from __future__ import annotations

from pathlib import Path

import pytest

from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.demo import STRIPE_API_FIXTURES, collect_report, recognise_local, run_sequence
from billing_sync_ops.ops.revenue import load_mapping
from billing_sync_ops.report import build_report
from billing_sync_ops.runtime import LocalRuntime

pytestmark = pytest.mark.infra  # synthesises the stack the local runtime is built from


def test_running_balances_equal_the_scanned_ledger_after_the_demo_sequence() -> None:
    with LocalRuntime(work_dir=Path("build/local"), stripe_fixtures=STRIPE_API_FIXTURES) as runtime:
        # GIVEN the demo sequence posted, the workers stopped, then the recognition job posting releases
        _, drained = run_sequence(runtime)
        assert drained
        runtime.stop_workers()
        recognition = recognise_local(runtime)
        assert recognition["created"], "the demo recognises revenue, so releases post after the workers stopped"
        # WHEN the report reads the running balances, and the same report is built by scanning the ledger
        running = collect_report(runtime, recognition)
        dynamodb = runtime._session.client("dynamodb")
        outputs = runtime.stack.outputs
        scanned = build_report(
            lineage=DynamoLineageStore(dynamodb, outputs["LineageTableName"]),
            ledger=DynamoLedgerErpClient(dynamodb, outputs["LedgerTableName"]),
            accepted=runtime.accepted,
            dead_lettered=set(),
            refused=runtime.refused,
            recognition=recognition,
            mapping=load_mapping(None),
        )
    # THEN every figure agrees to the minor unit
    assert running["balances_source"] == "running"
    assert scanned["balances_source"] == "scan"
    for figure in ("documents", "balanced", "trial_balance", "functional_trial_balance", "functional_balanced"):
        assert running["ledger"][figure] == scanned["ledger"][figure], figure
    assert running["ledger"]["documents"] > 20
    assert running["deferred_revenue"] == scanned["deferred_revenue"]
    assert any(row["recognised"] for row in running["deferred_revenue"])
