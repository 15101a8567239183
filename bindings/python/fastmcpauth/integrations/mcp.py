"""A TokenVerifier for the official `mcp` SDK's server auth, verifying in libfastmcpauth.

    from mcp.server.auth.settings import AuthSettings
    from mcp.server.mcpserver import MCPServer
    from fastmcpauth import JWTVerifier
    from fastmcpauth.integrations.mcp import TokenVerifier

    server = MCPServer("demo", token_verifier=TokenVerifier(JWTVerifier(jwks_uri=..., audience=url)),
                       auth=AuthSettings(issuer_url=..., resource_server_url=url, required_scopes=["read"]))
"""

from typing import Optional, Union

import anyio.to_thread
from mcp.server.auth.provider import AccessToken as MCPAccessToken

from ..auth import AuthProvider
from ..errors import AuthChallenge
from ..jwt import AccessToken, JWTVerifier


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
            except AuthChallenge:
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
        return MCPAccessToken(token=access.token, client_id=access.client_id, scopes=list(access.scopes),
                              expires_at=access.expires_at, resource=self._resource(access.claims),
                              subject=access.subject, claims=access.claims)
