"""The running balances table: one item per balance key (`pk`, `sk`), kept current as documents post.

Applying a document is exactly-once against stream redelivery: each TransactWriteItems carries a marker
item `APPLIED#<external id>` (`#<n>` for the n-th chunk of a journal too large for one transaction) put
with `attribute_not_exists(pk)` and the ADD updates of its balance keys; a redelivered document fails the
marker's condition, so DynamoDB cancels the whole transaction and nothing is added twice.

Reads are queries per entity (the entities come from the account mapping): the table holds one item per
entity, account, currency and month plus one marker per document, and a read never scans it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from billing_sync.aws.errors import error_code, store_error
from billing_sync.domain.balances import (
    BalanceDelta,
    RollForwardItem,
    TrialBalanceItem,
    chunks,
    document_deltas,
    documents_key,
    roll_forward_key,
    trial_balance_key,
)
from billing_sync.domain.journal import CurrencyBasis, ErpDocument
from billing_sync.erp.ledger import _document  # the ledger's own item format is the stream's NEW_IMAGE

_STORE = "balances store"
APPLIED = "APPLIED#"
# TransactWriteItems takes at most 100 actions: one is the chunk's marker.
MAX_DELTAS_PER_TRANSACTION = 99
_MARKER_SK = "-"


def document_from_image(image: Mapping[str, Any]) -> ErpDocument | None:
    """The ledger document in a stream record's NEW_IMAGE; None for any other ledger item (a customer)."""
    pk = image.get("pk", {}).get("S", "")
    if not pk.startswith("DOC#"):
        return None
    return _document(pk.removeprefix("DOC#"), dict(image))


class DynamoBalancesStore:
    """Adds documents to the balances table and reads trial balances and roll-forwards back."""

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        deferred_revenue_accounts: Iterable[str],
        functional_currencies: Mapping[str, str],
        clock: Any = None,
    ) -> None:
        self._client = client
        self._table = table_name
        self._deferred = frozenset(deferred_revenue_accounts)
        self._functional = dict(functional_currencies)
        self._clock = clock or (lambda: datetime.now(UTC))

    def apply(self, document: ErpDocument) -> bool:
        """Adds `document` to its balances once; False when every part was already applied.

        Raises RetryablePostingError (throttling, a conflicting transaction) or BillingSyncError.
        """
        deltas = document_deltas(
            document, deferred_revenue_accounts=self._deferred, functional_currencies=self._functional
        )
        parts = chunks(deltas, MAX_DELTAS_PER_TRANSACTION)
        applied_any = False
        for number, part in enumerate(parts):
            marker = APPLIED + document.external_id + (f"#{number}" if len(parts) > 1 else "")
            applied_any |= self._transact(marker, document, part)
        return applied_any

    def _transact(self, marker: str, document: ErpDocument, part: tuple[BalanceDelta, ...]) -> bool:
        actions: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self._table,
                    "Item": {
                        "pk": {"S": marker},
                        "sk": {"S": _MARKER_SK},
                        "document_id": {"S": document.external_id},
                        "applied_at": {"S": self._clock().isoformat()},
                    },
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        actions += [self._update(delta) for delta in part]
        try:
            self._client.transact_write_items(TransactItems=actions)
        except ClientError as exc:
            if error_code(exc) == "TransactionCanceledException" and _marker_existed(exc):
                return False
            raise store_error(exc, _STORE, f"apply {document.external_id}") from exc
        except BotoCoreError as exc:
            raise store_error(exc, _STORE, f"apply {document.external_id}") from exc
        return True

    def _update(self, delta: BalanceDelta) -> dict[str, Any]:
        names: dict[str, str] = {}
        values: dict[str, Any] = {}
        adds, sets = [], []
        for index, (attribute, amount) in enumerate(sorted(delta.amounts.items())):
            names[f"#a{index}"] = attribute
            values[f":a{index}"] = {"N": str(amount)}
            adds.append(f"#a{index} :a{index}")
        for index, (attribute, text) in enumerate(sorted(delta.labels.items())):
            names[f"#l{index}"] = attribute
            values[f":l{index}"] = {"S": text}
            sets.append(f"#l{index} = :l{index}")
        expression = "ADD " + ", ".join(adds)
        if sets:
            expression = "SET " + ", ".join(sets) + " " + expression
        return {
            "Update": {
                "TableName": self._table,
                "Key": {"pk": {"S": delta.pk}, "sk": {"S": delta.sk}},
                "UpdateExpression": expression,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
            }
        }

    # ---- reading ----

    def trial_balance_items(
        self, entities: Iterable[str], *, basis: CurrencyBasis, through: str | None = None
    ) -> Iterator[TrialBalanceItem]:
        """Stored trial balance items of `entities` for months up to `through` (`YYYY-MM`), one query each."""
        for entity in entities:
            for item in self._query(trial_balance_key(entity, basis), through):
                yield TrialBalanceItem(
                    legal_entity=item["legal_entity"]["S"],
                    account=item["account"]["S"],
                    currency=item["currency"]["S"],
                    period=item["period"]["S"],
                    debit=int(item.get("debit", {}).get("N", "0")),
                    credit=int(item.get("credit", {}).get("N", "0")),
                )

    def roll_forward_items(self, entities: Iterable[str], *, through: str | None = None) -> Iterator[RollForwardItem]:
        for entity in entities:
            for item in self._query(roll_forward_key(entity), through):
                yield RollForwardItem(
                    legal_entity=item["legal_entity"]["S"],
                    currency=item["currency"]["S"],
                    period=item["period"]["S"],
                    billed=int(item.get("billed", {}).get("N", "0")),
                    recognised=int(item.get("recognised", {}).get("N", "0")),
                    credited=int(item.get("credited", {}).get("N", "0")),
                    credited_by_kind={
                        name.removeprefix("credited_"): int(value["N"])
                        for name, value in item.items()
                        if name.startswith("credited_")
                    },
                )

    def document_counts(self, entities: Iterable[str], *, through: str | None = None) -> Iterator[dict[str, Any]]:
        """Per entity, month, kind and currency: `documents`, `total` and `unapplied` (payments applied to nothing)."""
        for entity in entities:
            for item in self._query(documents_key(entity), through):
                yield {
                    "legal_entity": item["legal_entity"]["S"],
                    "period": item["period"]["S"],
                    "kind": item["kind"]["S"],
                    "currency": item["currency"]["S"],
                    "documents": int(item.get("documents", {}).get("N", "0")),
                    "total": int(item.get("total", {}).get("N", "0")),
                    "unapplied": int(item.get("unapplied", {}).get("N", "0")),
                }

    def is_applied(self, external_id: str) -> bool:
        try:
            item = self._client.get_item(
                TableName=self._table, Key={"pk": {"S": APPLIED + external_id}, "sk": {"S": _MARKER_SK}}
            ).get("Item")
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _STORE, f"read the marker of {external_id}") from exc
        return item is not None

    def _query(self, pk: str, through: str | None) -> Iterator[dict[str, Any]]:
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": {"S": pk}}
        if through is not None:
            condition += " AND sk <= :through"
            values[":through"] = {"S": through + "#~"}  # `~` sorts after every currency code and account
        try:
            for page in self._client.get_paginator("query").paginate(
                TableName=self._table, KeyConditionExpression=condition, ExpressionAttributeValues=values
            ):
                yield from page["Items"]
        except (BotoCoreError, ClientError) as exc:
            raise store_error(exc, _STORE, f"read {pk}") from exc


def _marker_existed(exc: ClientError) -> bool:
    reasons = exc.response.get("CancellationReasons") or []  # type: ignore[typeddict-item]
    return bool(reasons) and reasons[0].get("Code") == "ConditionalCheckFailed"
