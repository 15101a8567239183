"""An MCP server with a tool that needs a second scope: the official `mcp` SDK's MCPServer (streamable
HTTP, under uvicorn) whose authorization server is our OIDC proxy (fastmcpauth.OIDCProxy through
the Python binding) in front of a real OpenID provider (oidc-provider-mock), which grants the
scopes asked for among openid, profile, email, address and phone.

Every token needs "openid profile" (the SDK's bearer middleware; 401 without). Tool calls are read
before the SDK sees them:
- `read_email` needs "email" as well: a token without it gets the proxy's own 403
  `WWW-Authenticate: Bearer error="insufficient_scope", scope="openid profile email"`, as
  fastmcpauth's authenticate(required_scopes=...) answers it;
- `always_refused` answers that same 403 to any token: a server that keeps asking.
Run with the test venv's Python: `step_up_server.py PORT PROVIDER_URL`."""

import json
import sys

import anyio.to_thread
import fastmcpauth
import uvicorn
from fastmcpauth.integrations.mcp import TokenVerifier, add_routes
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

BASE_SCOPES = ["openid", "profile"]
TOOL_SCOPES = {"read_email": ["openid", "profile", "email"]}
REFUSED_SCOPES = "openid profile email"


def tool_called(body: bytes):
    """The name of the tool a JSON-RPC tools/call asks for, else None."""
    try:
        message = json.loads(body)
    except ValueError:
        return None
    if isinstance(message, dict) and message.get("method") == "tools/call":
        params = message.get("params")
        return params.get("name") if isinstance(params, dict) else None
    return None


class ToolScopes:
    """ASGI middleware in front of the MCP endpoint: per-tool scope checks with RFC 6750 403s."""

    def __init__(self, app, proxy, mcp_path: str, resource_metadata: str):
        self.app, self.proxy, self.mcp_path, self.resource_metadata = app, proxy, mcp_path, resource_metadata

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.mcp_path:
            return await self.app(scope, receive, send)
        chunks, more = [], True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, receive, send)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        tool = tool_called(body)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = None
        if tool == "always_refused":
            refusal = (
                f'Bearer error="insufficient_scope", scope="{REFUSED_SCOPES}", '
                f'resource_metadata="{self.resource_metadata}"'
            )
        elif tool in TOOL_SCOPES:
            try:
                await anyio.to_thread.run_sync(self.proxy.authenticate, headers.get("authorization"), TOOL_SCOPES[tool])
            except fastmcpauth.AuthChallenge as challenge:
                if challenge.status == 403:
                    refusal = challenge.www_authenticate
                # A 401 or a 503 is the SDK's to answer, as for any other request.
        if refusal is not None:
            payload = json.dumps({"error": "insufficient_scope"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(payload)).encode()),
                        (b"www-authenticate", refusal.encode("latin-1")),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": payload})
            return

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def build(port: int, provider: str):
    base = f"http://127.0.0.1:{port}"
    resource = base + "/mcp"
    proxy = fastmcpauth.OIDCProxy(
        config_url=provider.rstrip("/") + "/.well-known/openid-configuration",
        client_id="step-up-proxy",
        client_secret="step-up-proxy-secret",
        base_url=base,
        required_scopes=BASE_SCOPES,
        valid_scopes=["openid", "profile", "email"],
        storage="memory://",
    )
    server = MCPServer(
        "step-up-peer",
        token_verifier=TokenVerifier(proxy, resource=resource),
        auth=AuthSettings(
            issuer_url=base + "/",
            resource_server_url=resource,
            required_scopes=BASE_SCOPES,
            validate_token_resource=True,
        ),
    )
    add_routes(server, proxy)

    def scopes() -> list:
        token = get_access_token()
        return sorted(token.scopes) if token else []

    @server.tool()
    def whoami() -> dict:
        """The scopes of the caller's token."""
        return {"scopes": scopes()}

    @server.tool()
    def read_email() -> dict:
        """Needs the email scope (checked in ToolScopes)."""
        return {"scopes": scopes()}

    @server.tool()
    def always_refused() -> dict:
        """Never reached: ToolScopes refuses every call."""
        return {"scopes": scopes()}

    app = server.streamable_http_app(json_response=True, stateless_http=True)
    return ToolScopes(app, proxy, "/mcp", base + "/.well-known/oauth-protected-resource/mcp")


def main():
    port, provider = int(sys.argv[1]), sys.argv[2]
    uvicorn.run(build(port, provider), host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    main()
