"""Exceptions. Every one carries the library's stable code (``.code``) and a message that never
contains token, key or secret bytes."""


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
    """A request was not authenticated: send ``status`` with ``WWW-Authenticate:
    www_authenticate`` and ``body`` (JSON) back to the client."""

    def __init__(self, status: int, www_authenticate: str, body: bytes):
        code = "insufficient_scope" if status == 403 else "invalid_token"
        super().__init__(code, f"HTTP {status}: {www_authenticate}")
        self.status = status
        self.www_authenticate = www_authenticate
        self.body = body
        self.headers = {"WWW-Authenticate": www_authenticate, "Content-Type": "application/json"}
