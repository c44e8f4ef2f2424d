"""An in-memory ERP that behaves like the ledger adapter (external-id upserts) and can be told to fail."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from billing_sync.domain.journal import DocumentKind, ErpCustomer, ErpDocument, ErpRef
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

    def _ref(self, document: ErpDocument, *, created: bool) -> ErpRef:
        return ErpRef(
            external_id=document.external_id,
            document_id=ledger_document_id(document.external_id),
            created=created,
            legal_entity=document.legal_entity,
            customer_external_id=document.customer_external_id,
            currency=document.currency,
            total=document.total,
            source_event_id=document.source_event_id,
        )

    def find_document(self, external_id: str) -> ErpRef | None:
        with self._lock:
            document = self.documents.get(external_id)
            return None if document is None else self._ref(document, created=False)

    def applied_to(self, external_id: str) -> list[ErpDocument]:
        with self._lock:
            return [d for d in self.documents.values() if d.applies_to[:1] == (external_id,)]

    def list_documents(self, kind: DocumentKind) -> Iterator[ErpDocument]:
        with self._lock:
            return iter([d for d in self.documents.values() if d.kind is kind])

    def posted_documents(self, legal_entity: str | None = None) -> Iterator[ErpDocument]:
        with self._lock:
            return iter([d for d in self.documents.values() if legal_entity in (None, d.legal_entity)])

    def find_by_reference(self, reference: str) -> ErpRef | None:
        with self._lock:
            found = next((d for d in self.documents.values() if d.reference == reference), None)
            return None if found is None else self._ref(found, created=False)

    def get_document(self, external_id: str) -> ErpDocument | None:
        with self._lock:
            return self.documents.get(external_id)

    def create_document(self, document: ErpDocument) -> ErpRef:
        self._maybe_fail()
        with self._lock:
            self.create_calls += 1
            existing = self.documents.get(document.external_id)
            if existing is None:
                self.documents[document.external_id] = document
            ref = self._ref(existing or document, created=existing is None)
        if self.after_create is not None:
            self.after_create(document)
        return ref

    def applied_total(self, external_id: str, kind: DocumentKind) -> int:
        with self._lock:
            return sum(
                document.total
                for document in self.documents.values()
                if document.kind is kind and document.applies_to[:1] == (external_id,)
            )
