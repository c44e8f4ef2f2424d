"""The README's table of Stripe events is derived from the code: it names every type the code handles."""

from __future__ import annotations

import re
from pathlib import Path

from billing_sync.domain.posting import POSTING_RULES
from billing_sync.sources.stripe import HANDLED_EVENT_TYPES

README = Path(__file__).resolve().parents[2] / "README.md"


def journal_table() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Stripe events and the journals they make")
    return text[start : text.index("\n## ", start + 1)]


def test_every_handled_stripe_type_has_a_row():
    # GIVEN the README's table
    table = journal_table()

    # THEN every Stripe type the normaliser maps is named in it (written whole, or as `.updated` after its family)
    named = set(re.findall(r"`([a-z_]+(?:\.[a-z_]+)+)`", table))
    shorthand = {
        f"{family}{suffix}"
        for family, suffixes in re.findall(r"`([a-z_.]+)\.created`((?:, `\.[a-z_]+`)+)", table)
        for suffix in re.findall(r"`(\.[a-z_]+)`", suffixes)
    }
    missing = set(HANDLED_EVENT_TYPES) - named - shorthand
    assert not missing, f"README journal table lacks {sorted(missing)}"


def test_every_canonical_type_the_registry_posts_has_a_row():
    table = journal_table()
    missing = {rule.event_type.value for rule in POSTING_RULES.values()} - set(re.findall(r"`([a-z_.]+)`", table))
    assert not missing, f"README journal table lacks {sorted(missing)}"
