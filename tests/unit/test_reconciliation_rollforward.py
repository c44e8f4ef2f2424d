"""The deferred revenue roll-forward of both sides: the billing side from Stripe's documents by day, the ERP side
from the ERP's own documents, compared by the controls to the minor unit."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from billing_sync.domain.accounting.credit_notes import credit_note_document
from billing_sync.domain.accounting.invoices import invoice_document
from billing_sync.domain.accounting.voids import void_document
from billing_sync.domain.events import CreditNoteIssuedEvent, InvoiceIssuedEvent, InvoiceVoidedEvent
from billing_sync.domain.journal import DocumentKind, ErpDocument
from billing_sync.domain.recognition_job import RecognitionService
from billing_sync.reconciliation.engine import ControlResult, reconcile
from billing_sync.reconciliation.extracts import DeferredRevenueRow, Extracts, write_extracts
from billing_sync.reconciliation.rollforward import (
    CreditedLine,
    CreditNoteSchedule,
    InvoiceSchedule,
    ServiceLine,
    billing_roll_forward,
    deferred_revenue_accounts,
    erp_roll_forward,
)
from billing_sync.reconciliation.sources import build_extracts
from tests.fakes.erp import InMemoryErpClient
from tests.unit.test_reconciliation_sources import MAPPING, ListApi, normalise, sample

ANNUAL_LINE = "il_annual"


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def annual_invoice(**changes: Any) -> InvoiceSchedule:
    """120.00 USD of service over 2026-06-15 .. 2027-06-15 (365 days), issued on its first day."""
    fields: dict[str, Any] = {
        "invoice_id": "in_annual",
        "legal_entity": "US01",
        "currency": "USD",
        "issued_on": date(2026, 6, 15),
        "lines": (ServiceLine(ANNUAL_LINE, 120000, midnight(date(2026, 6, 15)), midnight(date(2027, 6, 15))),),
    }
    return InvoiceSchedule(**(fields | changes))


def row(side: str, period: str, opening: int, billed: int, recognised: int, credited: int) -> DeferredRevenueRow:
    return DeferredRevenueRow(
        side=side,
        legal_entity="US01",
        period=period,
        currency="USD",
        opening=opening,
        billed=billed,
        recognised=recognised,
        credited=credited,
        closing=opening + billed - recognised - credited,
    )


def test_an_annual_line_defers_all_but_its_first_day_and_releases_by_day_each_month() -> None:
    # GIVEN an annual line of 120000 issued on its first day, 365 days of service
    invoice = annual_invoice()

    # WHEN the billing side rolls June and July forward
    rows = billing_roll_forward([invoice], [], periods=["2026-06", "2026-07"])

    # THEN billed = 120000 - 120000*1//365; June earns 16 days, July 31 more (floor of the cumulative share)
    assert rows == [
        row("billing", "2026-06", 0, 120000 - 328, 120000 * 16 // 365 - 328, 0),
        row("billing", "2026-07", 114740, 0, 120000 * 47 // 365 - 120000 * 16 // 365, 0),
    ]
    assert rows[1].closing == 120000 - 15452


def test_a_credit_note_takes_its_share_off_the_unearned_rest_and_releases_it_negatively() -> None:
    # GIVEN the annual invoice and a credit note of 60000 against its line on 10 July
    note = CreditNoteSchedule("cn_half", "in_annual", date(2026, 7, 10), (CreditedLine(ANNUAL_LINE, 60000),))

    # WHEN the billing side rolls July forward
    (july,) = billing_roll_forward([annual_invoice()], [note], periods=["2026-07"])

    # THEN 60000 is credited, and 21 of its 339 remaining days (11-31 July) release -60000*21//339 = -3716
    assert july == row("billing", "2026-07", 114740, 0, 10192 - 3716, 60000)
    assert july.closing == (120000 - 15452) + (-60000 + 3716)


def test_a_void_reverses_the_deferral_and_every_release_so_far() -> None:
    # GIVEN the annual invoice voided on 20 August (July released; August stops before the void)
    invoice = annual_invoice(voided_on=date(2026, 8, 20))

    # WHEN the billing side rolls August forward
    (august,) = billing_roll_forward([invoice], [], periods=["2026-08"])

    # THEN the releases of June and July come back as negative recognition and the deferral is credited
    assert august == row("billing", "2026-08", 104548, 0, -(120000 * 47 // 365 - 328), 120000 - 328)
    assert august.closing == 0


def test_a_line_a_credit_note_does_not_know_moves_nothing_and_a_quiet_period_carries_the_opening() -> None:
    note = CreditNoteSchedule("cn_other", "in_annual", date(2026, 7, 10), (CreditedLine(None, 500),))

    rows = billing_roll_forward([annual_invoice()], [note], periods=["2027-07"])

    assert rows == []  # fully released by 15 June 2027: nothing open, nothing moved
    (july,) = billing_roll_forward([annual_invoice()], [note], periods=["2026-07"])
    assert july.credited == 0


# ---- both sides on Stripe's sample documents, posted by the product's own accounting ----


def _with_annual_line(payload: dict[str, Any]) -> dict[str, Any]:
    """June's subscription invoice, its line stretched to a year (2026-06-01 .. 2027-06-01, 365 days)."""
    payload = copy.deepcopy(payload)
    line = payload["data"]["object"]["lines"]["data"][0]
    line["period"]["end"] = int(datetime(2027, 6, 1, tzinfo=UTC).timestamp())
    return payload


class Books:
    """Stripe's sample invoices and credit notes posted into an in-memory ERP, recognised through a day."""

    def __init__(self, *, through: date) -> None:
        self.erp = InMemoryErpClient()
        self.objects: list[dict[str, Any]] = []
        invoices: dict[str, ErpDocument] = {}
        for payload in (
            _with_annual_line(sample("stripe_invoice_finalized_june")),
            sample("stripe_invoice_finalized_renewal_credit_balance"),
            sample("stripe_invoice_finalized_one_off_voided"),
            sample("stripe_invoice_finalized"),
            sample("stripe_invoice_finalized_jpy"),
        ):
            event = normalise(payload)
            assert isinstance(event, InvoiceIssuedEvent)
            document = invoice_document(event, MAPPING)
            self.erp.create_document(document)
            invoices[event.data.invoice_id] = document
            self.objects.append(payload["data"]["object"])
        for name in ("stripe_credit_note_created_pre_payment", "stripe_credit_note_created_post_payment"):
            payload = sample(name)
            event = normalise(payload)
            assert isinstance(event, CreditNoteIssuedEvent)
            self.erp.create_document(credit_note_document(event, MAPPING, invoice=invoices[event.data.invoice_id]))
            self.objects.append(payload["data"]["object"])
        voided = sample("stripe_invoice_voided")
        event = normalise(voided)
        assert isinstance(event, InvoiceVoidedEvent)
        self.erp.create_document(void_document(event, invoice=invoices[event.data.invoice_id], mapping=MAPPING))
        listed = next(found for found in self.objects if found["id"] == event.data.invoice_id)
        listed.update(status="void", status_transitions=voided["data"]["object"]["status_transitions"])
        RecognitionService(erp=self.erp, mapping=MAPPING, clock=lambda: datetime(2026, 12, 2, tzinfo=UTC)).run(through)

    def extracts(self, periods: list[str], *, erp: InMemoryErpClient | None = None) -> Extracts:
        return build_extracts(
            reader=ListApi(self.objects),
            erp=erp or self.erp,
            lineage=[],
            raw_event=lambda record: None,
            mapping=MAPPING,
            periods=periods,
            default_legal_entity="US01",
        )


class WithoutDocument(InMemoryErpClient):
    """The ERP as it would be had one document never been posted."""

    def __init__(self, books: InMemoryErpClient, missing: str) -> None:
        super().__init__()
        self._books, self._missing = books, missing

    def posted_documents(self, legal_entity: str | None = None) -> Iterator[ErpDocument]:
        return (d for d in self._books.posted_documents(legal_entity) if d.external_id != self._missing)

    def find_document(self, external_id: str) -> Any:
        return self._books.find_document(external_id)


@pytest.fixture(scope="module")
def books() -> Books:
    return Books(through=date(2026, 11, 30))


def closing_controls(root: Path, period: str) -> dict[tuple[str, str], ControlResult]:
    result = reconcile(root, period)
    return {(c.legal_entity, c.currency): c for c in result.controls if c.control == "deferred_revenue_closing"}


@pytest.mark.parametrize("period", ["2026-06", "2026-07", "2026-11"])
def test_both_sides_agree_to_the_minor_unit_on_stripes_documents(books: Books, period: str, tmp_path: Path) -> None:
    # GIVEN Stripe's invoices and credit notes posted, voided and recognised by the product through November
    # WHEN both sides are rolled forward for the period
    extracts = books.extracts([period])
    by_side = {(r.side, r.legal_entity, r.currency): r for r in extracts.deferred_revenue}

    # THEN every entity and currency has the same opening, movements and closing on both sides
    keys = {(entity, currency) for _, entity, currency in by_side}
    assert keys
    for entity, currency in keys:
        billing, erp = by_side[("billing", entity, currency)], by_side[("erp", entity, currency)]
        assert (billing.opening, billing.billed, billing.recognised, billing.credited, billing.closing) == (
            erp.opening,
            erp.billed,
            erp.recognised,
            erp.credited,
            erp.closing,
        )
    # AND the controls show both closings with no variance
    write_extracts(tmp_path, extracts)
    controls = closing_controls(tmp_path, period)
    assert set(controls) == keys
    for (entity, currency), control in controls.items():
        assert control.left_amount == by_side[("billing", entity, currency)].closing
        assert control.right_amount == control.left_amount
        assert control.variance == 0


def test_the_annual_line_and_its_credit_note_roll_forward_to_figures_known_by_hand(books: Books) -> None:
    # June 2026's invoice line: 29700 over 365 days from 1 June (the annual variant), issued on 1 June;
    # the pre-payment credit note of 5 June credits 3300 of it, released over the 360 days from 6 June. May's
    # renewal line ended on 1 June: nothing of it is open in June.
    rows = books.extracts(["2026-06"]).deferred_revenue
    (june,) = (r for r in rows if r.side == "billing" and r.currency == "USD")
    assert june.opening == 0
    earned_june = 29700 * 30 // 365 - 29700 * 1 // 365
    released_credit = -(3300 * 25 // 360)
    assert june.billed == 29700 - 29700 * 1 // 365
    assert june.credited == 3300
    assert june.recognised == earned_june + released_credit


def test_a_recognition_release_missing_in_the_erp_shows_a_variance_of_exactly_its_amount(
    books: Books, tmp_path: Path
) -> None:
    # GIVEN the ERP without July's release of the annual invoice
    missing = "stripe-invoice-in_1pXNugNx4RkL2mQeCU4exgNO-recognition-2026-07"
    release = books.erp.get_document(missing)
    assert release is not None and release.kind is DocumentKind.RECOGNITION and release.total
    erp = WithoutDocument(books.erp, missing)

    # WHEN July and August are reconciled
    for period in ("2026-07", "2026-08"):
        root = tmp_path / period
        write_extracts(root, books.extracts([period], erp=erp))
        controls = closing_controls(root, period)

        # THEN US01 USD's closing differs by exactly the missing release (billing has recognised it) ...
        assert controls[("US01", "USD")].variance == -release.total
        # ... and nothing else differs
        assert all(c.variance == 0 for key, c in controls.items() if key != ("US01", "USD"))


def test_erp_roll_forward_buckets_by_kind_and_posting_month(books: Books) -> None:
    documents = list(books.erp.posted_documents())
    rows = erp_roll_forward(documents, accounts=deferred_revenue_accounts(MAPPING), periods=["2026-06"])
    (june,) = (r for r in rows if r.currency == "USD")
    void = next(d for d in documents if d.kind is DocumentKind.INVOICE_VOID)
    assert void.posting_date.strftime("%Y-%m") == "2026-06"
    assert june.closing == june.opening + june.billed - june.recognised - june.credited
