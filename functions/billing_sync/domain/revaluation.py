"""Month-end revaluation of open foreign-currency balances (ASC 830), and its reversal.

At the end of a period (the last day of month YYYY-MM in the entity's calendar: documents are already
dated there) every balance an entity holds in a currency other than its functional currency on a monetary
account (receivables, payment clearing, undeposited funds, customer credit, refunds payable) is translated
again at the rate table's month-end rate. What that differs from the functional amount the balance is
carried at is unrealised gain or loss: one FX_REVALUATION document `fx-revaluation-<entity>-<period>` dated
the month end, with a functional-only line on each account and the opposite on the unrealised FX account,
and its reversal `fx-revaluation-<entity>-<period>-reversal` dated the first day of the next period, so the
balances go back to their carried amounts and a settlement books realised FX against them as usual.

Both documents are finished by the Bookkeeper as scheduled documents (never into a closed period). The
external ids are deterministic and a posted revaluation is never recomputed: a second run posts nothing.
Every month-end rate is read before anything is posted, so a missing rate (MissingRateError naming the
pair and date) leaves the entity untouched.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from dataclasses import dataclass
from datetime import date

from billing_sync.domain.bookkeeping import Bookkeeper
from billing_sync.domain.fx import Rate
from billing_sync.domain.journal import DocumentKind, ErpDocument, JournalLine
from billing_sync.domain.mapping import AccountMapping, AccountRole, MappingContext
from billing_sync.domain.periods import first_day_of_next
from billing_sync.domain.ports import ErpClient

MONETARY_ROLES = (
    AccountRole.ACCOUNTS_RECEIVABLE,
    AccountRole.PAYMENT_CLEARING,
    AccountRole.UNDEPOSITED_FUNDS,
    AccountRole.CUSTOMER_CREDIT,
    AccountRole.REFUND_LIABILITY,
)
"""The roles whose foreign balances are settled in cash later, so are revalued at each month end."""

REVERSAL_SUFFIX = "-reversal"


def revaluation_external_id(legal_entity: str, period: str) -> str:
    """`fx-revaluation-US01-2026-11`: the same entity and period always name the same document."""
    return f"fx-revaluation-{legal_entity}-{period}"


def period_end(period: str) -> date:
    """The last day of `period` (YYYY-MM)."""
    year, month = (int(part) for part in period.split("-"))
    return date(year, month, calendar.monthrange(year, month)[1])


@dataclass(frozen=True)
class OpenBalance:
    """A foreign balance on a monetary account at month end; debit-positive minor units."""

    account: str
    currency: str
    balance: int  # transaction currency
    carried: int  # functional currency, at the rates it was booked at (and realised or revalued since)
    revalued: int  # functional currency, at the month-end rate
    rate: Rate

    @property
    def adjustment(self) -> int:
        """Unrealised gain (positive on an asset) or loss, in functional minor units."""
        return self.revalued - self.carried


@dataclass(frozen=True)
class Revaluation:
    legal_entity: str
    period: str
    month_end: date
    functional_currency: str
    balances: tuple[OpenBalance, ...]
    document: ErpDocument | None  # None when no balance moved
    reversal: ErpDocument | None
    created: bool  # False when the revaluation was already posted (or there was nothing to post)

    @property
    def adjustment(self) -> int:
        return sum(balance.adjustment for balance in self.balances)


class RevaluationService:
    def __init__(self, *, erp: ErpClient, mapping: AccountMapping, bookkeeper: Bookkeeper) -> None:
        self._erp = erp
        self._mapping = mapping
        self._bookkeeper = bookkeeper

    def revalue(self, legal_entity: str, period: str) -> Revaluation:
        """Posts the revaluation of `legal_entity`'s open foreign balances at the end of `period` and its reversal.

        Raises MappingError (unknown entity, no unrealised FX account), MissingRateError (no month-end
        rate: nothing posted), PeriodClosedError, or the ERP's errors.
        """
        entity = self._mapping.entity(legal_entity)
        month_end = period_end(period)
        external_id = revaluation_external_id(legal_entity, period)
        posted = self._erp.get_document(external_id)
        if posted is not None:
            reversal = self._post_reversal(posted, period)
            return Revaluation(
                legal_entity, period, month_end, entity.functional_currency, (), posted, reversal, created=False
            )
        balances = self.open_balances(legal_entity, period)
        moved = [balance for balance in balances if balance.adjustment]
        if not moved:
            return Revaluation(
                legal_entity, period, month_end, entity.functional_currency, tuple(balances), None, None, False
            )
        document = self._bookkeeper.finish(self._document(legal_entity, period, moved), scheduled=True)
        created = self._erp.create_document(document).created
        reversal = self._post_reversal(document, period)
        return Revaluation(
            legal_entity, period, month_end, entity.functional_currency, tuple(balances), document, reversal, created
        )

    def open_balances(self, legal_entity: str, period: str) -> list[OpenBalance]:
        """Every foreign balance on a monetary account from the documents posted by the end of `period`.

        Raises MissingRateError for the first currency without a month-end rate.
        """
        functional = self._mapping.entity(legal_entity).functional_currency
        month_end = period_end(period)
        own = revaluation_external_id(legal_entity, period)
        monetary = self.monetary_accounts(legal_entity)
        sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
        for document in self._erp.posted_documents(legal_entity):
            if document.posting_date > month_end or document.external_id in (own, own + REVERSAL_SUFFIX):
                continue
            for line in document.journal:
                if line.account in monetary and line.currency != functional:
                    totals = sums[(line.account, line.currency)]
                    totals[0] += line.net
                    totals[1] += line.functional_net
        balances = []
        for (account, currency), (balance, carried) in sorted(sums.items()):
            if not (balance or carried):
                continue
            rate = self._bookkeeper.table_rate(currency, functional, month_end)
            balances.append(OpenBalance(account, currency, balance, carried, rate.convert(balance), rate))
        return balances

    def monetary_accounts(self, legal_entity: str) -> set[str]:
        """Every account the mapping can book a monetary role to for `legal_entity` (defaults and rules)."""
        accounts = {
            self._mapping.default_accounts[role] for role in MONETARY_ROLES if role in self._mapping.default_accounts
        }
        for rule in self._mapping.rules:
            if rule.match.legal_entity in (None, legal_entity):
                accounts.update(rule.accounts[role] for role in MONETARY_ROLES if role in rule.accounts)
        return accounts

    def _document(self, legal_entity: str, period: str, balances: list[OpenBalance]) -> ErpDocument:
        entity = self._mapping.entity(legal_entity)
        functional = entity.functional_currency
        external_id = revaluation_external_id(legal_entity, period)
        unrealised = self._mapping.account(AccountRole.UNREALISED_FX, MappingContext(legal_entity=legal_entity))
        journal: list[JournalLine] = []
        for balance in balances:
            side = {
                "currency": balance.currency,
                "functional_currency": functional,
                "rate": balance.rate.value,
                "rate_source": balance.rate.source,
                "rate_date": balance.rate.as_of,
            }
            gain = balance.adjustment
            memo = (
                f"revalue {balance.balance} {balance.currency} minor units at {balance.rate.value}: "
                f"{balance.carried} -> {balance.revalued} {functional}"
            )
            journal.append(
                JournalLine(
                    account=balance.account,
                    functional_debit=max(gain, 0),
                    functional_credit=max(-gain, 0),
                    memo=memo,
                    **side,
                )
            )
            journal.append(
                JournalLine(
                    account=unrealised,
                    functional_debit=max(-gain, 0),
                    functional_credit=max(gain, 0),
                    memo=f"unrealised FX on {balance.account} {balance.currency}",
                    **side,
                )
            )
        return ErpDocument(
            external_id=external_id,
            kind=DocumentKind.FX_REVALUATION,
            legal_entity=legal_entity,
            subsidiary=entity.subsidiary,
            customer_external_id="",
            currency=functional,
            posting_date=period_end(period),
            total=sum(balance.adjustment for balance in balances),
            journal=tuple(journal),
            source_event_id=external_id,
            memo=f"unrealised FX on open foreign balances of {legal_entity} at the end of {period}",
        )

    def _post_reversal(self, document: ErpDocument, period: str) -> ErpDocument:
        reversal = ErpDocument(
            external_id=document.external_id + REVERSAL_SUFFIX,
            kind=DocumentKind.FX_REVALUATION,
            legal_entity=document.legal_entity,
            subsidiary=document.subsidiary,
            customer_external_id=document.customer_external_id,
            currency=document.currency,
            posting_date=max(first_day_of_next(period), document.posting_date),
            total=-document.total,
            applies_to=(document.external_id,),
            journal=tuple(line.reversed(f"reversal: {line.memo}") for line in document.journal),
            source_event_id=document.source_event_id,
            memo=f"reversal of {document.external_id}",
        )
        reversal = self._bookkeeper.finish(reversal, scheduled=True)
        self._erp.create_document(reversal)
        return reversal
