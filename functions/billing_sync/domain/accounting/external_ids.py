"""Deterministic ERP external ids, in one place: the same billing document always gets the same id."""

from __future__ import annotations


def customer_external_id(source: str, customer_id: str) -> str:
    return f"{source}-customer-{customer_id}"


def invoice_external_id(source: str, invoice_id: str) -> str:
    return f"{source}-invoice-{invoice_id}"


def payment_external_id(source: str, payment_id: str) -> str:
    return f"{source}-payment-{payment_id}"


def credit_note_external_id(source: str, credit_note_id: str) -> str:
    return f"{source}-credit-note-{credit_note_id}"


def void_external_id(source: str, invoice_id: str) -> str:
    return f"{source}-invoice-void-{invoice_id}"


def write_off_external_id(source: str, invoice_id: str) -> str:
    return f"{source}-write-off-{invoice_id}"


def refund_external_id(source: str, refund_id: str) -> str:
    return f"{source}-refund-{refund_id}"


def refund_reversal_external_id(source: str, refund_id: str) -> str:
    return f"{source}-refund-reversal-{refund_id}"


def refund_credit_memo_external_id(source: str, refund_id: str) -> str:
    """The credit memo the refund saga books for a refund no credit note carries."""
    return f"{source}-refund-credit-memo-{refund_id}"


def credit_memo_void_external_id(credit_memo_external_id: str) -> str:
    return f"{credit_memo_external_id}-void"


def fee_external_id(source: str, balance_transaction_id: str) -> str:
    """The processor's fees on one balance transaction (`stripe-fee-txn_…`)."""
    return f"{source}-fee-{balance_transaction_id}"


def payout_external_id(source: str, payout_id: str) -> str:
    return f"{source}-payout-{payout_id}"


def payout_reversal_external_id(source: str, payout_id: str) -> str:
    """The bank deposit of a payout that failed, reversed."""
    return f"{source}-payout-reversal-{payout_id}"


def dispute_external_id(source: str, dispute_id: str) -> str:
    return f"{source}-dispute-{dispute_id}"


def dispute_closure_external_id(source: str, dispute_id: str) -> str:
    """A closed dispute's outcome: funds reinstated (won) or the loss booked (lost); one per dispute."""
    return f"{source}-dispute-closed-{dispute_id}"
