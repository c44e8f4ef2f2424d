"""Composition roots: one cached factory per function, called inside the handler, never at import.

Each handler imports only its own root (`ingest` or `posting`), so a function loads the code it runs
and nothing else. boto3 clients, and Powertools parameters (which imports boto3), are created on the
first invocation. Tests build the domain services with fakes, or call `reset()` after changing the
environment so the next invocation builds fresh adapters.
"""

from __future__ import annotations


def reset() -> None:
    """Forget every built adapter, cached setting and cached secret."""
    from aws_lambda_powertools.utilities import parameters

    from billing_sync import settings
    from billing_sync.composition import (
        aws,
        balances,
        bookkeeping,
        failed_delivery,
        ingest,
        kpis,
        lineage,
        posting,
        recognition,
        reconciliation,
        refund_saga,
        release,
    )

    for cached in (
        aws.aws_client,
        ingest.webhook_intake,
        ingest.partner_ingest,
        failed_delivery.failed_delivery_recorder,
        posting.posting_service,
        posting.erp_client,
        posting.stripe_reader,
        bookkeeping.bookkeeper,
        refund_saga.refund_saga,
        recognition.recognition_service,
        posting.posting_retries,
        posting.erp_circuit_breaker,
        release.document_release,
        settings.release_settings,
        settings.webhook_settings,
        settings.partner_settings,
        settings.posting_settings,
        settings.balances_settings,
        settings.kpi_settings,
        balances.balances_store,
        balances.account_mapping,
        kpis.kpi_reader,
        settings.lineage_api_settings,
        settings.reconciliation_settings,
        lineage.lineage_trails,
        reconciliation.extract_builder,
        reconciliation.publisher,
    ):
        cached.cache_clear()
    parameters.clear_caches()
