"""payment.settled: cash in (or on its way), applied to the invoice it pays.

    Dr Payment clearing (through the processor) or Undeposited funds (paid outside it)   amount
    Cr Accounts receivable                                                                amount - overpaid
    Cr Customer credit                                                                    overpaid
    fees, when known: Dr Processing fees, Cr Payment clearing
Booked in the invoice's legal entity and currency: the invoice in the ERP is authoritative.
"""

from __future__ import annotations

from billing_sync.domain.accounting.books import Books
from billing_sync.domain.accounting.external_ids import customer_external_id, invoice_external_id, payment_external_id
from billing_sync.domain.errors import EventValidationError, NothingToPostError
from billing_sync.domain.events import PaymentChannel, PaymentSettledEvent
from billing_sync.domain.journal import DocumentKind, ErpDocument, ErpRef
from billing_sync.domain.mapping import AccountMapping, AccountRole


def payment_document(event: PaymentSettledEvent, mapping: AccountMapping, *, invoice: ErpRef) -> ErpDocument:
    """The ERP customer payment applied to `invoice`.

    Raises NothingToPostError for a zero payment, EventValidationError (another currency than the
    invoice's, an overpayment larger than the payment) or MappingError.
    """
    payment = event.data
    if payment.amount == 0:
        raise NothingToPostError(f"payment {payment.payment_id} settles a zero amount")
    if invoice.currency is not None and invoice.currency != payment.currency:
        raise EventValidationError(
            f"payment {payment.payment_id} is in {payment.currency} but invoice {payment.invoice_id} is in "
            f"{invoice.currency}"
        )
    if payment.amount_overpaid > payment.amount:
        raise EventValidationError(
            f"payment {payment.payment_id} overpays {payment.amount_overpaid}, more than its amount {payment.amount}"
        )
    legal_entity = invoice.legal_entity or event.legal_entity
    books = Books(mapping, legal_entity, payment.currency)
    cash_role = (
        AccountRole.UNDEPOSITED_FUNDS if payment.channel is PaymentChannel.OUT_OF_BAND else AccountRole.PAYMENT_CLEARING
    )
    cash = books.account(cash_role)
    memo = f"{payment.payment_id} for {payment.invoice_id}"
    journal = [
        *books.debit(cash, payment.amount, memo),
        *books.credit(books.account(AccountRole.ACCOUNTS_RECEIVABLE), payment.amount - payment.amount_overpaid, memo),
        *books.credit(books.account(AccountRole.CUSTOMER_CREDIT), payment.amount_overpaid, f"{memo} overpaid"),
    ]
    if payment.fee:
        journal += [
            *books.debit(books.account(AccountRole.PROCESSING_FEES), payment.fee, memo),
            *books.credit(cash, payment.fee, memo),
        ]
    return ErpDocument(
        external_id=payment_external_id(event.source, payment.payment_id),
        kind=DocumentKind.PAYMENT,
        legal_entity=legal_entity,
        subsidiary=books.subsidiary,
        customer_external_id=invoice.customer_external_id
        or customer_external_id(event.source, payment.customer_id or "unknown"),
        currency=payment.currency,
        posting_date=books.local_date(payment.settled_at),
        total=payment.amount,
        applies_to=(invoice_external_id(event.source, payment.invoice_id),),
        journal=tuple(journal),
        source_event_id=event.event_id,
        memo=memo,
        reference=payment_reference(payment.payment_intent_id, payment.charge_id),
    )


def payment_reference(payment_intent_id: str | None, charge_id: str | None) -> str | None:
    """How a refund finds the payment it refunds: its payment intent, else its charge."""
    if payment_intent_id:
        return f"payment_intent:{payment_intent_id}"
    if charge_id:
        return f"charge:{charge_id}"
    return None
