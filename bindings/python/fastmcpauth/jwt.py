"""JWT verification, signing and key generation through libfastmcpauth."""

import ctypes
import json
from collections.abc import Iterable
from functools import cached_property
from typing import Any, Optional, Union

from . import _native
from ._handle import NativeHandle
from .errors import InvalidToken


class AccessToken(NativeHandle):
    """A verified token, as FastMCP's AccessToken: ``token`` (the raw token, unchanged),
    ``client_id``, ``scopes``, ``expires_at``, ``subject``, ``claims``.

    Tokens returned by a verifier read each field from the library on first use, so a hot path
    that only needs the verdict pays for nothing else. ``close()`` (or ``with``) releases the
    library's copy early (its raw token bytes are wiped); fields not read before then raise."""

    _free = staticmethod(_native.access_token_free)
    _kind = "access token"

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
        self._own(None)
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
        access._own(handle)
        return access

    @cached_property
    def token(self) -> str:
        return self._call(_native.access_token_token).decode()

    @cached_property
    def client_id(self) -> str:
        return self._call(_native.access_token_client_id).decode()

    @cached_property
    def scopes(self) -> list:
        handle = self._borrow()
        try:
            count = _native.access_token_scope_count(handle)
            return [_native.access_token_scope(handle, i).decode() for i in range(count)]
        finally:
            self._give_back()

    @cached_property
    def expires_at(self) -> Optional[int]:
        expires = ctypes.c_int64()
        return expires.value if self._call(_native.access_token_expires_at, ctypes.byref(expires)) else None

    @cached_property
    def subject(self) -> Optional[str]:
        subject = self._call(_native.access_token_subject)
        return subject.decode() if subject is not None else None

    @cached_property
    def claims(self) -> dict:
        return json.loads(self._call(_native.access_token_claims_json))

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


StrOrList = Union[str, Iterable[str], None]


class JWTVerifier(NativeHandle):
    """Verifies JWTs against ``public_key`` (PEM, or an HS shared secret), ``jwks`` (a JWKS dict or
    JSON text) or ``jwks_uri``. Thread-safe; call ``close()`` (or use ``with``) to release it early
    (calls running on it finish first; later calls raise InvalidArgument).

    Further keyword options are passed to the library configuration as they are
    (``require_exp``, ``required_claims``, ``typ``, ``max_token_bytes``, ``cache_ttl``,
    ``jwks_timeout``, ``jwks_refetch_cooldown``, ``jwks_cache_ttl``, ...).
    """

    _free = staticmethod(_native.verifier_free)
    _kind = "verifier"

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
        _native.verifier_new(_native.c_json(config, "config"), handle, _native.Error())
        self._own(handle)
        self.required_scopes = list(required_scopes or [])

    def verify(self, token: Union[str, bytes]) -> AccessToken:
        """Returns the AccessToken, or raises InvalidToken with a specific ``.code`` (Unavailable
        when the JWKS cannot be fetched: the token may well be valid)."""
        raw = token.encode() if type(token) is str else bytes(token)
        out = ctypes.c_void_p()
        handle = self._borrow()
        try:
            # ctypes passes `out` and the error by reference itself (the argtypes are pointers).
            _native.verifier_verify(handle, raw, len(raw), out, _native.Error())
        finally:
            self._give_back()
        return AccessToken._from_handle(out)

    def verify_token(self, token: Union[str, bytes]) -> Optional[AccessToken]:
        """FastMCP's contract: the AccessToken, or None when the token is not valid (an outage
        still raises Unavailable)."""
        try:
            return self.verify(token)
        except InvalidToken:
            return None


def _string_call(function, *args) -> str:
    out = ctypes.c_void_p()
    function(*args, out, _native.Error())
    return _native.take_string(out)


def generate_key(alg: str, *, crv: Optional[str] = None, bits: Optional[int] = None, kid: Optional[str] = None) -> dict:
    """A new private JWK for ``alg`` (with ``alg`` and ``kid``; kid defaults to the RFC 7638 thumbprint)."""
    options = {k: v for k, v in {"crv": crv, "bits": bits, "kid": kid}.items() if v is not None}
    return json.loads(
        _string_call(_native.jwk_generate, _native.c_str(alg, "alg"), _native.c_json(options or None, "options"))
    )


def public_jwk(jwk: Union[dict, str]) -> dict:
    """The public part of a private JWK."""
    return json.loads(_string_call(_native.jwk_public, _native.c_json(jwk, "jwk")))


def sign_jwt(claims: dict, key: Union[dict, str], alg: str, headers: Optional[dict] = None) -> str:
    """Signs ``claims`` with the private JWK ``key``; returns the compact JWS."""
    return _string_call(
        _native.jwt_sign,
        _native.c_json(claims, "claims"),
        _native.c_json(key, "key"),
        _native.c_str(alg, "alg"),
        _native.c_json(headers, "headers"),
    )
