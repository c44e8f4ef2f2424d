"""The fault soak's short variant: a fixed seed, every kind of fault injected, nothing lost, doubled or unbalanced."""

from __future__ import annotations

import pytest

from billing_sync.sources.stripe.normaliser import HANDLED_EVENT_TYPES
from billing_sync_ops.soak import FAULT_RATES, run_soak

pytestmark = pytest.mark.infra  # provisions the synthesised stack on moto

SHORT_SOAK_EVENTS = 300
SHORT_SOAK_SEED = 20261127


@pytest.fixture(scope="module")
def report() -> dict:
    return run_soak(events=SHORT_SOAK_EVENTS, seed=SHORT_SOAK_SEED, reuse_template=True)


def test_the_short_soak_loses_doubles_and_unbalances_nothing(report: dict) -> None:
    # GIVEN a seeded stream of every supported kind, delivered up to five times in random order
    # WHEN it runs through the real handlers with faults injected at every step, then the faults clear
    # THEN every event posted, was ignored or is parked with a category; no document twice; every journal balances;
    # AND the books are those of the same events delivered once each in order, without faults
    assert {key: report[key] for key in ("lost", "double_posted", "unbalanced", "unexplained", "books_differ")} == {
        "lost": 0,
        "double_posted": 0,
        "unbalanced": 0,
        "unexplained": 0,
        "books_differ": 0,
    }, report.get("examples")
    assert report["events"] == SHORT_SOAK_EVENTS and report["seed"] == SHORT_SOAK_SEED
    assert report["in_order"]["documents"] == report["documents"] > 0 and report["in_order"]["unsettled"] == []


def test_the_short_soak_injected_every_kind_of_fault(report: dict) -> None:
    # GIVEN the short soak's run
    # WHEN its fault counters are read
    # THEN each kind of fault actually happened, so the zeros above were earned under fire
    assert set(report["faults_injected"]) == set(FAULT_RATES)
    assert {kind for kind, count in report["faults_injected"].items() if count == 0} == set()
    assert report["posting"]["crashed_invocations"] > 0
    assert report["webhook_deliveries_including_retries"] > report["deliveries"]  # refused deliveries came again


def test_the_short_soak_covered_every_kind_of_event_and_document(report: dict) -> None:
    # GIVEN the short soak's run
    # WHEN its mix and its books are read
    # THEN each kind of Stripe event was sent and each document kind it implies was booked
    assert set(report["event_kinds"]) == {*HANDLED_EVENT_TYPES, "payment_method.attached"}
    assert {
        "invoice",
        "payment",
        "credit_memo",
        "refund",
        "invoice_void",
        "write_off",
        "fee",
        "payout",
        "dispute",
        "dispute_reversal",
    } <= set(report["documents_by_kind"])
    assert report["saga"]["by_status"]["SUCCEEDED"] > 0
