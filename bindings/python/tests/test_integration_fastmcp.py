"""A real FastMCP 4.x server (under uvicorn, in its own venv) using fastmcpauth.integrations.fastmcp,
called by the official `mcp` client: valid, expired, wrong-audience, under-scoped and missing
tokens; AuthKit discovery routes served through FastMCP; and the same under-scoped token against
FastMCP's own JWTVerifier, which answers 401 where the spec (and we) answer 403."""

import asyncio
import json
import os
import subprocess
import time

import httpx2
import pytest
from conftest import LIBRARY, REPO
from fake_authkit import FakeAuthKit
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from oauth_client import Browser, MemoryTokens, client_for, post_mcp
from ports import free_port, wait_for_port

FASTMCP_PYTHON = os.environ.get("FASTMCPAUTH_FASTMCP_PYTHON", str(REPO / ".venv-fastmcp" / "bin" / "python"))
SERVER = REPO / "bindings" / "python" / "tests" / "fastmcp_server.py"
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
LIST_TOOLS = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


class FastMCPServer:
    """fastmcp_server.py on a free port, with the binding and the library from this checkout."""

    def __init__(self, config, port=None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "PYTHONPATH": str(REPO / "bindings" / "python"), "FASTMCPAUTH_LIB": str(LIBRARY)}
        self.process = subprocess.Popen(
            [FASTMCP_PYTHON, str(SERVER), str(self.port), json.dumps(config)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            wait_for_port(self.port, seconds=60, process=self.process)
        except RuntimeError as exc:
            raise RuntimeError(self.process.communicate(timeout=10)[0]) from exc

    def close(self):
        self.process.terminate()
        return self.process.communicate(timeout=10)[0]


@pytest.fixture(scope="module")
def authkit():
    server = FakeAuthKit()
    yield server
    server.close()


@pytest.fixture(scope="module")
def ours(authkit):
    # The port is only known once the server runs, so the audience is the fixed string "mcp-audience".
    server = FastMCPServer(
        {
            "auth": "ours",
            "provider": "jwt",
            "jwks_uri": authkit.url + "/oauth2/jwks",
            "issuer": authkit.url,
            "audience": "mcp-audience",
            "required_scopes": ["mcp:tools", "mcp:read"],
        }
    )
    yield server
    log = server.close()
    assert "eyJ" not in log, "a token reached the server log"


def call_whoami(url, token, statuses=None):
    """Lists the tools and calls whoami with the official client; `statuses` collects each HTTP status."""

    async def record(response):
        if statuses is not None:
            statuses.append(response.status_code)

    async def session():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, event_hooks={"response": [record]})
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as client:
                await client.initialize()
                tools = await client.list_tools()
                result = await client.call_tool("whoami", {})
                return sorted(tool.name for tool in tools.tools), result.structured_content

    return asyncio.run(session())


def test_valid_token_reaches_the_tool_with_its_identity(ours, authkit):
    token = authkit.token("mcp-audience", scope="openid mcp:tools mcp:read")
    names, identity = call_whoami(ours.base + "/mcp", token)
    assert names == ["echo", "whoami"]
    assert identity["subject"] == "user_42" and identity["client_id"] == "client_7"
    assert identity["scopes"] == ["openid", "mcp:tools", "mcp:read"]
    # The upstream token's claims reach the tool unchanged.
    assert identity["claims"]["iss"] == authkit.url and identity["claims"]["aud"] == "mcp-audience"


@pytest.mark.parametrize("case", ["expired", "wrong_audience", "wrong_issuer", "garbage", "missing", "under_scoped"])
def test_rejections(ours, authkit, case):
    tokens = {
        "expired": authkit.token("mcp-audience", scope="mcp:tools mcp:read", exp=int(time.time()) - 10),
        "wrong_audience": authkit.token("http://elsewhere/mcp", scope="mcp:tools mcp:read"),
        "wrong_issuer": authkit.token("mcp-audience", scope="mcp:tools mcp:read", iss="https://evil.example"),
        "garbage": "not.a.token",
        "under_scoped": authkit.token("mcp-audience", scope="openid mcp:tools"),
    }
    headers = dict(MCP_HEADERS)
    if case in tokens:
        headers["Authorization"] = "Bearer " + tokens[case]
    response = httpx2.post(ours.base + "/mcp", headers=headers, content=LIST_TOOLS)
    challenge = response.headers["WWW-Authenticate"]
    body = response.json()
    if case == "missing":
        assert response.status_code == 401 and "error=" not in challenge
        assert 'scope="mcp:tools mcp:read"' in challenge
    elif case == "under_scoped":
        # The spec's answer: 403 insufficient_scope naming every scope the operation needs.
        assert response.status_code == 403
        assert challenge.startswith('Bearer error="insufficient_scope"') and 'scope="mcp:tools mcp:read"' in challenge
        assert body["error"] == "insufficient_scope" and body["required_scopes"] == ["mcp:tools", "mcp:read"]
    else:
        assert response.status_code == 401 and challenge.startswith('Bearer error="invalid_token"')
        assert body["error"] == "invalid_token"
        assert tokens[case] not in challenge and tokens[case] not in response.text


def test_the_mcp_client_is_refused_with_an_expired_token(ours, authkit):
    token = authkit.token("mcp-audience", scope="mcp:tools mcp:read", exp=int(time.time()) - 10)
    statuses = []
    # The client's error type varies with its transport; the status it saw is what is asserted.
    with pytest.raises(Exception):  # noqa: B017
        call_whoami(ours.base + "/mcp", token, statuses)
    assert statuses == [401]


def test_fastmcp_own_verifier_answers_401_for_the_under_scoped_token(authkit):
    server = FastMCPServer(
        {
            "auth": "fastmcp",
            "provider": "jwt",
            "jwks_uri": authkit.url + "/oauth2/jwks",
            "issuer": authkit.url,
            "audience": "mcp-audience",
            "required_scopes": ["mcp:tools", "mcp:read"],
        }
    )
    try:
        under_scoped = authkit.token("mcp-audience", scope="openid mcp:tools")
        response = httpx2.post(
            server.base + "/mcp", headers={**MCP_HEADERS, "Authorization": "Bearer " + under_scoped}, content=LIST_TOOLS
        )
        assert response.status_code == 401 and 'error="invalid_token"' in response.headers["WWW-Authenticate"]
        # Both accept the same valid token: the comparison is like for like.
        valid = authkit.token("mcp-audience", scope="mcp:tools mcp:read")
        assert call_whoami(server.base + "/mcp", valid)[1]["subject"] == "user_42"
    finally:
        server.close()


def test_authkit_provider_serves_discovery_through_fastmcp(authkit):
    # base_url must be known before the port is: FastMCP behind a proxy at a public URL.
    server = FastMCPServer(
        {
            "auth": "ours",
            "provider": "authkit",
            "authkit_domain": authkit.url,
            "base_url": "https://mcp.example.com/tools",
            "required_scopes": ["mcp:tools"],
        }
    )
    try:
        metadata = httpx2.get(server.base + "/.well-known/oauth-protected-resource/tools/mcp")
        assert metadata.status_code == 200
        assert metadata.json() == {
            "resource": "https://mcp.example.com/tools/mcp",
            "authorization_servers": [authkit.url],
            "scopes_supported": ["mcp:tools"],
            "bearer_methods_supported": ["header"],
        }
        mirrored = httpx2.get(server.base + "/.well-known/oauth-authorization-server")
        assert mirrored.status_code == 200 and mirrored.json()["issuer"] == authkit.url
        missing = httpx2.post(server.base + "/mcp", headers=MCP_HEADERS, content=LIST_TOOLS)
        assert missing.status_code == 401
        assert missing.headers["WWW-Authenticate"] == (
            'Bearer resource_metadata="https://mcp.example.com/.well-known/'
            'oauth-protected-resource/tools/mcp", scope="mcp:tools"'
        )
        token = authkit.token("https://mcp.example.com/tools/mcp")
        assert call_whoami(server.base + "/mcp", token)[1]["subject"] == "user_42"
    finally:
        server.close()


def test_oidc_proxy_in_fastmcp_with_the_official_client(oidc_provider):
    """Our OIDCProxy as FastMCP's auth: FastMCP serves the proxy's routes, the official client
    runs the whole OAuth flow against oidc-provider-mock and calls the tool."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = FastMCPServer(
        {
            "auth": "ours",
            "provider": "oidc_proxy",
            "config_url": oidc_provider + "/.well-known/openid-configuration",
            "client_id": "fastmcp-proxy",
            "client_secret": "fastmcp-proxy-secret",
            "base_url": base,
            "required_scopes": ["openid", "profile"],
        },
        port=port,
    )
    try:
        browser, storage = Browser(user="grace"), MemoryTokens()

        async def run():
            http = client_for(base, browser, storage)
            async with streamable_http_client(base + "/mcp", http_client=http) as streams:
                async with ClientSession(streams[0], streams[1]) as client:
                    await client.initialize()
                    return (await client.call_tool("whoami", {})).structured_content

        identity = asyncio.run(run())
        assert identity["subject"] == "grace" and identity["client_id"] == storage.client.client_id
        assert sorted(identity["scopes"]) == ["openid", "profile"]
        # Under-scoped and revoked tokens get the spec's answers through FastMCP too.
        revoke = httpx2.post(
            base + "/revoke", data={"token": storage.tokens.access_token, "client_id": storage.client.client_id}
        )
        assert revoke.status_code == 200
        refused = post_mcp(base, storage.tokens.access_token)
        assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
        metadata = httpx2.get(base + "/.well-known/oauth-authorization-server").json()
        assert metadata["issuer"] == base + "/" and metadata["registration_endpoint"] == base + "/register"
    finally:
        log = server.close()
    assert "fastmcp-proxy-secret" not in log and "eyJ" not in log
