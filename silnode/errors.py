"""One error tree for the whole node, and its JSON envelope. Every error class of the node lives here.

    SilnodeError                          500 internal
    ├── BadRequest                        400 bad_request
    │   ├── InvalidName                   400 invalid_name
    │   ├── InvalidGGUF                   400 invalid_gguf
    │   ├── UnsafePath                    400 unsafe_path
    │   ├── ConfigError                   400 config_error
    │   ├── InvalidMnemonic               400 invalid_mnemonic
    │   │   ├── MnemonicLengthError       400 mnemonic_bad_length
    │   │   ├── MnemonicWordError         400 mnemonic_bad_word
    │   │   └── MnemonicChecksumError     400 mnemonic_bad_checksum
    │   ├── InvalidSecretName             400 invalid_secret_name
    │   └── CatalogInvalid                400 invalid_catalog      (a catalog or pointer that fails its checks)
    ├── Unauthorized                      401 unauthorized
    │   └── WrongPassword                 401 wrong_password
    ├── Forbidden                         403 forbidden
    │   └── AddressRefused                403 address_refused      (a URL from elsewhere reaches a refused address)
    ├── NotFound                          404 not_found
    │   ├── ModelNotFound                 404 model_not_found
    │   ├── ModelNotLoaded                404 model_not_loaded     (not served)
    │   ├── IdentityNotFound              404 no_identity
    │   ├── SecretNotFound                404 secret_not_found
    │   └── CatalogNotFound               404 catalog_not_found
    ├── Conflict                          409 conflict
    │   ├── ModelExists                   409 model_exists
    │   ├── DoesNotFit                    409 does_not_fit         (the memory estimate says no; --force overrides)
    │   ├── IdentityExists                409 identity_exists
    │   └── NameAmbiguous                 409 ambiguous_name       (two publishers, no followed one)
    ├── QueueFull                         429 queue_full           (carries retry_after)
    ├── RequestTimeout                    408 request_timeout      (a request body slower than daemon.body_timeout)
    ├── ManifestError                     500 invalid_manifest     (a manifest silnode did not write)
    ├── KeystoreError                     500 keystore_error
    │   ├── KeystoreCorrupt               500 keystore_corrupt
    │   └── KeystoreVersionError          500 keystore_version
    ├── TorrentError                      500 torrent_error        (libtorrent failed, or a bad session state)
    │   └── BadTorrent                    400 bad_torrent          (a malformed magnet, a tampered "silnode" key)
    ├── ModelLoadError                    500 model_load_failed
    ├── RequestFailed                     500 generation_failed    (the worker answered with an error)
    │   ├── ContextOverflow               400 context_overflow     (also a BadRequest)
    │   └── InvalidGenerationRequest      400 invalid_request      (also a BadRequest; names the field)
    ├── ModelUnavailable                  503 model_unavailable    (loading, or down after crashes)
    ├── WorkerCrashed                     503 worker_crashed
    ├── TaskCancelled                     503 cancelled            (the daemon is stopping)
    ├── NostrError                        502 nostr_error          (no relay answered or accepted an event)
    ├── JobRejected                       400 job_rejected         (a NIP-90 job refused; its reason goes out as feedback)
    ├── JobNotFound                       404 job_not_found
    ├── SellingOff                        409 selling_off          (no identity, or selling turned off)
    ├── InsufficientStorage               507 insufficient_storage
    ├── DaemonNotRunning                  503 daemon_not_running   (raised by the client only)
    ├── DiscoveryUnavailable              503 discovery_unavailable (no identity to publish with, no DHT)
    └── DaemonError                       502 daemon_error         (a reply the client cannot read)

Every error carries ``status`` (HTTP) and ``code`` (stable, machine-readable). The daemon sends
``{"ok": false, "error": message, "code": code, "status": status}`` and the client rebuilds the same
class from ``code`` (deluge rebuilds RPC errors the same way), so the CLI maps one tree to messages.
Third-party exceptions (libtorrent's RuntimeError, llama.cpp's ValueError, ...) are translated where they
are caught (``raise TorrentError(...) from exc``), so callers only ever see this tree.

No message ever carries a secret: a bad mnemonic word is named by its position (the word itself is kept on
the exception as ``.word`` for an interactive prompt that wants to echo it, never in ``str()`` or
``to_json()``), and keystore errors name the file, not its contents.
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
    def from_json(body: dict[str, Any], status: int | None = None) -> SilnodeError:
        code = body.get("code") if isinstance(body, dict) else None
        cls = _by_code().get(code or "", None)
        message = str(body.get("error", "")) if isinstance(body, dict) else str(body)
        raw = body.get("details") if isinstance(body, dict) else None
        details: dict[str, Any] = raw if isinstance(raw, dict) else {}
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


class AddressRefused(Forbidden):
    """A URL from elsewhere (a magnet's web seed, a job's input) points at an address this node will not
    fetch from (silnode.netpolicy)."""

    code = "address_refused"
    hint = (
        "a URL that arrives in a magnet or a job may only reach public addresses (private ones too with "
        "network.lan_only); pass the URL yourself on the command line to trust it"
    )


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


class ManifestError(SilnodeError):
    """A model manifest that is not the shape silnode writes (hand-edited, or damaged)."""

    code = "invalid_manifest"
    hint = "run `silnode verify`"


# ---- identity --------------------------------------------------------------------------------------------


class InvalidMnemonic(BadRequest):
    code = "invalid_mnemonic"
    hint = "check the words against your written backup; a BIP39 phrase has 12 or 24 words (15, 18, 21 also valid)"


class MnemonicLengthError(InvalidMnemonic):
    code = "mnemonic_bad_length"


class MnemonicWordError(InvalidMnemonic):
    code = "mnemonic_bad_word"
    word: str | None = None  # the offending word; deliberately not part of the message


class MnemonicChecksumError(InvalidMnemonic):
    code = "mnemonic_bad_checksum"
    hint = "every word is a BIP39 word, so one is probably wrong (a similar word) or two are swapped"


class InvalidSecretName(BadRequest):
    code = "invalid_secret_name"
    hint = "secret names use letters, digits, '.', '_', '-' (1-64 characters)"


class WrongPassword(Unauthorized):
    code = "wrong_password"
    hint = "the keystore password is set by `silnode identity new/import` (SILNODE_PASSWORD, --password-file)"


class IdentityNotFound(NotFound):
    code = "no_identity"
    hint = "create one with `silnode identity new` or restore one with `silnode identity import`"


class SecretNotFound(NotFound):
    code = "secret_not_found"
    hint = "`silnode secrets list` shows the names"


class IdentityExists(Conflict):
    code = "identity_exists"
    hint = "--force keeps a backup of the old keystore (identity.enc.bak) and writes the new one"


class KeystoreError(SilnodeError):
    code = "keystore_error"


class KeystoreCorrupt(KeystoreError):
    code = "keystore_corrupt"
    hint = (
        "the keystore file is damaged; restore it from a backup (identity.enc.bak) or re-import the "
        "phrase with `silnode identity import --force`"
    )


class KeystoreVersionError(KeystoreError):
    code = "keystore_version"
    hint = "this keystore was written by a newer silnode; upgrade silnode to read it"


# ---- BitTorrent ------------------------------------------------------------------------------------------


class TorrentError(SilnodeError):
    status = 500
    code = "torrent_error"


class BadTorrent(TorrentError):
    """Input we refuse; a subclass so ``except TorrentError`` still catches it, but the API answers 400."""

    status = 400
    code = "bad_torrent"


# ---- serving ---------------------------------------------------------------------------------------------


class ModelNotLoaded(NotFound):
    code = "model_not_loaded"
    hint = "`silnode models loaded` lists the served models; `silnode serve NAME` loads one"


class ModelUnavailable(SilnodeError):
    status = 503
    code = "model_unavailable"


class ModelLoadError(SilnodeError):
    status = 500
    code = "model_load_failed"


class WorkerCrashed(SilnodeError):
    status = 503
    code = "worker_crashed"


class RequestFailed(SilnodeError):
    """The worker answered a request with an error; it is still running."""

    status = 500
    code = "generation_failed"


class ContextOverflow(RequestFailed, BadRequest):
    status = 400
    code = "context_overflow"


class InvalidGenerationRequest(RequestFailed, BadRequest):
    """A generation request with a field missing, of the wrong type or out of range: refused by
    :mod:`silnode.serving.request` before it is queued, or by the worker. ``details["param"]`` names the field."""

    status = 400
    code = "invalid_request"


class QueueFull(SilnodeError):
    status = 429
    code = "queue_full"
    hint = "the model is busy: retry after the Retry-After seconds, or load it with fewer clients"


class RequestTimeout(SilnodeError):
    """A client sent its request body too slowly (daemon.body_timeout)."""

    status = 408
    code = "request_timeout"


# ---- tasks -----------------------------------------------------------------------------------------------


class TaskCancelled(SilnodeError):
    status = 503
    code = "cancelled"


# ---- discovery -------------------------------------------------------------------------------------------


class CatalogInvalid(BadRequest):
    """A catalog document or pointer that fails its checks (signature, key, seq, shape); dropped and logged."""

    code = "invalid_catalog"


class CatalogNotFound(NotFound):
    code = "catalog_not_found"
    hint = "`silnode following` lists the catalogs this node follows; `silnode discover` searches them"


class NameAmbiguous(Conflict):
    """Two publishers offer the same model name and neither is followed (details list the infohashes)."""

    code = "ambiguous_name"


class DiscoveryUnavailable(SilnodeError):
    """Discovery needs what this node lacks (an identity for publishing, the DHT for lookups)."""

    status = 503
    code = "discovery_unavailable"


# ---- selling on Nostr (NIP-90 DVM) -----------------------------------------------------------------------


class NostrError(SilnodeError):
    status = 502
    code = "nostr_error"
    hint = "check nostr.relays (`silnode status` shows each relay's state), or run `silnode relay`"


class JobRejected(BadRequest):
    """A job this node will not run; the message is the reason its customer reads in the error feedback."""

    code = "job_rejected"


class JobNotFound(NotFound):
    code = "job_not_found"
    hint = "`silnode jobs` lists the recent jobs"


class SellingOff(Conflict):
    code = "selling_off"
    hint = "selling needs an identity (`silnode identity new`) unlocked at daemon start (SILNODE_PASSWORD)"


# ---- payments (silnode.payments) ------------------------------------------------------------------------
#   PaymentError 502 payment_error · PaymentRequired 402 payment_required · InsufficientPayment 402
#   insufficient_payment · BidTooLow 400 bid_too_low · InvalidCashuToken 400 invalid_cashu_token ·
#   MintNotAllowed 400 mint_not_allowed · TokenSpent 409 token_spent · InvoiceExpired 410 invoice_expired ·
#   PaymentsUnavailable 503 payments_unavailable. Messages name amounts and mints, never a token or a key.


class PaymentError(SilnodeError):
    """A payment backend (mint, LNbits, NWC wallet) failed or answered something we cannot read."""

    status = 502
    code = "payment_error"
    hint = "check payments.backend and its URL in config.yaml; the backend's own log says more"


class PaymentRequired(SilnodeError):
    """The job or request must be paid first; ``details`` carry ``amount_msats`` (and a bolt11 when one exists)."""

    status = 402
    code = "payment_required"


class InsufficientPayment(PaymentRequired):
    code = "insufficient_payment"
    hint = "send a token worth at least the price (details.price_msats, rounded up to whole sats)"


class InsufficientBalance(PaymentRequired):
    code = "insufficient_balance"
    hint = "top the key up: POST /v1/balance with a cashu token in X-Cashu and the key as the bearer"


class BidTooLow(BadRequest):
    """A NIP-90 ``bid`` below the node's price; ``details["price_msats"]`` names the price."""

    code = "bid_too_low"
    hint = "bid at least the price named in the message"


class InvalidCashuToken(BadRequest):
    code = "invalid_cashu_token"
    hint = "send a cashuA... or cashuB... token as your wallet exports it"


class MintNotAllowed(BadRequest):
    code = "mint_not_allowed"
    hint = "pay with ecash from one of the node's mints (payments.mints)"


class TokenSpent(Conflict):
    code = "token_spent"
    hint = "this ecash was already spent; send fresh proofs"


class InvoiceExpired(SilnodeError):
    status = 410
    code = "invoice_expired"
    hint = "ask again for a new invoice"


class PaymentsUnavailable(SilnodeError):
    status = 503
    code = "payments_unavailable"


# ---- watchdogs --------------------------------------------------------------------------------------------


class LoadTimeout(ModelLoadError):
    """A model worker did not say "ready" within serve.load_timeout: it was killed."""

    status = 504
    code = "load_timeout"
    hint = "a big model on a slow disk needs a higher serve.load_timeout (config.yaml, or SILNODE_SERVE__LOAD_TIMEOUT)"


class GenerationStalled(WorkerCrashed):
    """A generation made no progress for serve.stall_timeout: its worker was killed (and is started again)."""

    status = 504
    code = "generation_stalled"


class RecheckTimeout(SilnodeError):
    """libtorrent did not finish re-hashing a model within network.recheck_timeout."""

    status = 504
    code = "recheck_timeout"


class ChecksumMismatch(BadRequest):
    """A file's SHA-256 is not the one it was expected to have; nothing was stored."""

    code = "checksum_mismatch"


class HubChecksumMismatch(SilnodeError):
    """The bytes downloaded from the Hugging Face Hub are not what the Hub's own LFS sha256 says."""

    status = 502
    code = "hub_checksum_mismatch"


class HubChecksumMissing(SilnodeError):
    """The Hub gives no LFS sha256 for a file that must be verified (a seed-catalog entry without one)."""

    status = 502
    code = "hub_checksum_missing"


def _all_subclasses(cls: type[SilnodeError]) -> list[type[SilnodeError]]:
    out: list[type[SilnodeError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def _by_code() -> dict[str, type[SilnodeError]]:
    """code -> class, for every error defined so far (modules may add subclasses later)."""
    classes: list[type[SilnodeError]] = [SilnodeError, *_all_subclasses(SilnodeError)]
    return {c.code: c for c in classes}
