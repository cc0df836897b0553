"""One error tree for the whole node, and its JSON envelope.

    SilnodeError                      500 internal
    ├── BadRequest                    400 bad_request
    │   ├── InvalidName               400 invalid_name
    │   ├── InvalidGGUF               400 invalid_gguf
    │   ├── UnsafePath                400 unsafe_path
    │   └── ConfigError               400 config_error
    ├── Unauthorized                  401 unauthorized
    ├── Forbidden                     403 forbidden
    ├── NotFound                      404 not_found
    │   └── ModelNotFound             404 model_not_found
    ├── Conflict                      409 conflict
    │   ├── ModelExists               409 model_exists
    │   └── DoesNotFit                409 does_not_fit         (the memory estimate says no; --force overrides)
    ├── InsufficientStorage           507 insufficient_storage
    ├── DaemonNotRunning              503 daemon_not_running   (raised by the client only)
    └── DaemonError                   502 daemon_error         (a reply the client cannot read)

Every error carries ``status`` (HTTP) and ``code`` (stable, machine-readable). The daemon sends
``{"ok": false, "error": message, "code": code, "status": status}`` and the client rebuilds the same
class from ``code`` (deluge rebuilds RPC errors the same way), so the CLI maps one tree to messages.
"""

from __future__ import annotations

from typing import Any


class SilnodeError(Exception):
    status = 500
    code = "internal"
    hint: str | None = None  # a next step for the user, shown by the CLI

    def __init__(self, message: str = "", *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message or self.__class__.__name__
        if hint is not None:
            self.hint = hint
        self.details = details

    def __str__(self) -> str:
        return self.message

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": False, "error": self.message, "code": self.code, "status": self.status}
        if self.hint:
            body["hint"] = self.hint
        if self.details:
            body["details"] = self.details
        return body

    @staticmethod
    def from_json(body: dict[str, Any], status: int | None = None) -> "SilnodeError":
        code = body.get("code") if isinstance(body, dict) else None
        cls = _by_code().get(code or "", None)
        message = str(body.get("error", "")) if isinstance(body, dict) else str(body)
        details = body.get("details") if isinstance(body, dict) and isinstance(body.get("details"), dict) else {}
        if cls is None:
            err: SilnodeError = SilnodeError(message or f"daemon error ({code})", **details)
            err.status = int(body.get("status", status or 500)) if isinstance(body, dict) else (status or 500)
            err.code = code or "internal"
        else:
            err = cls(message, **details)
        if isinstance(body, dict) and body.get("hint"):
            err.hint = str(body["hint"])
        return err


class BadRequest(SilnodeError):
    status = 400
    code = "bad_request"


class InvalidName(BadRequest):
    code = "invalid_name"
    hint = "names look like org/model: letters, digits, '.', '_', '-'"


class InvalidGGUF(BadRequest):
    code = "invalid_gguf"


class UnsafePath(BadRequest):
    code = "unsafe_path"


class ConfigError(BadRequest):
    code = "config_error"


class Unauthorized(SilnodeError):
    status = 401
    code = "unauthorized"
    hint = "the CLI reads the token from SILNODE_HOME/api.token; send it as 'Authorization: Bearer <token>'"


class Forbidden(SilnodeError):
    status = 403
    code = "forbidden"


class NotFound(SilnodeError):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"
    hint = "run `silnode list` to see the models in the store"


class Conflict(SilnodeError):
    status = 409
    code = "conflict"


class ModelExists(Conflict):
    code = "model_exists"
    hint = "pick another --name, or remove the old one with `silnode rm NAME`"


class DoesNotFit(Conflict):
    code = "does_not_fit"
    hint = "`silnode recommend` lists what fits; a smaller --ctx needs less memory; --force overrides"


class InsufficientStorage(SilnodeError):
    status = 507
    code = "insufficient_storage"
    hint = "free some disk space (`silnode gc` removes leftovers) or set storage.base_dir to a bigger disk"


class DaemonNotRunning(SilnodeError):
    status = 503
    code = "daemon_not_running"
    hint = "run `silnode daemon start`"


class DaemonError(SilnodeError):
    status = 502
    code = "daemon_error"


def _all_subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def _by_code() -> dict[str, type[SilnodeError]]:
    """code -> class, for every error defined so far (modules may add subclasses later)."""
    return {c.code: c for c in [SilnodeError, *_all_subclasses(SilnodeError)]}
