"""The /api/v1 routes, one module per resource (as datasette splits its views). Importing this package
registers them all in :data:`silnode.api.base.ROUTES`, in the order the OpenAPI document lists them."""

from silnode.api.routes import identity, models, payments, serving, system, transfers

__all__ = ["identity", "models", "serving", "system", "transfers", "payments"]
