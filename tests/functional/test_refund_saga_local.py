"""The refund saga under the local runtime: moto's Step Functions interpreter runs the real definition,
its tasks run the real handler in-process, and the history shows the path each refund took."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from billing_sync import composition
from billing_sync.aws.exception_store import DynamoExceptionStore
from billing_sync.domain import accounting
from billing_sync.domain.errors import ErpRejectedError
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.lineage import LineageStatus
from billing_sync.domain.refunds import RefundSaga
from billing_sync.erp.ledger import DynamoLedgerErpClient
from billing_sync.state.dynamo import DynamoLineageStore
from billing_sync_ops.demo import EVENTS_DIR, post_webhook
from billing_sync_ops.report import entered_states
from billing_sync_ops.runtime import LocalRuntime
from billing_sync_ops.signing import sign_stripe_payload
from tests.builders import load_event

pytestmark = pytest.mark.infra  # synthesises the stack the local runtime is built from

SOURCE = "stripe"
BOOKED_WITH_CREDIT_MEMO = [
    "LoadDependencies",
    "DependenciesPosted",
    "CreditMemoNeeded",
    "CreateCreditMemo",
    "CreateRefund",
    "RecordLineage",
    "Booked",
]
# What the upgrade invoice's card payment (pi_3wnmWZ..., 16075, refunded in full) needs to post.
UPGRADE_PAYMENT = (
    "stripe_customer_created_lifecycle",
    "stripe_product_created",
    "stripe_price_created",
    "stripe_product_created_services",
    "stripe_price_created_setup_fee",
    "stripe_customer_subscription_created_lifecycle",
    "stripe_customer_subscription_updated_upgrade",
    "stripe_invoice_finalized_proration_upgrade",
    "stripe_invoice_payment_paid_first",
)
# What the Acme invoice's payment (pi_3Q4Syi..., 41623, refunded in part) needs to post.
ACME_PAYMENT = (
    "stripe_customer_created",
    "stripe_product_created_growth_plan",
    "stripe_price_created_growth_plan",
    "stripe_product_created_onboarding",
    "stripe_price_created_onboarding",
    "stripe_invoice_finalized",
    "stripe_invoice_payment_paid",
)


@dataclass
class SagaRun:
    runtime: LocalRuntime
    event_ids: dict[str, str] = field(default_factory=dict)  # sample name -> canonical event id
    answers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # sample name -> webhook answers

    def send(self, *names: str) -> None:
        for name in names:
            body = (EVENTS_DIR / f"{name}.json").read_bytes()
            signature = sign_stripe_payload(body, self.runtime.webhook_secret, int(time.time()))
            status, answer = post_webhook(self.runtime.webhook_url, body, signature)
            assert status == 200, (name, status, answer)
            self.event_ids[name] = answer["event_id"]
            self.answers.setdefault(name, []).append(answer)

    def drain(self) -> None:
        assert self.runtime.drain(timeout_seconds=120), "queues or executions still busy"

    def executions(self, name: str) -> list[dict[str, Any]]:
        """The refund saga's executions of one sample's event."""
        event_id = self.event_ids[name]
        found = []
        for arn in self.runtime.stack.state_machines.values():
            pages = self.runtime.stepfunctions.get_paginator("list_executions").paginate(stateMachineArn=arn)
            found += [e for page in pages for e in page["executions"] if e["name"].startswith(f"{event_id}-")]
        return found

    def execution(self, name: str) -> tuple[dict[str, Any], list[str]]:
        """The one execution of a sample's event, and the states it entered in order."""
        [execution] = self.executions(name)
        return execution, entered_states(self.runtime.stepfunctions, execution["executionArn"])

    def wait_for_state(self, name: str, state: str, *, timeout_seconds: float = 30) -> None:
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            executions = self.executions(name)
            if executions and state in entered_states(self.runtime.stepfunctions, executions[0]["executionArn"]):
                return
            time.sleep(0.2)
        raise AssertionError(f"{name}: no execution entered {state} within {timeout_seconds} s")

    @property
    def ledger(self) -> DynamoLedgerErpClient:
        return DynamoLedgerErpClient(
            self.runtime._session.client("dynamodb"), self.runtime.stack.outputs["LedgerTableName"]
        )

    @property
    def lineage(self) -> DynamoLineageStore:
        return DynamoLineageStore(
            self.runtime._session.client("dynamodb"), self.runtime.stack.outputs["LineageTableName"]
        )

    @property
    def exception_store(self) -> DynamoExceptionStore:
        return DynamoExceptionStore(
            self.runtime._session.client("dynamodb"), self.runtime.stack.outputs["ExceptionTableName"]
        )

    def refund_documents(self, name: str) -> list[ErpDocument]:
        """Every ledger document booked for the sample's refund (credit memo, refund, void, reversal)."""
        refund_id = load_event(name)["data"]["object"]["id"]
        memo = accounting.refund_credit_memo_external_id(SOURCE, refund_id)
        external_ids = (
            memo,
            accounting.credit_memo_void_external_id(memo),
            accounting.refund_external_id(SOURCE, refund_id),
            accounting.refund_reversal_external_id(SOURCE, refund_id),
        )
        return [document for external_id in external_ids if (document := self.ledger.get_document(external_id))]


def refused_refund(self: RefundSaga, event: Any, execution: Any) -> dict[str, Any]:
    raise ErpRejectedError(f"ERP refused refund {event.data.refund_id}: payment period locked", status=422)


@pytest.fixture(scope="module")
def saga_run() -> Iterator[SagaRun]:
    # GIVEN the local runtime built from the synthesised stack, with the refund saga in moto
    with LocalRuntime(work_dir=Path("build/local"), log_level="ERROR") as runtime:
        run = SagaRun(runtime)
        # WHEN a partial refund of the Acme payment arrives before the payment, and is delivered again
        # while its saga waits for that payment
        run.send("stripe_refund_created_partial_1")
        run.wait_for_state("stripe_refund_created_partial_1", "WaitForDependencies")
        run.send("stripe_refund_created_partial_1")
        # AND the payments follow, with what they need
        run.send(*UPGRADE_PAYMENT, *ACME_PAYMENT)
        run.drain()
        # AND a full refund of the posted upgrade payment arrives, then is delivered again once booked
        run.send("stripe_refund_created_full")
        run.drain()
        run.send("stripe_refund_created_full")
        run.drain()
        # AND the ERP rejects the second partial refund's refund step, after its credit memo was created
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(RefundSaga, "refund", refused_refund)
            run.send("stripe_refund_created_partial_2")
            run.drain()
        # AND a refund of a payment billing-sync never booked (a Payment Link charge), with a short horizon
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SAGA_MAX_WAITS", "2")
            composition.reset()
            run.send("stripe_refund_created_unlinked")
            run.drain()
        composition.reset()
        # AND an operator stops the saga of a refund waiting for its payment (the renewal's, never sent)
        run.send("stripe_refund_created_credit_note")
        run.wait_for_state("stripe_refund_created_credit_note", "WaitForDependencies")
        [waiting] = run.executions("stripe_refund_created_credit_note")
        runtime.stepfunctions.stop_execution(executionArn=waiting["executionArn"], cause="stopped by an operator")
        # AND the RefundSagaEnded rule delivers how the executions ended (the sweeper may have already)
        runtime.deliver_ended_executions()
        runtime.stop_workers()
        yield run


def journal(document: ErpDocument) -> list[tuple[str, int, int]]:
    return sorted((line.account, line.debit, line.credit) for line in document.journal)


def test_a_full_refund_of_an_invoice_payment_runs_every_step_in_order(saga_run: SagaRun) -> None:
    execution, states = saga_run.execution("stripe_refund_created_full")
    # THEN the execution SUCCEEDED through the credit memo, the refund and lineage, in that order
    assert execution["status"] == "SUCCEEDED"
    assert states == BOOKED_WITH_CREDIT_MEMO
    # AND the ledger holds the credit memo and the refund with their journals
    memo, refund = saga_run.refund_documents("stripe_refund_created_full")
    assert (memo.kind, refund.kind) == (DocumentKind.CREDIT_MEMO, DocumentKind.REFUND)
    assert journal(memo) == [("2250 Refunds Payable", 0, 16075), ("4950 Contra Revenue", 16075, 0)]
    assert journal(refund) == [("1150 Payment Clearing", 0, 16075), ("2250 Refunds Payable", 16075, 0)]
    assert refund.applies_to == memo.applies_to
    # AND lineage records the event POSTED with both documents
    record = saga_run.lineage.get(saga_run.event_ids["stripe_refund_created_full"])
    assert record is not None and record.status is LineageStatus.POSTED
    assert len(record.erp_document_ids) == 2


def test_a_refund_before_its_payment_waits_then_posts_once(saga_run: SagaRun) -> None:
    execution, states = saga_run.execution("stripe_refund_created_partial_1")
    # THEN the saga looked, waited, and booked once the payment was posted
    assert execution["status"] == "SUCCEEDED"
    assert states[:5] == ["LoadDependencies", "DependenciesPosted", "CountWait", "HorizonPassed", "WaitForDependencies"]
    last_wait = len(states) - states[::-1].index("WaitForDependencies")
    assert states[last_wait:] == BOOKED_WITH_CREDIT_MEMO
    assert states.count("CreateRefund") == 1
    # AND one credit memo and one refund of 10000 were booked
    memo, refund = saga_run.refund_documents("stripe_refund_created_partial_1")
    assert (memo.kind, refund.kind) == (DocumentKind.CREDIT_MEMO, DocumentKind.REFUND)
    assert (memo.total, refund.total) == (10000, 10000)


def test_the_same_refund_delivered_twice_is_booked_once(saga_run: SagaRun) -> None:
    # THEN each refund delivered twice (once while its saga waited, once after it was booked) has one
    # execution and one set of documents
    for name in ("stripe_refund_created_partial_1", "stripe_refund_created_full"):
        assert len(saga_run.answers[name]) == 2
        assert len(saga_run.executions(name)) == 1, name
        assert [d.kind for d in saga_run.refund_documents(name)] == [DocumentKind.CREDIT_MEMO, DocumentKind.REFUND]
    payment = saga_run.ledger.find_by_reference(accounting.payment_reference("pi_3Q4SyiNx4RkL2mQerHzQjS0T", None))
    assert payment is not None
    assert saga_run.ledger.applied_total(payment.external_id, DocumentKind.REFUND) == 10000


def test_an_erp_rejection_after_the_credit_memo_compensates_and_parks_the_refund(saga_run: SagaRun) -> None:
    name = "stripe_refund_created_partial_2"
    execution, states = saga_run.execution(name)
    # THEN the saga caught the rejection, voided the credit memo and recorded the failure
    assert execution["status"] == "FAILED"
    assert states == [
        "LoadDependencies",
        "DependenciesPosted",
        "CreditMemoNeeded",
        "CreateCreditMemo",
        "CreateRefund",
        "RefundFailed",
        "Compensate",
        "RecordFailure",
        "RefundNotBooked",
    ]
    # AND the credit memo is voided by a credit_memo_void reversing its journal; no refund was booked
    memo, void = saga_run.refund_documents(name)
    assert (memo.kind, void.kind) == (DocumentKind.CREDIT_MEMO, DocumentKind.CREDIT_MEMO_VOID)
    assert void.applies_to == (memo.external_id,)
    assert journal(void) == sorted((account, credit, debit) for account, debit, credit in journal(memo))
    # AND the exception store holds the refund with its category and the step that failed
    stored = saga_run.exception_store.get(saga_run.event_ids[name])
    assert stored is not None
    record, _ = stored
    assert record.category.value == "ERP_REJECTED"
    assert "CreateRefund" in record.reason
    assert "payment period locked" in record.reason
    lineage = saga_run.lineage.get(saga_run.event_ids[name])
    assert lineage is not None and lineage.status is LineageStatus.EXCEPTION


def test_the_ledger_balances_after_every_saga(saga_run: SagaRun) -> None:
    # THEN every journal balances, and refunds payable is back to zero: each refund owed was paid
    # out or its credit memo voided
    _, balanced, rows = saga_run.ledger.trial_balance()
    assert balanced is True
    payable = sum(row.debit - row.credit for row in rows if row.account.startswith("2250"))
    assert payable == 0
    # AND no execution is left running
    assert saga_run.runtime.running_executions() == []


def test_the_state_machine_runs_the_template_definition_on_the_local_clock(saga_run: SagaRun) -> None:
    runtime = saga_run.runtime
    arn = runtime.stack.outputs["RefundSagaArn"]
    assert arn is not None and arn in runtime.stack.state_machines.values()
    definition = json.loads(runtime.stepfunctions.describe_state_machine(stateMachineArn=arn)["definition"])
    tasks = [state for state in definition["States"].values() if state["Type"] == "Task"]
    # THEN every task invokes the saga's task function, whose ARN the runtime dispatches in-process
    task_function = runtime.stack.function_for("refund_saga")
    assert {state["Resource"] for state in tasks} == {task_function.arn}
    assert task_function.arn.startswith("arn:aws:lambda:us-east-1:")
    # AND the retry intervals (2 s deployed) are scaled to whole seconds on the local clock
    assert {retrier["IntervalSeconds"] for state in tasks for retrier in state["Retry"]} == {1}
    # AND the posting function is told the state machine and the local wait settings
    posting = runtime.stack.function_for("post_to_erp")
    assert posting.environment["REFUND_SAGA_ARN"] == arn
    assert (os.environ["SAGA_WAIT_SECONDS"], os.environ["SAGA_MAX_WAITS"]) == ("1", "60")


def test_a_refund_of_a_payment_never_booked_waits_out_its_horizon_and_is_parked_naming_it(saga_run: SagaRun) -> None:
    execution, states = saga_run.execution("stripe_refund_created_unlinked")
    # THEN it looked, waited twice, then gave up through the dependency path, not a task failure
    assert execution["status"] == "FAILED"
    assert states.count("WaitForDependencies") == 2
    assert states[-5:] == ["HorizonPassed", "DependencyTimedOut", "TimedOutStep", "RecordFailure", "RefundNotBooked"]
    # AND the exception store names the payment it waited for, and nothing was booked for it
    event_id = saga_run.event_ids["stripe_refund_created_unlinked"]
    stored, _ = saga_run.exception_store.get(event_id)
    assert stored.category == "DEPENDENCY_PENDING"
    assert stored.missing_key == "payment:payment_intent:pi_3JPW6QNx4RkL2mQe1gwnKjzR"
    assert "WaitForDependencies" in stored.reason
    assert "(waiting for payment:payment_intent:pi_3JPW6QNx4RkL2mQe1gwnKjzR)" in stored.reason
    assert saga_run.refund_documents("stripe_refund_created_unlinked") == []


def test_a_saga_stopped_before_it_recorded_is_parked_when_it_ends(saga_run: SagaRun) -> None:
    # THEN the stopped refund leaves CLAIMED for an INTERNAL exception naming its execution, nothing booked
    event_id = saga_run.event_ids["stripe_refund_created_credit_note"]
    [stopped] = saga_run.executions("stripe_refund_created_credit_note")
    assert stopped["status"] == "ABORTED"
    held = saga_run.lineage.get(event_id)
    assert held is not None
    assert (held.status, held.category) == (LineageStatus.EXCEPTION, "INTERNAL")
    stored, _ = saga_run.exception_store.get(event_id)
    assert stored.reason.startswith(f"refund saga execution {event_id}-1 ended ABORTED without recording")
    assert saga_run.refund_documents("stripe_refund_created_credit_note") == []
    # AND the executions that recorded their failure (the rejected refund, the unlinked one) keep the
    # exception they recorded: their end parks nothing over it
    for name in ("stripe_refund_created_partial_2", "stripe_refund_created_unlinked"):
        stored, _ = saga_run.exception_store.get(saga_run.event_ids[name])
        assert "without recording" not in stored.reason
        assert stored.reason.startswith("refund saga step ")
