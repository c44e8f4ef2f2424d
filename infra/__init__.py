"""CDK definition of billing-sync: one thin stack composed of one construct per capability."""

from infra.config import BillingSyncConfig
from infra.stack import BillingSyncStack

__all__ = ["BillingSyncConfig", "BillingSyncStack"]
