"""The last step before the ERP: every document in its entity's functional currency, in an open period.

Which rate a document is translated at (ASC 830):
- its own rate on its posting date (invoices, fees, payouts, disputes): the rate table's, or the
  Stripe balance transaction's `exchange_rate` where Stripe converted the money;
- cash that settles an earlier document (payments, refunds): the cash line at the cash rate, every
  other line at the rate the settled document booked that account at; the difference is realised FX;
- documents derived from another (credit memos, voids, write-offs, recognition): the rate of the
  document they apply to, so a void reverses exactly and deferred revenue releases at its historical rate.
A document already in the functional currency needs no rate and no read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from billing_sync.domain.errors import EventValidationError
from billing_sync.domain.fx import MissingRateError, Rate, carried_rate, translate
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.mapping import AccountMapping, AccountRole, MappingContext
from billing_sync.domain.periods import place_in_open_period
from billing_sync.domain.ports import BalanceTransaction, ErpClient, PeriodCalendar, RateTable

OWN_RATE_KINDS = frozenset(
    {DocumentKind.INVOICE, DocumentKind.FEE, DocumentKind.PAYOUT, DocumentKind.DISPUTE, DocumentKind.JOURNAL}
)
CASH_KINDS = frozenset({DocumentKind.PAYMENT, DocumentKind.REFUND, DocumentKind.REFUND_REVERSAL})
CASH_ROLES = (AccountRole.PAYMENT_CLEARING, AccountRole.UNDEPOSITED_FUNDS, AccountRole.BANK)


class Bookkeeper:
    def __init__(
        self,
        *,
        mapping: AccountMapping,
        erp: ErpClient,
        rates: RateTable | None = None,
        periods: PeriodCalendar | None = None,
    ) -> None:
        self._mapping = mapping
        self._erp = erp
        self._rates = rates
        self._periods = periods

    def finish(
        self, document: ErpDocument, *, settlement: BalanceTransaction | None = None, scheduled: bool = False
    ) -> ErpDocument:
        """Translated and placed. Raises MissingRateError (waits), PeriodClosedError or EventValidationError.

        `settlement` is the Stripe balance transaction of cash Stripe converted; `scheduled` documents
        (recognition, revaluation) move out of a closed period whatever the entity's policy.
        """
        entity = self._mapping.entity(document.legal_entity)
        if self._periods is not None:
            policy = "move" if scheduled else entity.closed_period_policy
            document = place_in_open_period(document, calendar=self._periods, policy=policy)
        return self.translate(document, settlement=settlement)

    def translate(self, document: ErpDocument, *, settlement: BalanceTransaction | None = None) -> ErpDocument:
        functional = self._mapping.entity(document.legal_entity).functional_currency
        if document.functional_currency is not None:
            return document
        if document.currency == functional:
            return translate(
                document,
                functional_currency=functional,
                rate=Rate.identity(functional, document.posting_date),
                residual_account=self._account(document, AccountRole.FX_ROUNDING),
            )
        settled = self._settled_document(document)
        if document.kind in CASH_KINDS or document.kind in OWN_RATE_KINDS or settled is None:
            rate, exact = self._own_rate(document, functional, settlement)
            carried = {}
            residual = AccountRole.FX_ROUNDING
            if document.kind in CASH_KINDS and settled is not None:
                cash = {self._account(document, role) for role in CASH_ROLES}
                booked_by = self._booked_by(document, settled)
                carried = {
                    line.account: found
                    for line in document.journal
                    if line.account not in cash
                    and (found := next(filter(None, (carried_rate(d, line.account) for d in booked_by)), None))
                }
                residual = AccountRole.REALISED_FX
            return translate(
                document,
                functional_currency=functional,
                rate=rate,
                residual_account=self._account(document, residual),
                carried=carried,
                exact=exact,
            )
        historical = _document_rate(settled)
        return translate(
            document,
            functional_currency=functional,
            rate=historical,
            residual_account=self._account(document, AccountRole.FX_ROUNDING),
        )

    def _own_rate(
        self, document: ErpDocument, functional: str, settlement: BalanceTransaction | None
    ) -> tuple[Rate, dict[str, int]]:
        """The rate the money moved at (Stripe's conversion) with the cash line's exact amount, else the table's."""
        if settlement is not None and settlement.exchange_rate is not None:
            if settlement.currency != functional:
                raise EventValidationError(
                    f"{document.external_id} settled in {settlement.currency} ({settlement.id}), not in "
                    f"{document.legal_entity}'s functional currency {functional}"
                )
            rate = Rate(
                base=document.currency,
                quote=functional,
                value=settlement.exchange_rate,
                source=f"stripe:{settlement.id}",
                as_of=settlement.created.date(),
            )
            cash = self._account(document, AccountRole.PAYMENT_CLEARING)
            on_cash = [line for line in document.journal if line.account == cash]
            exact = {cash: abs(settlement.amount)} if len(on_cash) == 1 else {}
            return rate, exact
        return self.table_rate(document.currency, functional, document.posting_date), {}

    def table_rate(self, base: str, quote: str, on: date) -> Rate:
        """The rate table's rate; MissingRateError (the event waits for it) when it has none."""
        if base == quote:
            return Rate.identity(base, on)
        found = self._rates.rate(base, quote, on) if self._rates is not None else None
        if found is None:
            raise MissingRateError(base, quote, on)
        return found

    def _booked_by(self, document: ErpDocument, settled: ErpDocument) -> Iterator[ErpDocument]:
        """Where the balances cash relieves were booked: the settled document; for a refund also the credit
        memos and credit notes on its payment and invoice (their refund liability is what the refund pays)."""
        yield settled
        if document.kind not in (DocumentKind.REFUND, DocumentKind.REFUND_REVERSAL):
            return
        for applied_to in (settled.external_id, *settled.applies_to):
            for other in self._erp.applied_to(applied_to):
                if other.kind is DocumentKind.CREDIT_MEMO and other.functional_currency is not None:
                    yield other

    def _settled_document(self, document: ErpDocument) -> ErpDocument | None:
        if not document.applies_to or document.kind in OWN_RATE_KINDS:
            return None
        settled = self._erp.get_document(document.applies_to[0])
        if settled is None or settled.functional_currency is None:
            return None
        return settled

    def _account(self, document: ErpDocument, role: AccountRole) -> str:
        return self._mapping.account(role, MappingContext(legal_entity=document.legal_entity))


def _document_rate(document: ErpDocument) -> Rate:
    line = next(line for line in document.journal if line.rate is not None and line.functional_currency)
    assert line.rate is not None and line.rate_date is not None and line.functional_currency is not None
    return Rate(
        base=line.currency,
        quote=line.functional_currency,
        value=line.rate,
        source=f"carried:{document.external_id}",
        as_of=line.rate_date,
    )
