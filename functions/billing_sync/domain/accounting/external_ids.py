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
