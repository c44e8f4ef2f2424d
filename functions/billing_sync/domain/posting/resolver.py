"""What a posting rule may ask of the world: each dependency is resolved, or waited for by name."""

from __future__ import annotations

from billing_sync.domain.accounting import LineClass, SettlementTarget, invoice_external_id, payment_reference
from billing_sync.domain.errors import DependencyPendingError, PermanentPostingError
from billing_sync.domain.events import InvoiceIssued, RevenueClass
from billing_sync.domain.journal import DocumentKind, ErpDocument, ErpRef
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.ports import BalanceTransaction, ErpClient, MasterDataStore, SourceReader


def customer_key(source: str, customer_id: str) -> str:
    return f"customer:{source}:{customer_id}"


def record_key(kind: str, source: str, record_id: str) -> str:
    return f"{kind}:{source}:{record_id}"


def document_key(external_id: str) -> str:
    return f"document:{external_id}"


def payments_key(invoice_external_id: str) -> str:
    return f"payments:{invoice_external_id}"


def reference_key(reference: str) -> str:
    """A document by the source's handle on it (`reference:payment_intent:pi_…`), released when it posts."""
    return f"reference:{reference}"


def released_by(document: ErpDocument) -> tuple[str, ...]:
    """The keys whose waiters may post once `document` is created: its own name, and for a payment the
    payments of the invoice it applies to and its reference. The posting path and a consumer of the ERP's
    change stream release the same keys."""
    keys = [document_key(document.external_id)]
    if document.kind == DocumentKind.PAYMENT:
        keys += [payments_key(external_id) for external_id in document.applies_to]
        if document.reference:
            keys.append(reference_key(document.reference))
    return tuple(keys)


def source_object_key(source: str, object_id: str) -> str:
    """An object the source's API does not return yet (`stripe-api:stripe:ch_…`); the periodic sweep retries it."""
    return f"stripe-api:{source}:{object_id}"


class Resolver:
    """Reads dependencies through the ports; raises DependencyPendingError naming the missing key."""

    def __init__(
        self,
        *,
        erp: ErpClient,
        master_data: MasterDataStore,
        mapping: AccountMapping,
        catalogue_required: bool,
        reader: SourceReader | None = None,
    ) -> None:
        self.erp = erp
        self.master_data = master_data
        self.mapping = mapping
        self.reader = reader
        self._catalogue_required = catalogue_required

    def complete_invoice(self, source: str, invoice: InvoiceIssued) -> InvoiceIssued:
        """The invoice with every line: as delivered, or with the rest of a truncated list read from the source's
        API. Waits while there is no API, or it does not return the lines yet; never books from part of them."""
        if invoice.lines_complete:
            return invoice
        key = record_key("invoice-lines", source, invoice.invoice_id)
        if self.reader is None:
            raise DependencyPendingError(
                f"invoice {invoice.invoice_id} arrived with a truncated line list and no source API is configured "
                "to read the rest; it is never booked from part of it",
                key=key,
            )
        lines = self.reader.complete_invoice_lines(invoice.invoice_id)
        if lines is None:
            raise DependencyPendingError(
                f"invoice {invoice.invoice_id} arrived with a truncated line list the API does not return yet",
                key=source_object_key(source, invoice.invoice_id),
            )
        return invoice.model_copy(update={"lines": lines, "lines_complete": True})

    def charge_settlement(self, source: str, charge_id: str) -> BalanceTransaction | None:
        """The balance transaction of a charge; None without a source reader; waits while the API lacks it."""
        if self.reader is None:
            return None
        found = self.reader.charge_balance_transaction(charge_id)
        if found is None:
            raise DependencyPendingError(
                f"the balance transaction of charge {charge_id} is not available from the API yet",
                key=source_object_key(source, charge_id),
            )
        return found

    def payout_transactions(self, source: str, payout_id: str) -> list[BalanceTransaction]:
        """Every balance transaction the payout settles; waits while the API lacks the payout.

        Raises PermanentPostingError without a source reader: a payout is only booked once it is shown to clear.
        """
        if self.reader is None:
            raise PermanentPostingError(
                f"payout {payout_id} needs the source's API to list what it settles; no source reader is configured"
            )
        found = self.reader.payout_balance_transactions(payout_id)
        if found is None:
            raise DependencyPendingError(
                f"the balance transactions of payout {payout_id} are not available from the API yet",
                key=source_object_key(source, payout_id),
            )
        return found

    def settled_document(self, target: SettlementTarget) -> ErpRef | None:
        """The posted document a balance transaction is matched to, if posted."""
        if target.external_id is not None:
            return self.erp.find_document(target.external_id)
        for reference in target.references:
            if (found := self.erp.find_by_reference(reference)) is not None:
                return found
        return None

    @staticmethod
    def settlement_key(target: SettlementTarget) -> str:
        """The name a payout waits by for the document `target` names."""
        if target.external_id is not None:
            return document_key(target.external_id)
        return reference_key(target.references[0]) if target.references else f"balance-transaction:{target.txn.id}"

    def require_payment(self, payment_intent_id: str | None, charge_id: str | None) -> ErpRef:
        """The payment posted for a payment intent (else a charge); waits by reference while it is not posted."""
        references = [
            ref for ref in (payment_reference(payment_intent_id, None), payment_reference(None, charge_id)) if ref
        ]
        for reference in references:
            if (found := self.erp.find_by_reference(reference)) is not None:
                return found
        raise DependencyPendingError(
            f"the payment of {payment_intent_id or charge_id} is not posted yet", key=reference_key(references[0])
        )

    def require_customer(self, source: str, customer_id: str) -> str:
        """The customer's legal entity; waits (DependencyPendingError) while the customer is unknown."""
        legal_entity = self.master_data.customer_legal_entity(source=source, customer_id=customer_id)
        if legal_entity is None:
            raise DependencyPendingError(
                f"customer {customer_id} is not synchronised yet", key=customer_key(source, customer_id)
            )
        return legal_entity

    def require_invoice(self, source: str, invoice_id: str) -> ErpRef:
        external_id = invoice_external_id(source, invoice_id)
        ref = self.erp.find_document(external_id)
        if ref is None:
            raise DependencyPendingError(f"invoice {external_id} is not posted yet", key=document_key(external_id))
        return ref

    def require_invoice_document(self, source: str, invoice_id: str) -> ErpDocument:
        external_id = invoice_external_id(source, invoice_id)
        document = self.erp.get_document(external_id)
        if document is None:
            raise DependencyPendingError(f"invoice {external_id} is not posted yet", key=document_key(external_id))
        return document

    def line_classes(self, source: str, invoice: InvoiceIssued) -> dict[str, LineClass]:
        """Each priced line's class from price and product master data (waits for them when required)."""
        classes: dict[str, LineClass] = {}
        for line in invoice.lines:
            if line.price_id is None:
                continue
            price = self._record("price", source, line.price_id)
            if price is None:
                continue
            product_id = price.get("product_id") or line.product_id
            product = self._record("product", source, product_id) if product_id else None
            revenue_class = line.revenue_class
            if price.get("usage_type") == "metered":
                revenue_class = RevenueClass.USAGE
            elif price.get("price_type") == "one_time" and not line.proration:
                revenue_class = RevenueClass.ONE_OFF
            if product and product.get("revenue_class"):
                revenue_class = RevenueClass(product["revenue_class"])
            classes[line.line_id] = LineClass(
                revenue_class=revenue_class.value, product_family=(product or {}).get("product_family")
            )
        return classes

    def _record(self, kind: str, source: str, record_id: str) -> dict | None:
        record = self.master_data.get_record(kind=kind, source=source, record_id=record_id)
        if record is None and self._catalogue_required:
            raise DependencyPendingError(
                f"{kind} {record_id} is not synchronised yet", key=record_key(kind, source, record_id)
            )
        return record
