"""A FastMCP 4.x server whose authorization server is FastMCP's own OIDCProxy in front of a real
OpenID provider (oidc-provider-mock). Run with .venv-fastmcp's Python:
`fastmcp_oidc_server.py PORT PROVIDER_URL`.

oidc-provider-mock issues opaque access tokens (and has no introspection), so the upstream token
is checked the way FastMCP's WorkOSTokenVerifier checks WorkOS's opaque tokens: at the provider's
userinfo endpoint (oidc-provider-mock serves it at /userinfo, WorkOS at /oauth2/userinfo, so the
verifier here differs from FastMCP's only by that path). A token the provider no longer knows
(revoked upstream) is refused at once. oidc-provider-mock accepts any client id and secret unless
started with --require-registration, so the upstream client needs no registration step. FastMCP
keeps its state in memory (MemoryStore), not in the user's data directory.

For the tests, `GET /_peer/token-requests` lists the grant type, status and (for a refusal) error
code of every POST /token FastMCP answered (recorded by an ASGI wrapper; no token, code or secret
is kept)."""

import json
import sys
from urllib.parse import parse_qs

import httpx2
import uvicorn
from fastmcp import FastMCP
from fastmcp.server.auth import AccessToken, TokenVerifier
from fastmcp.server.auth.oidc_proxy import OIDCProxy
from fastmcp.server.dependencies import get_access_token
from key_value.aio.stores.memory import MemoryStore

SCOPES = ["openid", "profile"]


class UserinfoVerifier(TokenVerifier):
    """The upstream's opaque access token, checked at its userinfo endpoint."""

    def __init__(self, userinfo_url: str):
        super().__init__()
        self.userinfo_url = userinfo_url

    async def verify_token(self, token: str):
        async with httpx2.AsyncClient(timeout=10) as http:
            response = await http.get(self.userinfo_url, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            return None
        user = response.json()
        return AccessToken(
            token=token, client_id=str(user.get("sub")), scopes=SCOPES, subject=user.get("sub"), claims=user
        )


class TokenRequests:
    """ASGI wrapper recording grant_type, status (and error) of each POST /token, served at
    /_peer/token-requests."""

    def __init__(self, app):
        self.app, self.seen = app, []

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/_peer/token-requests":
            body = json.dumps(self.seen).encode()
            await send(
                {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]}
            )
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/token":
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        grant = parse_qs(body.decode("utf-8", "replace")).get("grant_type", [None])[0]
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        entry, answer = {"grant_type": grant}, []

        async def record(message):
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
            elif message["type"] == "http.response.body" and entry.get("status") != 200:
                answer.append(message.get("body", b""))
            await send(message)

        await self.app(scope, replay, record)
        if answer:
            try:
                entry["error"] = json.loads(b"".join(answer)).get("error")  # the error code only
            except ValueError:
                entry["error"] = None
        self.seen.append(entry)


def main():
    port, provider = int(sys.argv[1]), sys.argv[2].rstrip("/")
    base = f"http://127.0.0.1:{port}"
    auth = OIDCProxy(
        config_url=provider + "/.well-known/openid-configuration",
        client_id="fastmcp-upstream-client",
        client_secret="fastmcp-upstream-secret",
        token_verifier=UserinfoVerifier(provider + "/userinfo"),
        valid_scopes=SCOPES,
        base_url=base,
        client_storage=MemoryStore(),
    )
    server = FastMCP("fastmcp-oidc-peer", auth=auth)

    @server.tool
    def whoami() -> dict:
        """The caller, as FastMCP sees the access token."""
        token = get_access_token()
        return {"subject": token.subject if token else None, "scopes": list(token.scopes) if token else []}

    app = server.http_app(path="/mcp", json_response=True, stateless_http=True)
    uvicorn.run(TokenRequests(app), host="127.0.0.1", port=port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
