"""Composition root of the revenue recognition function: the posting function's ledger and mapping."""

from __future__ import annotations

from functools import cache

from billing_sync.composition.aws import utc_now
from billing_sync.composition.bookkeeping import bookkeeper
from billing_sync.composition.posting import erp_client
from billing_sync.domain.mapping import AccountMapping
from billing_sync.domain.recognition_job import RecognitionService
from billing_sync.settings import posting_settings


@cache
def recognition_service() -> RecognitionService:
    return RecognitionService(
        erp=erp_client(),
        mapping=AccountMapping.model_validate_json(posting_settings().mapping_file.read_bytes()),
        clock=utc_now,
        bookkeeper=bookkeeper(),
    )


def source_currency(external_id: str) -> str | None:
    """The currency of the document a release came from (None if the ledger no longer has it)."""
    document = erp_client().get_document(external_id)
    return document.currency if document is not None else None
