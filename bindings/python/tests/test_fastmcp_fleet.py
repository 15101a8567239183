"""A fleet migrating one server at a time: fastmcpauth-host and FastMCP 4.0.11's own
WorkOSProvider (in .venv-fastmcp) behind one public base URL, on one redis-server with the same
keys, in front of the same WorkOS-shaped provider (oidc-provider-mock). Each side serves, refreshes
and revokes the tokens the other issued: the flow runs on one, the tool call, the refresh and the
revocation on the other, in both directions."""

import asyncio
import base64
import hashlib
import json
import re
import secrets
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from oauth_client import CLIENT_REDIRECT, Browser
from ports import free_port
from test_integration_fastmcp import FastMCPServer
from test_proxy_e2e import on, start_host

SECRET = "sk_test_fleet"
SCOPE = {"scope": "openid profile"}  # what both ask the provider for (neither offers scopes itself)


@pytest.fixture(scope="module")
def fleet(oidc_provider):
    from fake_workos import FakeWorkOS
    from redis_server import RedisServer

    workos, redis = FakeWorkOS(oidc_provider), RedisServer()
    ours_port, theirs_port = free_port(), free_port()
    public = f"http://127.0.0.1:{ours_port}"
    process, ours = start_host(
        oidc_provider,
        {
            "FASTMCP_SERVER_AUTH": "workos",
            "FASTMCP_SERVER_AUTH_WORKOS_CLIENT_ID": "client_fleet",
            "FASTMCP_SERVER_AUTH_WORKOS_CLIENT_SECRET": SECRET,
            "FASTMCP_SERVER_AUTH_WORKOS_AUTHKIT_DOMAIN": workos.url,
            "FASTMCP_SERVER_AUTH_WORKOS_BASE_URL": public,
            "FASTMCP_SERVER_AUTH_WORKOS_EXTRA_AUTHORIZE_PARAMS": json.dumps(SCOPE),
            "FASTMCP_SERVER_AUTH_WORKOS_UPSTREAM_REVOCATION_ENDPOINT": workos.url + "/oauth2/revoke",
            "FASTMCP_SERVER_AUTH_WORKOS_STORAGE": redis.url,
        },
        port=ours_port,
    )
    # FastMCP's WorkOSProvider in all but name: its OAuthProxy with WorkOS's endpoints and userinfo
    # check, plus the revocation endpoint WorkOSProvider does not accept.
    theirs = FastMCPServer(
        {
            "auth": "fastmcp",
            "provider": "oauth_proxy",
            "upstream_authorization_endpoint": workos.url + "/oauth2/authorize",
            "upstream_token_endpoint": workos.url + "/oauth2/token",
            "upstream_revocation_endpoint": workos.url + "/oauth2/revoke",
            "upstream_client_id": "client_fleet",
            "upstream_client_secret": SECRET,
            "workos_domain": workos.url,
            "base_url": public,
            "extra_authorize_params": SCOPE,
            "require_authorization_consent": False,
            "redis_url": redis.url,
        },
        port=theirs_port,
    )
    yield ours, theirs.base
    process.terminate()
    process.communicate(timeout=10)
    theirs.close()
    workos.close()
    redis.close()


def whoami(base, token):
    async def session():
        http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=20)
        async with streamable_http_client(base + "/mcp", http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as client:
                await client.initialize()
                result = await client.call_tool("whoami", {})
                return result.content[0].text

    return asyncio.run(session())


def mcp_status(base, token):
    return httpx2.post(
        base + "/mcp",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        },
        content=b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
        b'"capabilities":{},"clientInfo":{"name":"t","version":"1"}}}',
    ).status_code


def refresh(base, client_id, token):
    return httpx2.post(
        base + "/token", data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id}
    )


def pkce():
    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def test_fastmcp_serves_refreshes_and_revokes_what_we_issued(fleet):
    ours, theirs = fleet
    client_id = httpx2.post(ours + "/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
    verifier, challenge = pkce()
    authorize = (
        ours
        + "/authorize?"
        + "&".join(
            f"{k}={v}"
            for k, v in {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": CLIENT_REDIRECT,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": "s",
            }.items()
        )
    )
    result = Browser(user="erin").sign_in(authorize)
    tokens = httpx2.post(
        ours + "/token",
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    ).json()
    # The tool call, the refresh and the revocation all on FastMCP.
    assert "client_fleet" not in whoami(theirs, tokens["access_token"])
    refreshed = refresh(theirs, client_id, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text
    renewed = refreshed.json()
    assert mcp_status(theirs, renewed["access_token"]) == 200 and mcp_status(ours, renewed["access_token"]) == 200
    # Revoked on FastMCP: the refresh token is dead on both. (FastMCP leaves a revoked access
    # token's mapping to expire by itself, so revoking access tokens there is not shown.)
    revoked = httpx2.post(
        theirs + "/revoke", data={"token": renewed["refresh_token"], "client_id": client_id, "client_secret": ""}
    )
    assert revoked.status_code == 200, revoked.text
    assert refresh(ours, client_id, renewed["refresh_token"]).json()["error"] == "invalid_grant"
    late = refresh(theirs, client_id, renewed["refresh_token"])
    assert late.status_code in (400, 401) and late.json()["error"] in ("invalid_grant", "invalid_client"), late.text


def test_we_serve_refresh_and_revoke_what_fastmcp_issued(fleet):
    ours, theirs = fleet
    client_id = httpx2.post(theirs + "/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()["client_id"]
    verifier, challenge = pkce()
    browser = httpx2.Client(follow_redirects=False, timeout=20)
    response = browser.get(
        theirs + "/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s",
            "resource": ours + "/mcp",
        },
    )
    # FastMCP (no consent page here) sends the browser to the provider; its sign-in page, then back
    # to the public callback URL, which the load balancer routes to the FastMCP server.
    assert response.status_code in (302, 307), response.text
    location = response.headers["location"]
    while True:
        page = browser.get(location)
        if page.status_code in (302, 303, 307):
            location = page.headers["location"]
            continue
        break
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    fields["sub"] = "frank"
    action = re.search(r'<form[^>]*action="([^"]*)"', page.text)
    back = browser.post(action.group(1) if action else location, data=fields)
    callback = browser.get(on(theirs, back.headers["location"]))
    assert callback.status_code in (302, 307), callback.text
    code = parse_qs(urlsplit(callback.headers["location"]).query)["code"][0]
    tokens = httpx2.post(
        theirs + "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert tokens.status_code == 200, tokens.text
    tokens = tokens.json()
    # The tool call, the refresh and the revocation all on ours.
    assert "subject" in whoami(ours, tokens["access_token"])
    refreshed = refresh(ours, client_id, tokens["refresh_token"])
    assert refreshed.status_code == 200, refreshed.text  # FastMCP's record names no upstream_token_id
    renewed = refreshed.json()
    assert mcp_status(ours, renewed["access_token"]) == 200 and mcp_status(theirs, renewed["access_token"]) == 200
    # FastMCP's refresh record does not name the access token issued beside it, so that one lives
    # on to its expiry (as on FastMCP); the old refresh token is rotated away like any of ours.
    replay = refresh(ours, client_id, tokens["refresh_token"])
    assert replay.status_code == 200 and replay.json() == renewed, "inside the grace window: the same successor"
    assert refresh(ours, client_id, tokens["refresh_token"]).json()["error"] == "invalid_grant"
    revoked = httpx2.post(ours + "/revoke", data={"token": renewed["refresh_token"], "client_id": client_id})
    assert revoked.status_code == 200
    assert mcp_status(ours, renewed["access_token"]) == 401 and mcp_status(theirs, renewed["access_token"]) == 401
