"""A TokenVerifier for the official `mcp` SDK's server auth, verifying in libfastmcpauth, and
the routes of an OAuth proxy (fastmcpauth.OAuthProxy, OIDCProxy, WorkOSProvider) for MCPServer.

    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer
    from fastmcpauth import JWTVerifier
    from fastmcpauth.integrations.mcp import TokenVerifier

    server = MCPServer("demo", token_verifier=TokenVerifier(JWTVerifier(jwks_uri=..., audience=url)),
                       auth=AuthSettings(issuer_url=..., resource_server_url=url, required_scopes=["read"]))

    # With the OAuth proxy: the proxy is the authorization server (its issuer is base_url + "/").
    proxy = fastmcpauth.OIDCProxy(config_url=..., client_id=..., client_secret=..., base_url=base)
    server = MCPServer("demo", token_verifier=TokenVerifier(proxy, resource=base + "/mcp"),
                       auth=AuthSettings(issuer_url=base + "/", resource_server_url=base + "/mcp",
                                         validate_token_resource=True))
    add_routes(server, proxy)
"""

from typing import Optional, Union

import anyio.to_thread
from mcp.server.auth.provider import AccessToken as MCPAccessToken
from starlette.requests import Request
from starlette.responses import Response as StarletteResponse

from ..auth import AuthProvider
from ..errors import AuthChallenge
from ..jwt import AccessToken, JWTVerifier
from ._http import read_body, too_large


class TokenVerifier:
    """Implements mcp's TokenVerifier protocol (`async verify_token(token) -> AccessToken | None`)
    with a fastmcpauth JWTVerifier or auth provider. Verification (which may fetch a JWKS) runs in
    a worker thread, never on the event loop. `resource` is the server's resource URL: when the
    token's `aud` lists it, it becomes the AccessToken's `resource`."""

    def __init__(self, verifier: Union[JWTVerifier, AuthProvider], resource: Optional[str] = None):
        self.verifier = verifier
        self.resource = resource

    def _verify(self, token: str) -> Optional[AccessToken]:
        if isinstance(self.verifier, AuthProvider):
            try:
                return self.verifier.authenticate("Bearer " + token)
            except AuthChallenge as challenge:
                if challenge.is_outage:
                    raise  # not "invalid": a 401 would make the client throw its token away
                return None
        return self.verifier.verify_token(token)

    def _resource(self, claims: dict) -> Optional[str]:
        audience = claims.get("aud")
        if isinstance(audience, list):
            return self.resource if self.resource in audience else (audience[0] if audience else None)
        return audience if isinstance(audience, str) else None

    async def verify_token(self, token: str) -> Optional[MCPAccessToken]:
        access = await anyio.to_thread.run_sync(self._verify, token)
        if access is None:
            return None
        return MCPAccessToken(
            token=access.token,
            client_id=access.client_id,
            scopes=list(access.scopes),
            expires_at=access.expires_at,
            resource=self._resource(access.claims),
            subject=access.subject,
            claims=access.claims,
        )


def add_routes(server, provider: AuthProvider) -> None:
    """Registers every route the provider answers (for an OAuth proxy: AS metadata, /register,
    /authorize, /consent, the callback, /token, /revoke) as custom routes of an MCPServer.
    Protected-resource metadata stays the SDK's own (from its AuthSettings)."""
    for path in provider.describe()["routes"]:
        if path.startswith("/.well-known/oauth-protected-resource"):
            continue
        server.custom_route(path, methods=["GET", "HEAD", "POST", "OPTIONS"])(_endpoint(provider))


def _endpoint(provider: AuthProvider):
    async def serve(request: Request) -> StarletteResponse:
        query = request.url.query
        target = request.url.path + ("?" + query if query else "")
        body = await read_body(request)
        if body is None:
            return too_large()
        client = request.client.host if request.client else None
        response = await anyio.to_thread.run_sync(
            provider.handle, request.method, target, dict(request.headers), body, client
        )
        if response is None:
            return StarletteResponse(status_code=404)
        return StarletteResponse(content=response.body, status_code=response.status, headers=response.headers)

    return serve
