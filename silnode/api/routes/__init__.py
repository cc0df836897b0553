"""The /api/v1 routes, one module per resource (as datasette splits its views). Importing this package
registers them all in :data:`silnode.api.base.ROUTES`, in the order the OpenAPI document lists them."""

from silnode.api.routes import (
    dashboard,
    discovery,
    identity,
    jobs,
    models,
    payments,
    serving,
    system,
    tokens,
    transfers,
)

__all__ = [
    "dashboard",
    "discovery",
    "identity",
    "jobs",
    "models",
    "payments",
    "serving",
    "system",
    "tokens",
    "transfers",
]
