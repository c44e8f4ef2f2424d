"""`billing-sync mapping check FILE`: validate an account mapping file before deploying it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic

from billing_sync.domain.mapping import AccountMapping, AccountRole
from billing_sync_ops.ops.output import EXIT_ITEMS_FAILED, EXIT_OK, EXIT_USAGE, emit, log


def check_mapping(path: Path, *, as_json: bool) -> int:
    try:
        text = path.read_bytes()
    except OSError as exc:
        log(f"cannot read {path}: {exc.strerror}")
        return EXIT_USAGE
    try:
        mapping = AccountMapping.model_validate_json(text)
    except pydantic.ValidationError as exc:
        errors = [
            {"location": ".".join(str(part) for part in error["loc"]) or "(file)", "message": error["msg"]}
            for error in exc.errors()
        ]
        emit(as_json, {"command": "mapping check", "file": str(path), "valid": False, "errors": errors}, _render)
        return EXIT_ITEMS_FAILED
    payload = {
        "command": "mapping check",
        "file": str(path),
        "valid": True,
        "errors": [],
        "version": mapping.version,
        "legal_entities": sorted(mapping.legal_entities),
        "rules": len(mapping.rules),
        # A role without a default is a MAPPING exception wherever no rule names it.
        "roles_without_default": _roles_without_default(mapping),
    }
    emit(as_json, payload, _render)
    return EXIT_OK


def _roles_without_default(mapping: AccountMapping) -> list[dict[str, Any]]:
    gaps = []
    for role in AccountRole:
        if role in mapping.default_accounts:
            continue
        covered_by = [rule.match.model_dump(exclude_none=True) for rule in mapping.rules if role in rule.accounts]
        gaps.append({"role": role.value, "only_where": covered_by})
    return gaps


def _render(payload: dict[str, Any]) -> str:
    if not payload["valid"]:
        lines = [f"{payload['file']}: invalid account mapping ({len(payload['errors'])} error(s))"]
        lines += [f"  {error['location']}: {error['message']}" for error in payload["errors"]]
        return "\n".join(lines)
    lines = [
        f"{payload['file']}: valid account mapping {payload['version']} "
        f"({len(payload['legal_entities'])} legal entities: {', '.join(payload['legal_entities'])}; "
        f"{payload['rules']} rules)"
    ]
    for gap in payload["roles_without_default"]:
        where = "; ".join(", ".join(f"{k}={v}" for k, v in match.items()) for match in gap["only_where"])
        lines.append(
            f"  note: no default {gap['role']} account"
            + (f"; provided only where {where}" if where else "; no rule provides it either")
        )
    return "\n".join(lines)
