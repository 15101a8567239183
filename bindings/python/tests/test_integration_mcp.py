"""A real `mcp` SDK server (MCPServer over streamable HTTP, under uvicorn) using our TokenVerifier,
called by the real `mcp` client with valid, expired and under-scoped tokens."""

import asyncio
import socket
import threading
import time

import fastmcpauth
import httpx2
import pytest
import uvicorn
from fastmcpauth.integrations.mcp import TokenVerifier
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer


@pytest.fixture(scope="module")
def server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    resource = f"http://127.0.0.1:{port}/mcp"
    key = fastmcpauth.generate_key("ES256")
    verifier = fastmcpauth.JWTVerifier(
        jwks={"keys": [fastmcpauth.public_jwk(key)]}, algorithm="ES256", audience=resource
    )
    mcp_server = MCPServer(
        "fastmcpauth-test",
        token_verifier=TokenVerifier(verifier, resource=resource),
        auth=AuthSettings(
            issuer_url="https://auth.example.com",
            resource_server_url=resource,
            required_scopes=["read"],
            validate_token_resource=True,
        ),
    )

    @mcp_server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    app = mcp_server.streamable_http_app(json_response=True, stateless_http=True)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not runner.started and time.monotonic() < deadline:
        time.sleep(0.05)

    def token(**claims):
        base = {"sub": "u1", "client_id": "c1", "aud": resource, "scope": "read", "exp": int(time.time()) + 300}
        base.update(claims)
        return fastmcpauth.sign_jwt(base, key, "ES256")

    yield resource, token
    runner.should_exit = True
    thread.join(timeout=10)


def test_valid_token_calls_a_tool(server):
    resource, token = server

    async def call():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token()}"})
        async with streamable_http_client(resource, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                result = await session.call_tool("add", {"a": 2, "b": 3})
                return result.content[0].text

    assert asyncio.run(call()) == "5"


@pytest.mark.parametrize(
    "case,status", [("expired", 401), ("wrong_audience", 401), ("under_scoped", 403), ("missing", 401)]
)
def test_rejected_tokens(server, case, status):
    resource, token = server
    tokens = {
        "expired": token(exp=int(time.time()) - 10),
        "wrong_audience": token(aud="http://elsewhere/mcp"),
        "under_scoped": token(scope="other"),
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if case in tokens:
        headers["Authorization"] = "Bearer " + tokens[case]
    response = httpx2.post(resource, headers=headers, content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
    assert response.status_code == status
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_oauth_proxy_routes_on_an_mcp_server(oidc_provider):
    """An MCPServer with our OIDC proxy as its authorization server (add_routes) and token
    verifier: the official client completes the OAuth flow and calls a tool."""
    from fastmcpauth.integrations.mcp import add_routes
    from oauth_client import Browser, MemoryTokens, client_for
    from ports import free_port

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proxy = fastmcpauth.OIDCProxy(
        config_url=oidc_provider + "/.well-known/openid-configuration",
        client_id="sdk-proxy",
        client_secret="sdk-proxy-secret",
        base_url=base,
        required_scopes=["openid"],
    )
    mcp_server = MCPServer(
        "proxy-test",
        token_verifier=TokenVerifier(proxy, resource=base + "/mcp"),
        auth=AuthSettings(
            issuer_url=base + "/",
            resource_server_url=base + "/mcp",
            required_scopes=["openid"],
            validate_token_resource=True,
        ),
    )
    add_routes(mcp_server, proxy)

    @mcp_server.tool()
    def add(a: int, b: int) -> int:
        return a + b

    runner = uvicorn.Server(
        uvicorn.Config(
            mcp_server.streamable_http_app(json_response=True, stateless_http=True),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not runner.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:

        async def call():
            http = client_for(base, Browser(user="linus"), MemoryTokens())
            async with streamable_http_client(base + "/mcp", http_client=http) as streams:
                async with ClientSession(streams[0], streams[1]) as session:
                    await session.initialize()
                    return (await session.call_tool("add", {"a": 20, "b": 22})).content[0].text

        assert asyncio.run(call()) == "42"
    finally:
        runner.should_exit = True
        thread.join(timeout=10)
