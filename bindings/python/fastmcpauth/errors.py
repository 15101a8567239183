"""Exceptions. Every one carries the library's stable code (``.code``) and a message that never
contains token, key or secret bytes."""

from typing import Optional


class FastMCPAuthError(Exception):
    """Base class: ``code`` is the stable lowercase status name, ``message`` a sentence."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class InvalidToken(FastMCPAuthError):
    """A token was rejected (bad signature, expired, wrong audience, ...)."""


class ConfigurationError(FastMCPAuthError, ValueError):
    """A verifier or store configuration is invalid (invalid_config, weak_key)."""


class InvalidKey(FastMCPAuthError, ValueError):
    """A key, algorithm or argument given to signing or key tools is unusable."""


class StoreError(FastMCPAuthError):
    """A store operation failed (store_unavailable, corrupted_value, undecryptable_value,
    plaintext_value, too_large, invalid_argument, ...)."""


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
