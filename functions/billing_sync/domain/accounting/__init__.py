"""Accounting defaults: canonical events become balanced ERP documents, one module per document kind.

Each module's docstring states its entry account by account; `external_ids` derives every ERP
external id. A document with no value (a $0 invoice, a zero payment) raises NothingToPostError and is
recorded as IGNORED.
"""

from billing_sync.domain.accounting.credit_notes import credit_note_document
from billing_sync.domain.accounting.customers import erp_customer
from billing_sync.domain.accounting.disputes import dispute_closure, dispute_document
from billing_sync.domain.accounting.external_ids import (
    credit_memo_void_external_id,
    credit_note_external_id,
    customer_external_id,
    dispute_closure_external_id,
    dispute_external_id,
    fee_external_id,
    invoice_external_id,
    payment_external_id,
    payout_external_id,
    payout_reversal_external_id,
    refund_credit_memo_external_id,
    refund_external_id,
    refund_reversal_external_id,
    void_external_id,
    write_off_external_id,
)
from billing_sync.domain.accounting.invoices import LineClass, check_invoice_totals, invoice_document
from billing_sync.domain.accounting.payments import payment_document, payment_reference
from billing_sync.domain.accounting.payouts import (
    SettlementTarget,
    fee_document,
    payout_document,
    payout_reversal,
    settlement_target,
)
from billing_sync.domain.accounting.refunds import (
    credit_memo_void,
    refund_credit_memo,
    refund_document,
    refund_reversal,
)
from billing_sync.domain.accounting.voids import void_document
from billing_sync.domain.accounting.write_offs import write_off_document

__all__ = [
    "LineClass",
    "SettlementTarget",
    "check_invoice_totals",
    "credit_memo_void",
    "credit_memo_void_external_id",
    "credit_note_document",
    "credit_note_external_id",
    "customer_external_id",
    "dispute_closure",
    "dispute_closure_external_id",
    "dispute_document",
    "dispute_external_id",
    "erp_customer",
    "fee_document",
    "fee_external_id",
    "invoice_document",
    "invoice_external_id",
    "payment_document",
    "payment_external_id",
    "payment_reference",
    "payout_document",
    "payout_external_id",
    "payout_reversal",
    "payout_reversal_external_id",
    "refund_credit_memo",
    "refund_credit_memo_external_id",
    "refund_document",
    "refund_external_id",
    "refund_reversal",
    "refund_reversal_external_id",
    "settlement_target",
    "void_document",
    "void_external_id",
    "write_off_document",
    "write_off_external_id",
]
