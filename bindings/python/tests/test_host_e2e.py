"""End to end: a fake AuthKit (local JWKS + AS metadata, tokens signed with joserfc) -> the Swift
host in AuthKit mode -> the official `mcp` Python client."""

import asyncio
import json
import os
import subprocess
import time

import httpx2
import pytest
from conftest import REPO
from embedded_host import embedded_host
from fake_authkit import FakeAuthKit
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from oauth_client import Browser, MemoryTokens, client_for, post_mcp, whoami
from ports import free_port, wait_for_port

HOST = REPO / ".build" / "release" / "fastmcpauth-host"


@pytest.fixture(scope="module")
def stack():
    authkit = FakeAuthKit()
    port = free_port()
    env = {
        **os.environ,
        "FASTMCP_SERVER_AUTH": "fastmcp.server.auth.providers.workos.AuthKitProvider",
        "FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_AUTHKIT_DOMAIN": authkit.url,
        "FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_REQUIRED_SCOPES": "mcp:tools",
        "FASTMCP_PORT": str(port),
    }
    host = subprocess.Popen([str(HOST)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_port(port)
    base = f"http://127.0.0.1:{port}"
    yield authkit, base
    host.terminate()
    log = host.communicate(timeout=10)[0]
    authkit.close()
    # One line per request, and never a token in the log.
    assert "POST /mcp 200" in log
    assert "eyJ" not in log


def test_official_mcp_client_lists_tools_and_calls_whoami(stack):
    authkit, base = stack
    token = authkit.token(base + "/mcp")

    async def session():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
        async with streamable_http_client(base + "/mcp", http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as client:
                await client.initialize()
                tools = [tool.name for tool in (await client.list_tools()).tools]
                identity = json.loads((await client.call_tool("whoami", {})).content[0].text)
                echo = (await client.call_tool("echo", {"text": "héllo"})).content[0].text
                return tools, identity, echo

    tools, identity, echo = asyncio.run(session())
    assert tools == ["whoami", "echo"]
    assert identity == {
        "client_id": "client_7",
        "subject": "user_42",
        "scopes": ["openid", "mcp:tools"],
        "expires_at": identity["expires_at"],
    }
    assert echo == "héllo"


def test_discovery_routes(stack):
    authkit, base = stack
    prm = httpx2.get(base + "/.well-known/oauth-protected-resource/mcp")
    assert prm.status_code == 200 and prm.json() == {
        "resource": base + "/mcp",
        "authorization_servers": [authkit.url],
        "scopes_supported": ["mcp:tools"],
        "bearer_methods_supported": ["header"],
    }
    assert httpx2.get(base + "/.well-known/oauth-authorization-server").json()["issuer"] == authkit.url
    assert httpx2.get(base + "/nothing").status_code == 404


@pytest.mark.parametrize(
    "case,status,error",
    [
        ("missing", 401, None),
        ("expired", 401, "invalid_token"),
        ("wrong_audience", 401, "invalid_token"),
        ("under_scoped", 403, "insufficient_scope"),
    ],
)
def test_rejections(stack, case, status, error):
    authkit, base = stack
    tokens = {
        "expired": authkit.token(base + "/mcp", exp=int(time.time()) - 10),
        "wrong_audience": authkit.token("http://elsewhere/mcp"),
        "under_scoped": authkit.token(base + "/mcp", scope="openid"),
    }
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if case in tokens:
        headers["Authorization"] = "Bearer " + tokens[case]
    response = httpx2.post(base + "/mcp", headers=headers, content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
    assert response.status_code == status
    challenge = response.headers["WWW-Authenticate"]
    assert f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in challenge
    if error:
        assert f'error="{error}"' in challenge
    else:
        assert "error=" not in challenge and 'scope="mcp:tools"' in challenge
    assert response.json()["error"] == (error or "unauthorized")


def test_embedded_default_runs_the_whole_oauth_flow_offline():
    """`make run` with no configuration: the OAuth proxy in front of the embedded development
    identity provider; the official client registers, the browser approves and signs in as a
    user name, and the tool sees that user."""
    logs = []
    with embedded_host(logs) as base:  # which also checks that no token reached the log
        browser, storage = Browser(user="dev-user"), MemoryTokens()
        identity = asyncio.run(whoami(base, client_for(base, browser, storage)))
        assert identity["subject"] == "dev-user" and identity["client_id"] == storage.client.client_id
        assert identity["scopes"] == ["mcp"]
        assert post_mcp(base, None).status_code == 401
        assert post_mcp(base, storage.tokens.access_token).status_code == 200
    assert "DEVELOPMENT MODE" in logs[0] and "EMBEDDED DEVELOPMENT IDENTITY PROVIDER" in logs[0]


def test_embedded_default_refuses_a_public_address():
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMCP_SERVER_AUTH")}
    result = subprocess.run(
        [str(HOST), "--host", "0.0.0.0", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0 and "loopback only" in result.stderr + result.stdout
