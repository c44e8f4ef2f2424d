"""credit_note.created -> credit_note.issued, with where its total goes.

The pre-payment amount reduces the invoice's amount remaining; the post-payment amount is refunded
(`refunds`), settled outside Stripe (`out_of_band_amount`) or credited to the customer's balance (the
rest). Older credit notes without `pre_payment_amount` / `post_payment_amount` are read by their `type`.
"""

from __future__ import annotations

from billing_sync.domain.errors import MalformedEventError
from billing_sync.domain.events import CreditNoteIssued, CreditNoteIssuedEvent, CreditNoteLine
from billing_sync.sources.stripe.invoices import tax_amounts
from billing_sync.sources.stripe.normaliser import Envelope, instant
from billing_sync.sources.stripe.wire import StripeCreditNote


def _split(note: StripeCreditNote) -> tuple[int, int]:
    """(pre-payment, post-payment) amounts."""
    if note.pre_payment_amount is not None or note.post_payment_amount is not None:
        return note.pre_payment_amount or 0, note.post_payment_amount or 0
    if note.type == "pre_payment":
        return note.total, 0
    if note.type == "post_payment":
        return 0, note.total
    raise MalformedEventError(
        f"credit note {note.id} is {note.type} but carries neither pre_payment_amount nor post_payment_amount"
    )


def credit_note_issued(envelope: Envelope) -> CreditNoteIssuedEvent:
    note = StripeCreditNote.model_validate(envelope.event.data.object)
    if note.lines.has_more:
        raise MalformedEventError(f"credit note {note.id} has more lines than the event carries")
    pre_payment, post_payment = _split(note)
    refunded = sum(refund.amount_refunded for refund in note.refunds)
    out_of_band = note.out_of_band_amount or 0
    lines = tuple(
        CreditNoteLine(
            line_id=line.id,
            invoice_line_id=line.invoice_line_item,
            description=line.description,
            amount=line.amount,
            discount=line.discount_amount,
            taxes=tax_amounts(line.taxes if line.taxes is not None else line.tax_amounts),
        )
        for line in note.lines.data
    )
    return CreditNoteIssuedEvent(
        **envelope.fields(note.metadata),
        data=CreditNoteIssued(
            credit_note_id=note.id,
            number=note.number,
            invoice_id=note.invoice,
            customer_id=note.customer,
            currency=note.currency,
            issued_at=instant(note.effective_at or note.created),
            lines=lines,
            subtotal=sum(line.amount for line in lines),
            discount_total=note.discount_amount,
            taxes=tax_amounts(note.total_taxes if note.total_taxes is not None else note.tax_amounts),
            total=note.total,
            pre_payment_amount=pre_payment,
            refund_amount=refunded,
            credit_balance_amount=post_payment - refunded - out_of_band,
            out_of_band_amount=out_of_band,
            refund_ids=tuple(_refund_id(refund.refund) for refund in note.refunds if _refund_id(refund.refund)),
            reason=note.reason,
        ),
    )


def _refund_id(refund: str | dict | None) -> str:
    """A credit note names each refund by id, or embeds it when expanded."""
    if isinstance(refund, dict):
        return str(refund.get("id") or "")
    return refund or ""
