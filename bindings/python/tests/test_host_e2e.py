"""End to end: a fake AuthKit (local JWKS + AS metadata, tokens signed with joserfc) -> the Swift
host in AuthKit mode -> the official `mcp` Python client."""

import asyncio
import json
import os
import subprocess
import time

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from conftest import REPO
from fake_authkit import FakeAuthKit
from ports import free_port, wait_for_port

HOST = REPO / ".build" / "release" / "fastmcpauth-host"


@pytest.fixture(scope="module")
def stack():
    authkit = FakeAuthKit()
    port = free_port()
    env = {**os.environ, "FASTMCP_SERVER_AUTH": "fastmcp.server.auth.providers.workos.AuthKitProvider",
           "FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_AUTHKIT_DOMAIN": authkit.url,
           "FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_REQUIRED_SCOPES": "mcp:tools", "FASTMCP_PORT": str(port)}
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
    assert identity == {"client_id": "client_7", "subject": "user_42", "scopes": ["openid", "mcp:tools"], "expires_at": identity["expires_at"]}
    assert echo == "héllo"


def test_discovery_routes(stack):
    authkit, base = stack
    prm = httpx2.get(base + "/.well-known/oauth-protected-resource/mcp")
    assert prm.status_code == 200 and prm.json() == {"resource": base + "/mcp", "authorization_servers": [authkit.url],
                                                     "scopes_supported": ["mcp:tools"], "bearer_methods_supported": ["header"]}
    assert httpx2.get(base + "/.well-known/oauth-authorization-server").json()["issuer"] == authkit.url
    assert httpx2.get(base + "/nothing").status_code == 404


@pytest.mark.parametrize("case,status,error", [
    ("missing", 401, None), ("expired", 401, "invalid_token"), ("wrong_audience", 401, "invalid_token"),
    ("under_scoped", 403, "insufficient_scope"),
])
def test_rejections(stack, case, status, error):
    authkit, base = stack
    tokens = {"expired": authkit.token(base + "/mcp", exp=int(time.time()) - 10),
              "wrong_audience": authkit.token("http://elsewhere/mcp"),
              "under_scoped": authkit.token(base + "/mcp", scope="openid")}
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


def test_embedded_default_prints_a_working_token():
    """`make run` with no configuration: the printed bearer token works with the mcp client."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMCP_SERVER_AUTH")}
    env["FASTMCP_PORT"] = str(port)
    host = subprocess.Popen([str(HOST)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = [host.stdout.readline() for _ in range(3)]
        assert "embedded development verifier" in lines[0]
        token = lines[2].strip()
        wait_for_port(port)

        async def whoami():
            http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"})
            async with streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http) as streams:
                async with ClientSession(streams[0], streams[1]) as client:
                    await client.initialize()
                    return json.loads((await client.call_tool("whoami", {})).content[0].text)

        assert asyncio.run(whoami())["client_id"] == "local-dev"
        assert httpx2.post(f"http://127.0.0.1:{port}/mcp", content=b"{}").status_code == 401
    finally:
        host.terminate()
        host.wait(timeout=10)
