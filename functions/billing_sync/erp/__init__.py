APPLIED_TO_INDEX = "AppliedTo"
"""The embedded ledger's sparse index of documents by the document they apply to (an invoice's payments)."""
