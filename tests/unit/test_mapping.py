"""Account mapping rules: data validated at load; the most specific rule wins; gaps are MAPPING errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pydantic
import pytest
from hypothesis import given
from hypothesis import strategies as st

import billing_sync
from billing_sync.domain.errors import ExceptionCategory, MappingError
from billing_sync.domain.mapping import AccountMapping, AccountRole, LegalEntity, MappingContext, MappingRule, RuleMatch

SHIPPED_MAPPING = Path(billing_sync.__file__).parent / "config" / "account_mapping.json"

ENTITIES = ("US01", "JP01", "KW01")
REVENUE_CLASSES = ("subscription", "one_off", "usage")
REGIONS = ("NA", "APAC", "EMEA")
CHANNELS = ("direct", "partner")


def shipped_mapping_data() -> dict[str, Any]:
    """The shipped mapping as plain data, for tests that vary one part of it."""
    return json.loads(SHIPPED_MAPPING.read_text(encoding="utf-8"))


def mapping_with(*, rules: list[dict[str, Any]] | None = None, **changes: Any) -> AccountMapping:
    """The shipped mapping with its rules (and any other top-level field) replaced."""
    data = shipped_mapping_data()
    if rules is not None:
        data["rules"] = rules
    data.update(changes)
    return AccountMapping.model_validate(data)


def rule(account: str, **match: str) -> dict[str, Any]:
    return {"match": match, "accounts": {"revenue": account}}


def test_the_shipped_mapping_loads_and_names_every_role():
    # WHEN
    mapping = AccountMapping.model_validate_json(SHIPPED_MAPPING.read_bytes())

    # THEN
    assert mapping.version == "2026-11-27.2"
    assert set(mapping.legal_entities) == set(ENTITIES)
    functional = {code: entity.functional_currency for code, entity in mapping.legal_entities.items()}
    assert functional == {"US01": "USD", "JP01": "JPY", "KW01": "KWD"}
    # no entity is restricted: ordinary business (a JPY invoice on the US entity) is never refused
    assert all(entity.currencies is None for entity in mapping.legal_entities.values())
    assert mapping.legal_entities["US01"].transacts_in("JPY")
    assert set(mapping.default_accounts) == set(AccountRole)
    assert set(mapping.default_items) == set(REVENUE_CLASSES)


@pytest.mark.parametrize(
    ("context", "role", "account"),
    [
        (MappingContext(legal_entity="US01", revenue_class="one_off"), "revenue", "4100 Professional Services Revenue"),
        (MappingContext(legal_entity="US01", revenue_class="usage"), "revenue", "4200 Usage Revenue"),
        (MappingContext(legal_entity="US01", revenue_class="subscription"), "revenue", "4000 Subscription Revenue"),
        (MappingContext(legal_entity="JP01"), "tax_payable", "2310 Consumption Tax Payable"),
        (MappingContext(legal_entity="KW01"), "tax_payable", "2320 VAT Payable"),
        (MappingContext(legal_entity="US01"), "tax_payable", "2300 Sales Tax Payable"),
        (MappingContext(legal_entity="JP01", channel="web"), "accounts_receivable", "1200 Accounts Receivable"),
    ],
)
def test_the_shipped_rules_pick_accounts(context, role, account):
    # GIVEN
    mapping = AccountMapping.model_validate_json(SHIPPED_MAPPING.read_bytes())

    # WHEN / THEN
    assert mapping.account(AccountRole(role), context) == account


def test_the_most_specific_matching_rule_wins_whatever_the_order():
    # GIVEN rules of rising specificity listed least specific last
    mapping = mapping_with(
        rules=[
            rule("4010 JP Subscription Direct", legal_entity="JP01", revenue_class="subscription", channel="direct"),
            rule("4005 JP Subscription", legal_entity="JP01", revenue_class="subscription"),
            rule("4001 JP", legal_entity="JP01"),
        ]
    )

    # WHEN / THEN
    def revenue(**context: str) -> str:
        return mapping.account(AccountRole.REVENUE, MappingContext(**context))

    assert revenue(legal_entity="JP01", revenue_class="subscription", channel="direct") == "4010 JP Subscription Direct"
    assert revenue(legal_entity="JP01", revenue_class="subscription", channel="partner") == "4005 JP Subscription"
    assert revenue(legal_entity="JP01", revenue_class="usage") == "4001 JP"
    assert revenue(legal_entity="US01", revenue_class="subscription") == "4000 Subscription Revenue"


def test_a_specific_rule_without_the_role_falls_through_to_a_broader_rule_then_the_default():
    # GIVEN a specific rule that only sets tax, and a broad rule that sets revenue
    mapping = mapping_with(
        rules=[
            {"match": {"legal_entity": "JP01", "revenue_class": "usage"}, "accounts": {"tax_payable": "2311 JP Usage"}},
            rule("4201 Usage", revenue_class="usage"),
        ]
    )
    context = MappingContext(legal_entity="JP01", revenue_class="usage")

    # WHEN / THEN
    assert mapping.account(AccountRole.TAX_PAYABLE, context) == "2311 JP Usage"
    assert mapping.account(AccountRole.REVENUE, context) == "4201 Usage"
    assert mapping.account(AccountRole.BAD_DEBT, context) == "6500 Bad Debt Expense"


def test_items_come_from_the_most_specific_rule_then_the_defaults():
    # GIVEN
    mapping = mapping_with(rules=[{"match": {"legal_entity": "KW01", "revenue_class": "one_off"}, "item": "SRV-KW"}])

    # WHEN / THEN
    assert mapping.item(MappingContext(legal_entity="KW01", revenue_class="one_off")) == "SRV-KW"
    assert mapping.item(MappingContext(legal_entity="US01", revenue_class="one_off")) == "SRV-ONBOARDING"
    with pytest.raises(MappingError, match="no ERP item"):
        mapping.item(MappingContext(legal_entity="US01"))


def test_a_role_no_rule_or_default_names_is_a_mapping_error():
    # GIVEN a mapping without a discounts account
    data = shipped_mapping_data()
    del data["default_accounts"]["discounts"]
    mapping = AccountMapping.model_validate(data)

    # WHEN / THEN
    with pytest.raises(MappingError, match="no discounts account") as caught:
        mapping.account(AccountRole.DISCOUNTS, MappingContext(legal_entity="US01"))
    assert caught.value.category is ExceptionCategory.MAPPING


def test_an_unknown_entity_is_a_mapping_error():
    # GIVEN / WHEN / THEN
    with pytest.raises(MappingError, match="no legal entity 'DE01'"):
        mapping_with().entity("DE01")


def test_a_rule_naming_an_unknown_legal_entity_is_refused_at_load():
    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError, match="unknown legal entity 'DE01'"):
        mapping_with(rules=[rule("4000 DE", legal_entity="DE01")])


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"default_accounts": {"not_a_role": "9999"}}, id="unknown-role"),
        pytest.param({"legal_entities": {}}, id="no-entities"),
        pytest.param({"legal_entities": {"US01": {"subsidiary": "1", "name": "x", "currencies": ["ZZZ"]}}}, id="ccy"),
        pytest.param({"legal_entities": {"US01": {"subsidiary": "1", "name": "x"}}}, id="no-functional-currency"),
        pytest.param(
            {
                "legal_entities": {
                    "US01": {
                        "subsidiary": "1",
                        "name": "x",
                        "functional_currency": "USD",
                        "stripe_accounts": ["acct_1"],
                    },
                    "JP01": {
                        "subsidiary": "2",
                        "name": "y",
                        "functional_currency": "JPY",
                        "stripe_accounts": ["acct_1"],
                    },
                }
            },
            id="stripe-account-in-two-entities",
        ),
        pytest.param({"version": ""}, id="empty-version"),
        pytest.param({"owner": "finance"}, id="extra-field"),
    ],
)
def test_an_invalid_mapping_is_refused_at_load(change):
    # WHEN / THEN
    with pytest.raises(pydantic.ValidationError):
        mapping_with(**change)


# ---- property: the chosen account is the one the written-down rule predicts -------------------

matches = st.builds(
    RuleMatch,
    legal_entity=st.none() | st.sampled_from(ENTITIES),
    revenue_class=st.none() | st.sampled_from(REVENUE_CLASSES),
    region=st.none() | st.sampled_from(REGIONS),
    channel=st.none() | st.sampled_from(CHANNELS),
)
rules_strategy = st.lists(
    st.builds(
        MappingRule,
        match=matches,
        accounts=st.dictionaries(st.sampled_from([AccountRole.REVENUE, AccountRole.TAX_PAYABLE]), st.just("")),
    ),
    max_size=8,
).map(
    lambda rules: tuple(
        r.model_copy(update={"accounts": {role: f"{role.value}#{index}" for role in r.accounts}})
        for index, r in enumerate(rules)
    )
)
contexts = st.builds(
    MappingContext,
    legal_entity=st.sampled_from(ENTITIES),
    revenue_class=st.none() | st.sampled_from(REVENUE_CLASSES),
    region=st.none() | st.sampled_from(REGIONS),
    channel=st.none() | st.sampled_from(CHANNELS),
)


def expected_account(mapping: AccountMapping, role: AccountRole, context: MappingContext) -> str:
    """The documented rule: of the matching rules naming the role, the most specific; ties go to the first listed."""
    candidates = [
        (index, rule)
        for index, rule in enumerate(mapping.rules)
        if role in rule.accounts
        and all(value is None or value == getattr(context, name) for name, value in rule.match.model_dump().items())
    ]
    if not candidates:
        return mapping.default_accounts[role]
    _, best = min(candidates, key=lambda pair: (-pair[1].match.specificity(), pair[0]))
    return best.accounts[role]


@given(rules_strategy, contexts, st.sampled_from([AccountRole.REVENUE, AccountRole.TAX_PAYABLE]))
def test_account_choice_follows_specificity_then_file_order(rules, context, role):
    # GIVEN a mapping with random rules
    mapping = mapping_with(rules=[r.model_dump() for r in rules])

    # WHEN / THEN
    assert mapping.account(role, context) == expected_account(mapping, role, context)


def test_an_entity_restricted_to_currencies_transacts_in_those_only():
    # GIVEN an entity the mapping restricts to JPY
    entity = LegalEntity(subsidiary="2", name="Example Software KK", functional_currency="JPY", currencies=("jpy",))

    # THEN
    assert entity.transacts_in("JPY")
    assert not entity.transacts_in("USD")
