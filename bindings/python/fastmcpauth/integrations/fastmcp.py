"""Auth providers a FastMCP (4.x) server accepts as ``FastMCP(auth=...)``, verifying in libfastmcpauth.

The names and arguments follow FastMCP's own providers, so switching is an import:

    from fastmcp import FastMCP
    from fastmcpauth.integrations.fastmcp import AuthKitProvider, JWTVerifier

    mcp = FastMCP("demo", auth=AuthKitProvider(authkit_domain="https://you.authkit.app",
                                               base_url="https://mcp.example.com"))
    mcp = FastMCP("demo", auth=JWTVerifier(jwks_uri=..., issuer=..., audience=..., required_scopes=["read"]))

What changes against FastMCP's own providers: verification (JWKS fetch, signature, claims) runs in
the native core, off the event loop; a token lacking a required scope gets 403
``insufficient_scope`` naming every scope needed (FastMCP's verifiers answer 401); the discovery
routes and every challenge come from the same core as in C, Swift and the Swift host.
"""

from collections.abc import Iterable, Mapping
from typing import Any, Optional, Union

import anyio.to_thread
from fastmcp.server.auth import AccessToken as FastMCPAccessToken
from fastmcp.server.auth import AuthProvider as FastMCPAuthProvider
from mcp.server.auth.middleware.auth_context import AuthContextMiddleware
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from pydantic import AnyHttpUrl
from starlette.authentication import AuthCredentials, UnauthenticatedUser
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response as StarletteResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import jwt as _jwt
from ..auth import AuthProvider as Facade
from ..auth import auth_from_env
from ..errors import AuthChallenge, ConfigurationError
from ._http import read_body, too_large

__all__ = [
    "FastMCPAuth",
    "JWTVerifier",
    "StaticTokenVerifier",
    "IntrospectionTokenVerifier",
    "AuthKitProvider",
    "RemoteAuthProvider",
    "OAuthProxy",
    "OIDCProxy",
    "WorkOSProvider",
    "from_env",
]

_ROUTE_METHODS = ["GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH", "DELETE"]


def _route_path(scope: Scope) -> str:
    """The path as the app's routes see it (without the prefix the app is mounted under)."""
    path, root = scope.get("path", ""), scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


def _target(scope: Scope) -> str:
    query = scope.get("query_string", b"").decode("latin-1")
    return _route_path(scope) + ("?" + query if query else "")


class FastMCPAuth(FastMCPAuthProvider):
    """A libfastmcpauth auth facade as a FastMCP auth provider. Build it with the provider classes
    below, with ``FastMCPAuth(config)`` (the JSON configuration of ``fastmcpauth.AuthProvider``)
    or with ``from_env()``. FastMCP tells it the MCP path when it builds the app; the facade is
    then configured for that path."""

    def __init__(self, config: Optional[Mapping[str, Any]] = None, *, _from_env: bool = False):
        if config is None and not _from_env:
            raise ConfigurationError("invalid_config", "a configuration is required")
        self._config = {k: v for k, v in dict(config or {}).items() if v is not None}
        self._from_env = _from_env
        mcp_path = self._config.get("mcp_path", "/mcp")
        self._facade = self._build(mcp_path)
        self._description = self._facade.describe()
        resource = self._description.get("resource")
        super().__init__(
            base_url=resource[: -len(mcp_path)] if resource else None,
            required_scopes=list(self._description["required_scopes"]),
        )
        self._mcp_path = mcp_path

    def _build(self, mcp_path: str) -> Facade:
        if self._from_env:
            facade = auth_from_env(mcp_path=mcp_path)
            if facade is None:
                raise ConfigurationError("invalid_config", "FASTMCP_SERVER_AUTH names no provider")
            return facade
        return Facade.from_config({**self._config, "mcp_path": mcp_path})

    @property
    def facade(self) -> Facade:
        """The underlying fastmcpauth.AuthProvider (for the same checks outside FastMCP)."""
        return self._facade

    def close(self) -> None:
        """Closes the facade (once the calls running on it return); also ``with``."""
        self._facade.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # FastMCP calls this when it learns where the MCP endpoint lives.
    def set_mcp_path(self, mcp_path: Optional[str]) -> None:
        path = mcp_path or "/mcp"
        if path != self._mcp_path:
            self._facade = self._build(path)
            self._description = self._facade.describe()
        self._mcp_path = path
        self._resource_url = self._get_resource_url(path)

    def _get_resource_url(self, path: Optional[str] = None) -> Optional[AnyHttpUrl]:
        resource = self._description.get("resource")
        return AnyHttpUrl(resource) if resource else None

    @property
    def scopes_supported(self) -> list:
        return list(self._description["required_scopes"])

    async def verify_token(self, token: str) -> Optional[FastMCPAccessToken]:
        """FastMCP's TokenVerifier contract: the access token, or None when it is not valid for
        this server (including a missing required scope)."""
        try:
            access = await anyio.to_thread.run_sync(self._facade.authenticate, "Bearer " + token)
        except AuthChallenge as challenge:
            if challenge.is_outage:
                raise  # not "invalid": a 401 would make the client throw its token away
            return None
        return self._access_token(access)

    def _access_token(self, access: _jwt.AccessToken) -> FastMCPAccessToken:
        claims = access.claims
        return FastMCPAccessToken(
            token=access.token,
            client_id=access.client_id,
            scopes=list(access.scopes),
            expires_at=access.expires_at,
            subject=access.subject,
            resource=self._description.get("resource"),
            claims=claims,
        )

    def get_routes(self, mcp_path: Optional[str] = None) -> list:
        """The discovery routes the facade answers (RFC 9728 metadata; AuthKit's AS metadata)."""
        self.set_mcp_path(mcp_path)
        return [Route(path, endpoint=self._serve_route, methods=_ROUTE_METHODS) for path in self._description["routes"]]

    async def _serve_route(self, request: Request) -> StarletteResponse:
        target = _target(request.scope)
        body = await read_body(request)
        if body is None:
            return too_large()
        client = request.client.host if request.client else None
        response = await anyio.to_thread.run_sync(
            self._facade.handle, request.method, target, dict(request.headers), body, client
        )
        if response is None:
            return StarletteResponse(status_code=404)
        return StarletteResponse(content=response.body, status_code=response.status, headers=response.headers)

    def get_middleware(self) -> list:
        return [Middleware(_AuthenticationMiddleware, provider=self), Middleware(AuthContextMiddleware)]


class _AuthenticationMiddleware:
    """Authenticates each HTTP request in the native core. On the MCP endpoint a request without a
    valid token gets the core's 401/403 challenge here; elsewhere a valid token only sets the
    user (as Starlette's AuthenticationMiddleware), so custom routes see who is calling."""

    def __init__(self, app: ASGIApp, provider: FastMCPAuth):
        self.app = app
        self.provider = provider

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        authorization = Headers(scope=scope).get("authorization")
        on_endpoint = scope["type"] == "http" and _route_path(scope).rstrip("/") == self.provider._mcp_path.rstrip("/")
        scope["user"], scope["auth"] = UnauthenticatedUser(), AuthCredentials()
        if on_endpoint or authorization is not None:
            facade = self.provider.facade
            try:
                access = await anyio.to_thread.run_sync(facade.authenticate, authorization, None, _target(scope))
            except AuthChallenge as challenge:
                if on_endpoint:
                    await self._send(send, challenge)
                    return
            else:
                token = self.provider._access_token(access)
                scope["user"], scope["auth"] = AuthenticatedUser(token), AuthCredentials(token.scopes)
        await self.app(scope, receive, send)

    @staticmethod
    async def _send(send: Send, challenge: AuthChallenge) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": challenge.status,
                "headers": [
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(challenge.body)).encode()),
                ]
                + [
                    (name.lower().encode(), value.encode())
                    for name, value in challenge.headers.items()
                    if name.lower() not in ("cache-control", "content-length")
                ],
            }
        )
        await send({"type": "http.response.body", "body": challenge.body})


def _scopes(scopes: Optional[Iterable[str]]) -> Optional[list]:
    return list(scopes) if scopes else None


class JWTVerifier(FastMCPAuth):
    """FastMCP's JWTVerifier: public_key (PEM or JWK), jwks_uri or jwks; issuer, audience,
    algorithm, required_scopes, base_url; any other JWTVerifier configuration key as a keyword."""

    def __init__(
        self,
        *,
        public_key: Optional[str] = None,
        jwks_uri: Optional[str] = None,
        issuer: Optional[Union[str, list]] = None,
        audience: Optional[Union[str, list]] = None,
        algorithm: Optional[str] = None,
        required_scopes: Optional[Iterable[str]] = None,
        base_url: Optional[str] = None,
        **options: Any,
    ):
        super().__init__(
            {
                "provider": "jwt",
                "public_key": public_key,
                "jwks_uri": jwks_uri,
                "issuer": issuer,
                "audience": audience,
                "algorithm": algorithm,
                "required_scopes": _scopes(required_scopes),
                "base_url": base_url,
                **options,
            }
        )

    @property
    def verifier_config(self) -> dict:
        """The verifier keys alone, for RemoteAuthProvider(token_verifier=...)."""
        return {
            k: v for k, v in self._config.items() if k not in ("provider", "required_scopes", "base_url", "mcp_path")
        }


class StaticTokenVerifier(FastMCPAuth):
    """FastMCP's StaticTokenVerifier, for development: {token: {client_id, scopes, expires_at}}."""

    def __init__(
        self,
        tokens: Mapping[str, Mapping],
        required_scopes: Optional[Iterable[str]] = None,
        base_url: Optional[str] = None,
    ):
        super().__init__(
            {
                "provider": "static",
                "tokens": {k: dict(v) for k, v in tokens.items()},
                "required_scopes": _scopes(required_scopes),
                "base_url": base_url,
            }
        )


class IntrospectionTokenVerifier(FastMCPAuth):
    """FastMCP's IntrospectionTokenVerifier (RFC 7662, client_secret_basic, results cached)."""

    def __init__(
        self,
        *,
        introspection_url: str,
        client_id: str,
        client_secret: str,
        required_scopes: Optional[Iterable[str]] = None,
        base_url: Optional[str] = None,
        timeout_seconds: Optional[float] = None,
        cache_ttl: Optional[float] = None,
    ):
        super().__init__(
            {
                "provider": "introspection",
                "introspection_url": introspection_url,
                "client_id": client_id,
                "client_secret": client_secret,
                "required_scopes": _scopes(required_scopes),
                "base_url": base_url,
                "timeout_seconds": timeout_seconds,
                "cache_ttl": cache_ttl,
            }
        )


class AuthKitProvider(FastMCPAuth):
    """FastMCP's AuthKitProvider: WorkOS AuthKit in resource-server mode."""

    def __init__(
        self,
        *,
        authkit_domain: str,
        base_url: str,
        required_scopes: Optional[Iterable[str]] = None,
        resource_name: Optional[str] = None,
    ):
        super().__init__(
            {
                "provider": "authkit",
                "authkit_domain": authkit_domain,
                "base_url": base_url,
                "required_scopes": _scopes(required_scopes),
                "resource_name": resource_name,
            }
        )


class RemoteAuthProvider(FastMCPAuth):
    """FastMCP's RemoteAuthProvider: a JWT verifier plus the authorization servers issuing its tokens."""

    def __init__(
        self,
        *,
        token_verifier: Union[JWTVerifier, _jwt.JWTVerifier, Mapping],
        authorization_servers: Iterable[str],
        base_url: str,
        required_scopes: Optional[Iterable[str]] = None,
        resource_name: Optional[str] = None,
    ):
        if isinstance(token_verifier, JWTVerifier):
            scopes = required_scopes or token_verifier.required_scopes
            verifier = token_verifier.verifier_config
        else:
            verifier = dict(token_verifier.config if isinstance(token_verifier, _jwt.JWTVerifier) else token_verifier)
            scopes = required_scopes or verifier.get("required_scopes")
            verifier.pop("required_scopes", None)
        super().__init__(
            {
                "provider": "remote",
                "token_verifier": verifier,
                "authorization_servers": [str(s) for s in authorization_servers],
                "base_url": base_url,
                "required_scopes": _scopes(scopes),
                "resource_name": resource_name,
            }
        )


class OAuthProxy(FastMCPAuth):
    """FastMCP's OAuthProxy: an authorization server for MCP clients in front of an identity
    provider without dynamic registration. Keywords as fastmcpauth.OAuthProxy."""

    def __init__(
        self,
        *,
        upstream_authorization_endpoint: str,
        upstream_token_endpoint: str,
        upstream_client_id: str,
        base_url: str,
        upstream_client_secret: Optional[str] = None,
        required_scopes: Optional[Iterable[str]] = None,
        **options: Any,
    ):
        super().__init__(
            {
                "provider": "oauth_proxy",
                "upstream_authorization_endpoint": upstream_authorization_endpoint,
                "upstream_token_endpoint": upstream_token_endpoint,
                "upstream_client_id": upstream_client_id,
                "upstream_client_secret": upstream_client_secret,
                "base_url": base_url,
                "required_scopes": _scopes(required_scopes),
                **options,
            }
        )


class OIDCProxy(FastMCPAuth):
    """FastMCP's OIDCProxy: the OAuth proxy configured from the provider's discovery document."""

    def __init__(
        self,
        *,
        config_url: str,
        client_id: str,
        base_url: str,
        client_secret: Optional[str] = None,
        required_scopes: Optional[Iterable[str]] = None,
        **options: Any,
    ):
        super().__init__(
            {
                "provider": "oidc_proxy",
                "config_url": config_url,
                "client_id": client_id,
                "client_secret": client_secret,
                "base_url": base_url,
                "required_scopes": _scopes(required_scopes),
                **options,
            }
        )


class WorkOSProvider(FastMCPAuth):
    """FastMCP's WorkOSProvider: the OAuth proxy in front of WorkOS AuthKit or Connect."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        authkit_domain: str,
        base_url: str,
        required_scopes: Optional[Iterable[str]] = None,
        redirect_path: str = "/auth/callback",
        timeout_seconds: float = 10,
        **options: Any,
    ):
        super().__init__(
            {
                "provider": "workos",
                "client_id": client_id,
                "client_secret": client_secret,
                "authkit_domain": authkit_domain,
                "base_url": base_url,
                "required_scopes": _scopes(required_scopes),
                "redirect_path": redirect_path,
                "timeout_seconds": timeout_seconds,
                **options,
            }
        )


def from_env() -> Optional[FastMCPAuth]:
    """The provider FastMCP's environment variables configure (FASTMCP_SERVER_AUTH, ...), or None
    when none is named."""
    if auth_from_env() is None:
        return None
    return FastMCPAuth(_from_env=True)
