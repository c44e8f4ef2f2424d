APPLIED_TO_INDEX = "AppliedTo"
"""The embedded ledger's sparse index of documents by the document they apply to (an invoice's payments)."""

BY_REFERENCE_INDEX = "ByReference"
"""The embedded ledger's sparse index of documents by the source's handle on them (a payment's payment intent)."""
