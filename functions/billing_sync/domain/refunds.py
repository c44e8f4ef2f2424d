"""The refund saga's steps: what each Step Functions task does, on the same ports as the posting path.

load -> (wait until the payment it refunds is posted) -> credit memo when no credit note carries the
refund -> refund (or the reversal of a refund that failed after it succeeded) -> record lineage. A
permanent failure after the credit memo exists compensates by voiding it; every failure is recorded in
the exception store with its category and the name of the step that failed. Each step is idempotent
(documents by external id), so Step Functions may retry any of them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from billing_sync.domain import accounting
from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.errors import (
    EventValidationError,
    ExceptionCategory,
)
from billing_sync.domain.events import RefundIssuedEvent
from billing_sync.domain.fx import MissingRateError
from billing_sync.domain.journal import DocumentKind, ErpDocument, ErpRef
from billing_sync.domain.lineage import EventIdentity, ExceptionStage, LineageStatus
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.outcomes import OutcomeRecorder
from billing_sync.domain.ports import (
    ErpClient,
    ExceptionQueue,
    LineageStore,
    MasterDataStore,
    PostingQueue,
    WaitingRoom,
)
from billing_sync.domain.posting.resolver import document_key
from billing_sync.domain.posting.rules import REFUND_SAGA_WORKFLOW
from billing_sync.domain.waiting import release_waiters

REFUND_SAGA = REFUND_SAGA_WORKFLOW

EXECUTION_STATUS_CHANGE = "Step Functions Execution Status Change"
"""The EventBridge detail-type of an execution's status change (source aws.states)."""
UNRECORDED_END_STATUSES = ("FAILED", "TIMED_OUT", "ABORTED")
"""How an execution ended when it may not have recorded its outcome (RefundSaga.record_ended)."""

# Step Functions reports a task's failure by the exception's class name; the store keeps its category.
_CATEGORY_OF_ERROR = {
    "EventValidationError": ExceptionCategory.VALIDATION,
    "DocumentConflictError": ExceptionCategory.VALIDATION,
    "MappingError": ExceptionCategory.MAPPING,
    "ErpRejectedError": ExceptionCategory.ERP_REJECTED,
    "ErpTransientError": ExceptionCategory.ERP_TRANSIENT,
    "ErpUnavailableError": ExceptionCategory.ERP_TRANSIENT,
    "DependencyPendingError": ExceptionCategory.DEPENDENCY_PENDING,
    "MissingRateError": ExceptionCategory.DEPENDENCY_PENDING,  # a rate not loaded yet: redrive after loading it
    "PeriodClosedError": ExceptionCategory.PERIOD_CLOSED,
}


class RefundSaga:
    def __init__(
        self,
        *,
        erp: ErpClient,
        master_data: MasterDataStore,
        lineage: LineageStore,
        exceptions: ExceptionQueue,
        mapping: AccountMapping,
        clock: Callable[[], datetime],
        bookkeeper: Bookkeeper | None = None,
        waiting_room: WaitingRoom | None = None,
        requeue: PostingQueue | None = None,
    ) -> None:
        self._erp = erp
        self._waiting = waiting_room
        self._requeue = requeue
        self._bookkeeper = bookkeeper or Bookkeeper(mapping=mapping, erp=erp)
        self._master_data = master_data
        self._lineage = lineage
        self._mapping = mapping
        self._clock = clock
        self._outcomes = OutcomeRecorder(lineage=lineage, exceptions=exceptions, clock=clock)

    def run(self, task: str, execution: Mapping[str, Any]) -> dict[str, Any]:
        """Runs one task on the execution's state; raises the domain's typed errors for Retry and Catch."""
        steps: dict[str, Callable[[RefundIssuedEvent, Mapping[str, Any]], dict[str, Any]]] = {
            "load": self.load,
            "credit_memo": self.credit_memo,
            "refund": self.refund,
            "record": self.record,
            "compensate": self.compensate,
            "record_failure": self.record_failure,
        }
        if task not in steps:
            raise ValueError(f"the refund saga has no task {task!r}")
        event = RefundIssuedEvent.model_validate(execution["event"])
        return steps[task](event, execution)

    # ---- steps ----

    def load(self, event: RefundIssuedEvent, execution: Mapping[str, Any]) -> dict[str, Any]:
        """Whether what it needs is there: the payment it refunds, and the exchange rate its documents are
        translated at (both waited for); refuses refunds above what was paid (VALIDATION)."""
        refund = event.data
        payment = self._payment(event)
        if payment is None:
            return {"ready": False, "waiting_for": self._payment_key(event)}
        credit_note = self._master_data.get_record(
            kind="refund_credit_note", source=event.source, record_id=refund.refund_id
        )
        succeeded = refund.status == "succeeded"
        refund_id = accounting.refund_external_id(event.source, refund.refund_id)
        booked = self._erp.find_document(refund_id) is not None
        books_refund = not booked and (succeeded or _returned_after_leaving(event))
        if books_refund:
            refunded = self._erp.applied_total(payment.external_id, DocumentKind.REFUND) - self._erp.applied_total(
                payment.external_id, DocumentKind.REFUND_REVERSAL
            )
            if refunded + refund.amount > (payment.total or 0):
                raise EventValidationError(
                    f"refund {refund.refund_id} of {refund.amount} would bring the refunds of {payment.external_id} "
                    f"to {refunded + refund.amount}, more than its {payment.total} paid"
                )
        if books_refund or succeeded:
            try:  # the documents the next steps book are translated at the rate of their posting date
                self._bookkeeper.finish(accounting.refund_document(event, self._mapping, payment=payment))
            except MissingRateError as missing:
                return {"ready": False, "waiting_for": missing.key}
        return {
            "ready": True,
            "payment": payment.external_id,
            "credit_memo_needed": (succeeded or books_refund) and credit_note is None,
            "credit_note_memo": credit_note["credit_memo_external_id"] if credit_note else None,
        }

    def credit_memo(self, event: RefundIssuedEvent, execution: Mapping[str, Any]) -> dict[str, Any]:
        payment = self._require_payment(event)
        document = self._bookkeeper.finish(accounting.refund_credit_memo(event, self._mapping, payment=payment))
        ref = self._erp.create_document(document)
        return {"credit_memo": document.external_id, "document_id": ref.document_id}

    def refund(self, event: RefundIssuedEvent, execution: Mapping[str, Any]) -> dict[str, Any]:
        """The refund when it succeeded; its reversal when it failed or was canceled after its funds left.

        A failure that arrives before the refund's `succeeded` event, with the balance transaction that
        returned the funds, books the refund and the reversal both, so the books end the same in either order
        (the later `succeeded` event finds its documents made)."""
        refund = event.data
        payment = self._require_payment(event)
        documents: tuple[ErpDocument, ...]
        if refund.status == "succeeded":
            documents = (accounting.refund_document(event, self._mapping, payment=payment),)
        elif refund.status not in ("failed", "canceled"):
            documents = ()
        elif self._erp.find_document(accounting.refund_external_id(event.source, refund.refund_id)):
            documents = (accounting.refund_reversal(event, self._mapping, payment=payment),)
        elif _returned_after_leaving(event):
            documents = (
                accounting.refund_document(event, self._mapping, payment=payment),
                accounting.refund_reversal(event, self._mapping, payment=payment),
            )
        else:
            documents = ()
        if not documents:
            return {"refund": None, "document_id": None, "note": f"refund {refund.status}: nothing to book"}
        created = [
            (document.external_id, self._erp.create_document(self._bookkeeper.finish(document)).document_id)
            for document in documents
        ]
        external_id, document_id = created[-1]
        return {
            "refund": external_id,
            "document_id": document_id,
            "booked": [external_id for external_id, _ in created],
            "document_ids": [document_id for _, document_id in created],
        }

    def record(self, event: RefundIssuedEvent, execution: Mapping[str, Any]) -> dict[str, Any]:
        documents = tuple(
            document_id
            for step in (execution.get("credit_memo_result"), execution.get("refund_result"))
            if isinstance(step, Mapping)
            for document_id in (step.get("document_ids") or [step.get("document_id")])
            if document_id
        )
        note = (execution.get("refund_result") or {}).get("note") or f"booked by refund saga {execution.get('name')}"
        self._lineage.mark_posted(event.event_id, document_ids=documents, now=self._clock(), note=note)
        # What waits for these documents (a payout that settles this refund) may post now.
        booked = (
            external_id
            for step, name in (
                (execution.get("credit_memo_result"), "credit_memo"),
                (execution.get("refund_result"), "refund"),
            )
            if isinstance(step, Mapping)
            for external_id in (step.get("booked") or [step.get(name)])
        )
        release_waiters(
            (document_key(external_id) for external_id in booked if external_id),
            waiting=self._waiting,
            requeue=self._requeue,
        )
        return {"documents": list(documents)}

    def compensate(self, event: RefundIssuedEvent, execution: Mapping[str, Any]) -> dict[str, Any]:
        """Voids the credit memo this saga created (idempotent: the void has its own external id)."""
        memo_id = (execution.get("credit_memo_result") or {}).get("credit_memo")
        memo = self._erp.get_document(memo_id) if memo_id else None
        if memo is None:
            return {"voided": None}
        void = accounting.credit_memo_void(memo, source_event_id=event.event_id, on=self._clock().date())
        self._erp.create_document(self._bookkeeper.finish(void))
        return {"voided": memo.external_id}

    def record_failure(self, event: RefundIssuedEvent, execution: Mapping[str, Any]) -> dict[str, Any]:
        """Parks the refund in the exception store with its category and the step that failed."""
        failure = execution.get("failure") or {}
        error = str(failure.get("Error") or "States.TaskFailed")
        step = str(execution.get("failed_step") or "unknown step")
        category = _CATEGORY_OF_ERROR.get(error, ExceptionCategory.INTERNAL)
        reason = f"refund saga step {step} failed: {error}: {_cause(failure.get('Cause'))}"
        if waited_for := (execution.get("deps") or {}).get("waiting_for"):
            reason += f" (waiting for {waited_for})"
        return self._park(event, execution, category=category, reason=reason)

    def record_ended(self, status_change: Mapping[str, Any]) -> dict[str, Any]:
        """Parks a refund whose execution ended (FAILED, TIMED_OUT, ABORTED) without recording an outcome.

        `status_change` is the detail of Step Functions' "Execution Status Change" event. An execution that
        recorded its failure (or a later attempt that owns the claim now) leaves lineage past CLAIMED at this
        attempt, and nothing happens. One that could not record (RecordFailure or RecordLineage spent its
        retries, a timeout, an operator's stop) still holds the claim for the saga's whole lease: parked as
        INTERNAL, it shows in the exception queue and a redrive starts the next attempt.
        """
        name = str(status_change.get("name") or "")
        raw_input = status_change.get("input")
        if not isinstance(raw_input, str):
            raise EventValidationError(
                f"the status change of refund saga execution {name or '?'} carries no input "
                "(Step Functions leaves it out above 256 KiB): read it with DescribeExecution"
            )
        execution = json.loads(raw_input)
        event = RefundIssuedEvent.model_validate(execution["event"])
        attempt = _execution_attempt({"name": name or execution.get("name")})
        held = self._lineage.get(event.event_id)
        if held is None or held.status is not LineageStatus.CLAIMED or held.attempts != attempt:
            return {"parked": False, "lineage": held.status.value if held else None}
        status = str(status_change.get("status") or "ended")
        error = str(status_change.get("error") or "no error given")
        reason = (
            f"refund saga execution {name} ended {status} without recording its outcome: "
            f"{error}: {_cause(status_change.get('cause'))}"
        )
        parked = self._park(event, {**execution, "name": name}, category=ExceptionCategory.INTERNAL, reason=reason)
        return {"parked": True, **parked}

    def _park(
        self, event: RefundIssuedEvent, execution: Mapping[str, Any], *, category: ExceptionCategory, reason: str
    ) -> dict[str, Any]:
        now = self._clock()
        self._outcomes.parked(
            EventIdentity(
                event_id=event.event_id,
                source=event.source,
                source_event_id=event.source_event_id,
                event_type=event.event_type,
                source_api_version=event.source_api_version,
                raw_ref=event.raw_ref,
            ),
            category=category,
            reason=reason,
            attempts=_execution_attempt(execution),
            first_seen=event.received_at,
            checkpoints={"received": event.received_at, "saga_failed": now},
            stage=ExceptionStage.POSTING,
            event=event.model_dump(mode="json"),
            missing_key=(execution.get("deps") or {}).get("waiting_for")
            if category is ExceptionCategory.DEPENDENCY_PENDING
            else None,
        )
        return {"category": category.value, "reason": reason}

    # ---- the payment it refunds ----

    def _payment_key(self, event: RefundIssuedEvent) -> str:
        refund = event.data
        reference = accounting.payment_reference(refund.payment_intent_id, refund.charge_id)
        return f"payment:{reference or 'unknown: the refund names no payment intent or charge'}"

    def _payment(self, event: RefundIssuedEvent) -> ErpRef | None:
        refund = event.data
        for reference in (
            accounting.payment_reference(refund.payment_intent_id, None),
            accounting.payment_reference(None, refund.charge_id),
        ):
            if reference and (payment := self._erp.find_by_reference(reference)) is not None:
                return payment
        return None

    def _require_payment(self, event: RefundIssuedEvent) -> ErpRef:
        payment = self._payment(event)
        if payment is None:
            raise EventValidationError(f"refund {event.data.refund_id}: the payment it refunds is not posted")
        return payment


def _cause(cause: Any) -> str:
    """Step Functions passes a task's error as a JSON string holding errorMessage; keep the message."""
    if isinstance(cause, str):
        try:
            decoded = json.loads(cause)
        except ValueError:
            return cause[:500]
        if isinstance(decoded, dict) and decoded.get("errorMessage"):
            return str(decoded["errorMessage"])[:500]
        return cause[:500]
    return "no cause given"


def _execution_attempt(execution: Mapping[str, Any]) -> int:
    """The claim attempt the execution was started for (it is named `<event id>-<attempt>`): the parked
    lineage keeps it, so the claim of a redrive starts `<attempt + 1>`, never a name Step Functions has
    already run (it would refuse the start and leave the refund claimed with nothing running)."""
    _, _, attempt = str(execution.get("name") or "").rpartition("-")
    return int(attempt) if attempt.isdigit() else 1


def _returned_after_leaving(event: RefundIssuedEvent) -> bool:
    """A failed or canceled refund whose funds had left the balance (Stripe returned them by a balance
    transaction): it was paid out and came back, so it books as a refund and its reversal."""
    return event.data.status in ("failed", "canceled") and event.data.failure_balance_transaction_id is not None
