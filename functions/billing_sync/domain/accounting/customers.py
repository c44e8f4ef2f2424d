"""customer.upserted: the ERP customer record in the subsidiary of the customer's legal entity."""

from __future__ import annotations

from billing_sync.domain.accounting.external_ids import customer_external_id
from billing_sync.domain.errors import EventValidationError
from billing_sync.domain.events import CustomerUpsertedEvent
from billing_sync.domain.journal import ErpCustomer
from billing_sync.domain.mapping import AccountMapping


def erp_customer(event: CustomerUpsertedEvent, mapping: AccountMapping) -> ErpCustomer:
    """The ERP customer record; raises EventValidationError for an unknown legal entity."""
    entity = mapping.legal_entities.get(event.legal_entity)
    if entity is None:
        raise EventValidationError(f"legal entity {event.legal_entity!r} is not known to mapping {mapping.version}")
    return ErpCustomer(
        external_id=customer_external_id(event.source, event.data.customer_id),
        name=event.data.name,
        email=event.data.email,
        subsidiary=entity.subsidiary,
        currency=event.data.default_currency,
    )
