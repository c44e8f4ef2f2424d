"""An in-memory ERP that behaves like the ledger adapter (external-id upserts) and can be told to fail."""

from __future__ import annotations

import threading
from collections.abc import Callable

from billing_sync.domain.journal import ErpCustomer, ErpDocument, ErpRef
from billing_sync.erp.ledger import ledger_document_id


class InMemoryErpClient:
    def __init__(self) -> None:
        self.documents: dict[str, ErpDocument] = {}
        self.customers: dict[str, ErpCustomer] = {}
        self.create_calls = 0
        self.fail_next: list[Exception] = []
        self.after_create: Callable[[ErpDocument], None] | None = None
        self._lock = threading.Lock()

    def _maybe_fail(self) -> None:
        if self.fail_next:
            raise self.fail_next.pop(0)

    def upsert_customer(self, customer: ErpCustomer) -> ErpRef:
        self._maybe_fail()
        with self._lock:
            self.customers[customer.external_id] = customer
        return ErpRef(external_id=customer.external_id, document_id="CUS-" + customer.external_id, created=True)

    def find_document(self, external_id: str) -> ErpRef | None:
        with self._lock:
            document = self.documents.get(external_id)
        if document is None:
            return None
        return ErpRef(
            external_id=external_id,
            document_id=ledger_document_id(external_id),
            created=False,
            legal_entity=document.legal_entity,
        )

    def create_document(self, document: ErpDocument) -> ErpRef:
        self._maybe_fail()
        with self._lock:
            self.create_calls += 1
            created = document.external_id not in self.documents
            if created:
                self.documents[document.external_id] = document
        if self.after_create is not None:
            self.after_create(document)
        return ErpRef(
            external_id=document.external_id, document_id=ledger_document_id(document.external_id), created=created
        )
