"""JWT verification, signing and key generation through libfastmcpauth."""

import ctypes
import json
from collections.abc import Iterable
from functools import cached_property
from typing import Any, Optional, Union

from . import _native
from .errors import ConfigurationError, FastMCPAuthError, InvalidKey, InvalidToken

_CONFIG_STATUSES = {"invalid_config", "weak_key"}


def _raise(status: int, err: _native.Error, kind=FastMCPAuthError):
    code = _native.status_name(status).decode()
    message = err.message.decode("utf-8", "replace")
    if kind is InvalidToken and code in ("invalid_argument", "internal_error"):
        kind = FastMCPAuthError
    raise kind(code, message)


def _json(value) -> bytes:
    if isinstance(value, (bytes, str)):
        return value.encode() if isinstance(value, str) else value
    return json.dumps(value, separators=(",", ":")).encode()


class AccessToken:
    """A verified token, as FastMCP's AccessToken: ``token`` (the raw token, unchanged),
    ``client_id``, ``scopes``, ``expires_at``, ``subject``, ``claims``.

    Tokens returned by a verifier read each field from the library on first use, so a hot path
    that only needs the verdict pays for nothing else."""

    _FIELDS = ("token", "client_id", "scopes", "expires_at", "subject", "claims")

    def __init__(
        self,
        token: str,
        client_id: str,
        scopes=(),
        expires_at: Optional[int] = None,
        subject: Optional[str] = None,
        claims: Optional[dict] = None,
    ):
        self._handle = None
        self.__dict__.update(
            token=token,
            client_id=client_id,
            scopes=list(scopes),
            expires_at=expires_at,
            subject=subject,
            claims=dict(claims or {}),
        )

    @classmethod
    def _from_handle(cls, handle: ctypes.c_void_p) -> "AccessToken":
        access = cls.__new__(cls)
        access._handle = handle
        return access

    @cached_property
    def token(self) -> str:
        return _native.access_token_token(self._handle).decode()

    @cached_property
    def client_id(self) -> str:
        return _native.access_token_client_id(self._handle).decode()

    @cached_property
    def scopes(self) -> list:
        count = _native.access_token_scope_count(self._handle)
        return [_native.access_token_scope(self._handle, i).decode() for i in range(count)]

    @cached_property
    def expires_at(self) -> Optional[int]:
        expires = ctypes.c_int64()
        return expires.value if _native.access_token_expires_at(self._handle, ctypes.byref(expires)) else None

    @cached_property
    def subject(self) -> Optional[str]:
        subject = _native.access_token_subject(self._handle)
        return subject.decode() if subject is not None else None

    @cached_property
    def claims(self) -> dict:
        return json.loads(_native.access_token_claims_json(self._handle))

    def _values(self):
        return tuple(getattr(self, name) for name in self._FIELDS)

    def __eq__(self, other):
        return isinstance(other, AccessToken) and self._values() == other._values()

    __hash__ = None

    def __repr__(self):
        # The raw token is a bearer credential: never printed.
        return (
            f"AccessToken(client_id={self.client_id!r}, subject={self.subject!r}, scopes={self.scopes!r},"
            f" expires_at={self.expires_at!r})"
        )

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            _native.access_token_free(handle)


StrOrList = Union[str, Iterable[str], None]


class JWTVerifier:
    """Verifies JWTs against ``public_key`` (PEM, or an HS shared secret), ``jwks`` (a JWKS dict or
    JSON text) or ``jwks_uri``. Thread-safe; call ``close()`` (or use ``with``) to release it early.

    Further keyword options are passed to the library configuration as they are
    (``require_exp``, ``required_claims``, ``typ``, ``max_token_bytes``, ``cache_ttl``,
    ``jwks_timeout``, ``jwks_refetch_cooldown``, ``jwks_cache_ttl``, ...).
    """

    def __init__(
        self,
        public_key: Union[str, bytes, None] = None,
        jwks: Union[dict, str, None] = None,
        jwks_uri: Optional[str] = None,
        issuer: StrOrList = None,
        audience: StrOrList = None,
        algorithms: Optional[Iterable[str]] = None,
        required_scopes: Optional[Iterable[str]] = None,
        leeway: float = 0,
        algorithm: Optional[str] = None,
        cache_size: Optional[int] = None,
        **options: Any,
    ):
        if isinstance(public_key, bytes):
            public_key = public_key.decode()
        config = {
            "public_key": public_key,
            "jwks": jwks,
            "jwks_uri": jwks_uri,
            "issuer": issuer if isinstance(issuer, (str, type(None))) else list(issuer),
            "audience": audience if isinstance(audience, (str, type(None))) else list(audience),
            "algorithms": list(algorithms) if algorithms is not None else None,
            "algorithm": algorithm,
            "required_scopes": list(required_scopes) if required_scopes is not None else None,
            "leeway": leeway,
            "cache_size": cache_size,
        }
        config.update(options)
        config = {k: v for k, v in config.items() if v is not None}
        self.config = config
        handle = ctypes.c_void_p()
        err = _native.Error()
        status = _native.verifier_new(_json(config), ctypes.byref(handle), ctypes.byref(err))
        if status != 0:
            _raise(
                status,
                err,
                ConfigurationError if _native.status_name(status).decode() in _CONFIG_STATUSES else FastMCPAuthError,
            )
        self._handle = handle
        self.required_scopes = list(required_scopes or [])

    def verify(self, token: Union[str, bytes]) -> AccessToken:
        """Returns the AccessToken, or raises InvalidToken with a specific ``.code``."""
        handle = self._handle
        if handle is None:
            raise FastMCPAuthError("invalid_argument", "the verifier is closed")
        raw = token.encode() if type(token) is str else bytes(token)
        out = ctypes.c_void_p()
        err = _native.Error()
        # ctypes passes `out` and `err` by reference itself (the argtypes are pointers).
        status = _native.verifier_verify(handle, raw, len(raw), out, err)
        if status != 0:
            _raise(status, err, InvalidToken)
        return AccessToken._from_handle(out)

    def verify_token(self, token: Union[str, bytes]) -> Optional[AccessToken]:
        """FastMCP's contract: the AccessToken, or None when the token is not valid."""
        try:
            return self.verify(token)
        except InvalidToken:
            return None

    def close(self):
        if getattr(self, "_handle", None) is not None:
            _native.verifier_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


def _string_call(function, *args) -> str:
    out = ctypes.c_void_p()
    err = _native.Error()
    status = function(*args, ctypes.byref(out), ctypes.byref(err))
    if status != 0:
        _raise(status, err, InvalidKey)
    return _native.take_string(out)


def generate_key(alg: str, *, crv: Optional[str] = None, bits: Optional[int] = None, kid: Optional[str] = None) -> dict:
    """A new private JWK for ``alg`` (with ``alg`` and ``kid``; kid defaults to the RFC 7638 thumbprint)."""
    options = {k: v for k, v in {"crv": crv, "bits": bits, "kid": kid}.items() if v is not None}
    return json.loads(_string_call(_native.jwk_generate, alg.encode(), _json(options) if options else None))


def public_jwk(jwk: Union[dict, str]) -> dict:
    """The public part of a private JWK."""
    return json.loads(_string_call(_native.jwk_public, _json(jwk)))


def sign_jwt(claims: dict, key: Union[dict, str], alg: str, headers: Optional[dict] = None) -> str:
    """Signs ``claims`` with the private JWK ``key``; returns the compact JWS."""
    return _string_call(
        _native.jwt_sign, _json(claims), _json(key), alg.encode(), _json(headers) if headers is not None else None
    )
