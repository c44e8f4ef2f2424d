"""One construct per capability of billing-sync."""
