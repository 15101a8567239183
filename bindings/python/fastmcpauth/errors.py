"""Exceptions. Every one carries the library's stable code (``.code``) and a message that never
contains token, key or secret bytes.

Every failed library call raises the class ``STATUS_EXCEPTIONS`` names for its status (one class
per status; ``exception_for(code)``). A few statuses belong to two families and have a class
that is both (``WeakKey`` is an InvalidKey and a ConfigurationError, ``StoreUnavailable`` a
StoreError and an Unavailable, ...), so ``except`` on either family catches them."""

from typing import Optional


class FastMCPAuthError(Exception):
    """Base class: ``code`` is the stable lowercase status name, ``message`` a sentence.
    Raised as it is for internal_error and for a status this binding does not know."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidArgument(FastMCPAuthError, ValueError):
    """An argument is unusable (invalid_argument): a NUL byte in a string, a bad TTL, a value
    that is not a JSON object, a call on an object that is already closed, ..."""


class ConfigurationError(FastMCPAuthError, ValueError):
    """A verifier, store or provider configuration is invalid (invalid_config; weak_key is a
    WeakKey, which is also a ConfigurationError)."""


class InvalidKey(FastMCPAuthError, ValueError):
    """A key or algorithm name is unusable (invalid_key, unsupported_algorithm; also weak_key
    and key_type_mismatch through WeakKey and KeyTypeMismatch)."""


class WeakKey(InvalidKey, ConfigurationError):
    """weak_key: RSA under 2048 bits, an HS secret shorter than its hash, a short signing key."""


class InvalidToken(FastMCPAuthError):
    """A token was rejected: a JWT verdict (bad signature, expired, wrong audience, ...) or a
    Fernet verdict (malformed, bad signature, expired, decryption failed)."""


class KeyTypeMismatch(InvalidToken, InvalidKey):
    """key_type_mismatch: a token's alg does not fit the verifier's key (a token verdict), or a
    key given to the signing and key tools does not fit the algorithm (an unusable key)."""


class StoreError(FastMCPAuthError):
    """A store operation failed (corrupted_value, undecryptable_value, plaintext_value; also
    store_unavailable, over_capacity and too_large through their classes)."""


class TooLarge(InvalidToken, StoreError):
    """too_large: an input over its size cap: a token (a verdict) or a value to store."""


class Unavailable(FastMCPAuthError):
    """Something needed is temporarily unavailable (jwks_unavailable, upstream_unavailable,
    rate_limited; store_unavailable and over_capacity through StoreUnavailable). Retry later:
    the input may well be valid, so this is never a reason to discard a token or sign in again."""


class StoreUnavailable(StoreError, Unavailable):
    """The store cannot take the operation now: unreachable or locked (store_unavailable), or a
    collection is full (over_capacity)."""


class OAuthClientError(FastMCPAuthError):
    """The client side could not obtain a token: the sign-in was denied (authorization_denied),
    timed out (authorization_timeout) or was cancelled (cancelled); no browser could be opened
    (browser_unavailable); the server's metadata is missing or unacceptable (discovery_failed); no
    client id could be had (registration_failed)."""


# One class per status name; "ok" raises nothing. The binding raises exception_for(code).
STATUS_EXCEPTIONS = {
    "ok": None,
    "invalid_argument": InvalidArgument,
    "invalid_config": ConfigurationError,
    "internal_error": FastMCPAuthError,
    "malformed_token": InvalidToken,
    "malformed_base64": InvalidToken,
    "malformed_header": InvalidToken,
    "malformed_claims": InvalidToken,
    "alg_not_allowed": InvalidToken,
    "key_not_found": InvalidToken,
    "key_type_mismatch": KeyTypeMismatch,
    "bad_signature": InvalidToken,
    "expired": InvalidToken,
    "not_yet_valid": InvalidToken,
    "invalid_issuer": InvalidToken,
    "invalid_audience": InvalidToken,
    "invalid_type": InvalidToken,
    "missing_claim": InvalidToken,
    "invalid_claim": InvalidToken,
    "insufficient_scope": InvalidToken,
    "unsupported_crit": InvalidToken,
    "too_large": TooLarge,
    "jwks_unavailable": Unavailable,
    "invalid_key": InvalidKey,
    "weak_key": WeakKey,
    "unsupported_algorithm": InvalidKey,
    "decryption_failed": InvalidToken,
    "store_unavailable": StoreUnavailable,
    "corrupted_value": StoreError,
    "undecryptable_value": StoreError,
    "plaintext_value": StoreError,
    "token_revoked": InvalidToken,
    "upstream_unavailable": Unavailable,
    "rate_limited": Unavailable,
    "over_capacity": StoreUnavailable,
    "authorization_denied": OAuthClientError,
    "authorization_timeout": OAuthClientError,
    "discovery_failed": OAuthClientError,
    "registration_failed": OAuthClientError,
    "browser_unavailable": OAuthClientError,
    "cancelled": OAuthClientError,
}


def exception_for(code: str) -> Optional[type]:
    """The class raised for a status name; FastMCPAuthError for a name this binding does not
    know; None for "ok"."""
    return STATUS_EXCEPTIONS.get(code, FastMCPAuthError)


class AuthChallenge(FastMCPAuthError):
    """A request was not authenticated: send ``status`` with ``headers`` and ``body`` (JSON) back to
    the client. 401 (``invalid_token``) and 403 (``insufficient_scope``) carry ``WWW-Authenticate``;
    503 (``temporarily_unavailable``: the store, the identity provider or the JWKS cannot be
    reached) carries ``Retry-After`` and must not make the client sign in again."""

    def __init__(self, status: int, www_authenticate: str, body: bytes, headers: Optional[dict] = None):
        code = {403: "insufficient_scope", 503: "temporarily_unavailable"}.get(status, "invalid_token")
        super().__init__(code, f"HTTP {status}: {www_authenticate}")
        self.status = status
        self.www_authenticate = www_authenticate
        self.body = body
        self.headers = dict(headers) if headers else {"WWW-Authenticate": www_authenticate}
        self.headers.setdefault("Content-Type", "application/json")

    @property
    def is_outage(self) -> bool:
        """True for a 503: the token may well be valid; retry later."""
        return self.status == 503
