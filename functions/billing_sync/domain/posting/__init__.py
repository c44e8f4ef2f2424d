"""Posting: the rule registry and the service that books canonical events exactly once."""

from billing_sync.domain.posting.rules import POSTED_EVENT_TYPES, POSTING_RULES, PostingRule, RuleKind
from billing_sync.domain.posting.service import DEFAULT_WAIT_HORIZON, PostingResult, PostingService, PostingStatus

__all__ = [
    "DEFAULT_WAIT_HORIZON",
    "POSTED_EVENT_TYPES",
    "POSTING_RULES",
    "PostingResult",
    "PostingRule",
    "PostingService",
    "PostingStatus",
    "RuleKind",
]
