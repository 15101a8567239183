"""Resource-server mode: one auth object that serves the discovery routes and authenticates
requests, as FastMCP's RemoteAuthProvider / AuthKitProvider / JWTVerifier."""

import ctypes
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Optional, Union

from . import _native
from ._handle import NativeHandle
from .errors import AuthChallenge
from .jwt import AccessToken, JWTVerifier


@dataclass(frozen=True)
class Response:
    """An HTTP response to send as it is."""

    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""


def _response(handle: ctypes.c_void_p) -> Response:
    try:
        count = _native.response_header_count(handle)
        headers = {
            _native.response_header_name(handle, i).decode(): _native.response_header_value(handle, i).decode()
            for i in range(count)
        }
        length = ctypes.c_size_t()
        pointer = _native.response_body(handle, ctypes.byref(length))
        return Response(
            status=_native.response_status(handle), headers=headers, body=ctypes.string_at(pointer, length.value)
        )
    finally:
        _native.response_free(handle)


def _new(config: dict):
    handle = ctypes.c_void_p()
    config = {k: v for k, v in config.items() if v is not None}
    _native.auth_new(_native.c_json(config, "config"), handle, _native.Error())
    return handle


class AuthProvider(NativeHandle):
    """The auth facade (thread-safe). Build it with AuthKitProvider, RemoteAuthProvider,
    StaticTokenProvider, OAuthProxy, OIDCProxy, WorkOSProvider, AuthProvider.from_config (any
    provider, JWT verification included) or auth_from_env. ``close()`` (or ``with``) releases it
    once the calls running on it return; later calls raise InvalidArgument."""

    _free = staticmethod(_native.auth_free)
    _kind = "auth provider"

    def __init__(self, handle: ctypes.c_void_p, config: Optional[dict] = None):
        self._own(handle)
        self.config = config

    @classmethod
    def from_config(cls, config: dict) -> "AuthProvider":
        return cls(_new(config), config)

    def describe(self) -> dict:
        """The configuration without secrets: provider, required_scopes, authorization_servers,
        routes (the paths `handle` answers), and resource / resource_metadata when base_url is set."""
        out = ctypes.c_void_p()
        self._call(_native.auth_describe, out, _native.Error())
        return json.loads(_native.take_string(out))

    def handle(
        self,
        method: str,
        target: str,
        headers: Optional[Mapping[str, str]] = None,
        body: bytes = b"",
        client_address: Optional[str] = None,
    ) -> Optional[Response]:
        """The response to one of the facade's routes (discovery; with an OAuth proxy also
        register, authorize, consent, callback, token, revoke), or None when the request is not
        one of ours. ``client_address`` is the peer's IP (registration rate limits key on it).
        May block on the store and the upstream provider: call it off the event loop."""
        out = ctypes.c_void_p()
        body = bytes(body)
        self._call(
            _native.auth_handle,
            _native.c_str(method, "method"),
            _native.c_str(target, "target"),
            _native.c_json(dict(headers or {}), "headers"),
            body,
            len(body),
            _native.c_str(client_address or None, "client_address"),
            out,
            _native.Error(),
        )
        return _response(out) if out.value else None

    def authenticate(
        self,
        authorization_header: Optional[str],
        required_scopes: Optional[Iterable[str]] = None,
        target: Optional[str] = None,
    ) -> AccessToken:
        """The AccessToken, or raises AuthChallenge (401, 403, or 503 while something the check needs
        cannot be reached) to send back as it is."""
        token, challenge = ctypes.c_void_p(), ctypes.c_void_p()
        self._call(
            _native.auth_authenticate,
            _native.c_str(authorization_header, "authorization_header"),
            _native.c_str(" ".join(required_scopes), "required_scopes") if required_scopes else None,
            _native.c_str(target, "target"),
            token,
            challenge,
            _native.Error(),
        )
        if challenge.value:
            response = _response(challenge)
            raise AuthChallenge(
                response.status, response.headers.get("WWW-Authenticate", "Bearer"), response.body, response.headers
            )
        return AccessToken._from_handle(token)


def _verifier_config(token_verifier: Union[JWTVerifier, dict]) -> dict:
    config = dict(token_verifier.config if isinstance(token_verifier, JWTVerifier) else token_verifier)
    config.pop("required_scopes", None)
    return config


def AuthKitProvider(
    authkit_domain: str,
    base_url: str,
    required_scopes: Optional[Iterable[str]] = None,
    mcp_path: str = "/mcp",
    resource_name: Optional[str] = None,
) -> AuthProvider:
    """WorkOS AuthKit in resource-server mode (FastMCP's AuthKitProvider)."""
    return AuthProvider.from_config(
        {
            "provider": "authkit",
            "authkit_domain": authkit_domain,
            "base_url": base_url,
            "required_scopes": list(required_scopes) if required_scopes else None,
            "mcp_path": mcp_path,
            "resource_name": resource_name,
        }
    )


def RemoteAuthProvider(
    token_verifier: Union[JWTVerifier, dict],
    authorization_servers: Iterable[str],
    base_url: str,
    required_scopes: Optional[Iterable[str]] = None,
    mcp_path: str = "/mcp",
    resource_name: Optional[str] = None,
) -> AuthProvider:
    """Any token verifier plus the authorization servers that issue its tokens."""
    scopes = list(required_scopes) if required_scopes else (getattr(token_verifier, "required_scopes", None) or None)
    return AuthProvider.from_config(
        {
            "provider": "remote",
            "token_verifier": _verifier_config(token_verifier),
            "authorization_servers": list(authorization_servers),
            "base_url": base_url,
            "required_scopes": scopes,
            "mcp_path": mcp_path,
            "resource_name": resource_name,
        }
    )


def StaticTokenProvider(
    tokens: Mapping[str, Mapping],
    base_url: Optional[str] = None,
    required_scopes: Optional[Iterable[str]] = None,
    mcp_path: str = "/mcp",
) -> AuthProvider:
    """Fixed tokens for development: {token: {"client_id", "scopes", "expires_at"}}."""
    return AuthProvider.from_config(
        {
            "provider": "static",
            "tokens": {k: dict(v) for k, v in tokens.items()},
            "base_url": base_url,
            "required_scopes": list(required_scopes) if required_scopes else None,
            "mcp_path": mcp_path,
        }
    )


def _proxy_config(provider: str, base_url: str, required_scopes, mcp_path: str, resource_name, options: dict) -> dict:
    config = {
        "provider": provider,
        "base_url": base_url,
        "required_scopes": list(required_scopes) if required_scopes else None,
        "mcp_path": mcp_path,
        "resource_name": resource_name,
    }
    config.update({k: (list(v) if isinstance(v, (tuple, set)) else v) for k, v in options.items()})
    return config


def OAuthProxy(
    *,
    upstream_authorization_endpoint: str,
    upstream_token_endpoint: str,
    upstream_client_id: str,
    upstream_client_secret: Optional[str] = None,
    base_url: str,
    required_scopes: Optional[Iterable[str]] = None,
    mcp_path: str = "/mcp",
    resource_name: Optional[str] = None,
    **options,
) -> AuthProvider:
    """An authorization server in front of an identity provider without dynamic client
    registration (FastMCP's OAuthProxy). Further keywords: upstream_revocation_endpoint,
    token_endpoint_auth_method, extra_authorize_params, extra_token_params, valid_scopes,
    allowed_client_redirect_uris, jwt_signing_key, storage, storage_encryption_keys, issuer_url,
    redirect_path, token_verifier, userinfo_endpoint, the lifetimes and limits (README)."""
    return AuthProvider.from_config(
        _proxy_config(
            "oauth_proxy",
            base_url,
            required_scopes,
            mcp_path,
            resource_name,
            dict(
                upstream_authorization_endpoint=upstream_authorization_endpoint,
                upstream_token_endpoint=upstream_token_endpoint,
                upstream_client_id=upstream_client_id,
                upstream_client_secret=upstream_client_secret,
                **options,
            ),
        )
    )


def OIDCProxy(
    *,
    config_url: str,
    client_id: str,
    client_secret: Optional[str] = None,
    base_url: str,
    required_scopes: Optional[Iterable[str]] = None,
    mcp_path: str = "/mcp",
    resource_name: Optional[str] = None,
    **options,
) -> AuthProvider:
    """The OAuth proxy with its upstream endpoints from the provider's OpenID configuration;
    upstream tokens are checked at its userinfo endpoint (FastMCP's OIDCProxy)."""
    return AuthProvider.from_config(
        _proxy_config(
            "oidc_proxy",
            base_url,
            required_scopes,
            mcp_path,
            resource_name,
            dict(config_url=config_url, client_id=client_id, client_secret=client_secret, **options),
        )
    )


def WorkOSProvider(
    *,
    client_id: str,
    client_secret: str,
    authkit_domain: str,
    base_url: str,
    required_scopes: Optional[Iterable[str]] = None,
    redirect_path: str = "/auth/callback",
    timeout_seconds: float = 10,
    mcp_path: str = "/mcp",
    resource_name: Optional[str] = None,
    **options,
) -> AuthProvider:
    """The OAuth proxy in front of WorkOS (AuthKit or Connect): {domain}/oauth2/authorize and
    /oauth2/token upstream, tokens checked at {domain}/oauth2/userinfo (FastMCP's WorkOSProvider)."""
    return AuthProvider.from_config(
        _proxy_config(
            "workos",
            base_url,
            required_scopes,
            mcp_path,
            resource_name,
            dict(
                client_id=client_id,
                client_secret=client_secret,
                authkit_domain=authkit_domain,
                redirect_path=redirect_path,
                timeout_seconds=timeout_seconds,
                **options,
            ),
        )
    )


def auth_from_env(defaults: Optional[dict] = None, **overrides) -> Optional[AuthProvider]:
    """The provider FastMCP's environment variables configure (FASTMCP_SERVER_AUTH, ...);
    keyword arguments win over the environment, ``defaults`` lose. None when none is named."""
    handle = ctypes.c_void_p()
    _native.auth_new_from_env(
        _native.c_json(overrides or None, "overrides"),
        _native.c_json(defaults or None, "defaults"),
        handle,
        _native.Error(),
    )
    return AuthProvider(handle) if handle.value else None
