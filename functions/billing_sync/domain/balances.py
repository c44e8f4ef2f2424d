"""Running balances: what one posted document adds to which balance, and how the balances read back.

A posted document adds, for its posting month (`YYYY-MM`) and legal entity:
- trial balance rows: debit and credit per account and currency, on the `transaction` basis (the lines'
  transaction amounts) and the `functional` basis (their functional amounts; an untranslated line counts
  when its currency is the entity's functional currency), the same rules as `journal.entity_trial_balance`;
- deferred revenue roll-forward buckets per currency: billed (invoices' net credits to deferred revenue),
  recognised (recognition releases' net debits), credited (every other kind's net debits, also by kind),
  the definition of `billing_sync_ops.ops.revenue.deferred_roll_forward`;
- a document count and total per kind and currency (a payment applied to nothing also adds to `unapplied`).

The deltas of one document are aggregated per balance key, so a document touches each key once and the
adapter can apply them as one transaction (or a few, split deterministically). Everything here is pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from billing_sync.domain.journal import (
    CurrencyBasis,
    DocumentKind,
    EntityTrialBalance,
    EntityTrialBalanceRow,
    ErpDocument,
    TrialBalanceCheck,
)

BASES: tuple[CurrencyBasis, ...] = ("transaction", "functional")

TRIAL_BALANCE = "TB"
ROLL_FORWARD = "DR"
DOCUMENTS = "DOCS"


def period_of(day: date) -> str:
    """The balance period of a posting date: `YYYY-MM`."""
    return day.strftime("%Y-%m")


@dataclass(frozen=True, slots=True)
class BalanceDelta:
    """What one document adds to one balance item: `amounts` by attribute name, `labels` to read it back."""

    pk: str
    sk: str
    amounts: Mapping[str, int]
    labels: Mapping[str, str] = field(default_factory=dict)


def trial_balance_key(entity: str, basis: CurrencyBasis) -> str:
    return f"{TRIAL_BALANCE}#{entity}#{basis}"


def roll_forward_key(entity: str) -> str:
    return f"{ROLL_FORWARD}#{entity}"


def documents_key(entity: str) -> str:
    return f"{DOCUMENTS}#{entity}"


def document_deltas(
    document: ErpDocument,
    *,
    deferred_revenue_accounts: Iterable[str],
    functional_currencies: Mapping[str, str],
) -> tuple[BalanceDelta, ...]:
    """Every balance `document` moves, one delta per key, sorted by key (a deterministic order to split on)."""
    entity, period = document.legal_entity, period_of(document.posting_date)
    deferred = set(deferred_revenue_accounts)
    sums: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    labels: dict[tuple[str, str], dict[str, str]] = {}

    for basis in BASES:
        for line in document.journal:
            if basis == "transaction":
                currency, debit, credit = line.currency, line.debit, line.credit
            elif line.functional_currency is not None:
                currency, debit, credit = line.functional_currency, line.functional_debit, line.functional_credit
            elif functional_currencies.get(entity) == line.currency:
                currency, debit, credit = line.currency, line.debit, line.credit
            else:
                continue
            if not (debit or credit):
                continue  # a functional-only line moves nothing in transaction currency
            key = (trial_balance_key(entity, basis), f"{period}#{currency}#{line.account}")
            sums[key]["debit"] += debit
            sums[key]["credit"] += credit
            labels[key] = {"legal_entity": entity, "account": line.account, "currency": currency, "period": period}

    moved: dict[str, int] = {}  # credits minus debits on deferred revenue, per currency
    for line in document.journal:
        if line.account in deferred:
            moved[line.currency] = moved.get(line.currency, 0) + line.credit - line.debit
    for currency, amount in moved.items():
        key = (roll_forward_key(entity), f"{period}#{currency}")
        bucket = sums[key]
        if document.kind is DocumentKind.INVOICE:
            bucket["billed"] += amount
        elif document.kind is DocumentKind.RECOGNITION:
            bucket["recognised"] -= amount
        else:
            bucket["credited"] -= amount
            bucket[f"credited_{document.kind.value}"] -= amount
        labels[key] = {"legal_entity": entity, "currency": currency, "period": period}

    key = (documents_key(entity), f"{period}#{document.kind.value}#{document.currency}")
    sums[key]["documents"] += 1
    sums[key]["total"] += document.total
    if document.kind is DocumentKind.PAYMENT and not document.applies_to:
        sums[key]["unapplied"] += document.total
    labels[key] = {"legal_entity": entity, "kind": document.kind.value, "currency": document.currency, "period": period}

    return tuple(
        BalanceDelta(pk=pk, sk=sk, amounts=dict(sums[(pk, sk)]), labels=labels[(pk, sk)]) for pk, sk in sorted(sums)
    )


def chunks(deltas: tuple[BalanceDelta, ...], size: int) -> tuple[tuple[BalanceDelta, ...], ...]:
    """`deltas` in consecutive groups of at most `size` (the same groups on every delivery)."""
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return tuple(deltas[start : start + size] for start in range(0, len(deltas), size)) or ((),)


# ---- the read side ----


@dataclass(frozen=True, slots=True)
class TrialBalanceItem:
    """One stored trial balance item: an entity's account in a currency for one month."""

    legal_entity: str
    account: str
    currency: str
    period: str
    debit: int
    credit: int


def trial_balance_as_of(
    items: Iterable[TrialBalanceItem], *, basis: CurrencyBasis, as_of: str | None
) -> EntityTrialBalance:
    """The trial balance through the end of month `as_of` (`YYYY-MM`; None: every month) from stored items.

    Balances are kept per month, so as-of within a month is not answerable from them: read the ledger
    (`journal.entity_trial_balance(documents, as_of=day)`) for that.
    """
    totals: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for item in items:
        if as_of is not None and item.period > as_of:
            continue
        row = totals[(item.legal_entity, item.account, item.currency)]
        row[0] += item.debit
        row[1] += item.credit
    checks: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (entity, _, currency), (debit, credit) in totals.items():
        checks[(entity, currency)][0] += debit
        checks[(entity, currency)][1] += credit
    return EntityTrialBalance(
        as_of=None,
        currency_basis=basis,
        rows=tuple(
            EntityTrialBalanceRow(legal_entity=entity, account=account, currency=currency, debit=debit, credit=credit)
            for (entity, account, currency), (debit, credit) in sorted(totals.items())
            if debit or credit
        ),
        checks=tuple(
            TrialBalanceCheck(legal_entity=entity, currency=currency, debit=debit, credit=credit)
            for (entity, currency), (debit, credit) in sorted(checks.items())
        ),
        documents=0,
    )


@dataclass(frozen=True, slots=True)
class RollForwardItem:
    """One stored roll-forward bucket: an entity's deferred revenue movements in a currency for one month."""

    legal_entity: str
    currency: str
    period: str
    billed: int
    recognised: int
    credited: int
    credited_by_kind: Mapping[str, int]


def roll_forward(items: Iterable[RollForwardItem], *, period: str | None = None) -> list[dict[str, object]]:
    """Per entity and currency: opening + billed - recognised - credited = closing.

    With `period` (`YYYY-MM`): opening is every earlier month's closing and the movements are that month's;
    without: opening 0 and the movements of every month, the shape of `ops.revenue.deferred_roll_forward`.
    """
    rows: dict[tuple[str, str], dict[str, object]] = {}
    for item in items:
        if period is not None and item.period > period:
            continue
        row = rows.setdefault(
            (item.legal_entity, item.currency),
            {
                "legal_entity": item.legal_entity,
                "currency": item.currency,
                "opening": 0,
                "billed": 0,
                "recognised": 0,
                "credited": 0,
                "credited_by_kind": {},
                "closing": 0,
            },
        )
        net = item.billed - item.recognised - item.credited
        if period is not None and item.period < period:
            row["opening"] = _int(row["opening"]) + net
        else:
            row["billed"] = _int(row["billed"]) + item.billed
            row["recognised"] = _int(row["recognised"]) + item.recognised
            row["credited"] = _int(row["credited"]) + item.credited
            by_kind = row["credited_by_kind"]
            assert isinstance(by_kind, dict)
            for kind, amount in item.credited_by_kind.items():
                by_kind[kind] = by_kind.get(kind, 0) + amount
        row["closing"] = _int(row["closing"]) + net
    return [rows[key] for key in sorted(rows)]


def _int(value: object) -> int:
    assert isinstance(value, int)
    return value
