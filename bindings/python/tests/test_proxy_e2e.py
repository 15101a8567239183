"""End to end through the OAuth proxy: the official `mcp` client (OAuthClientProvider, driven
headlessly: it follows the redirects and submits our consent form and the provider's login form)
-> fastmcpauth-host in OIDC-proxy mode -> oidc-provider-mock as the real upstream OpenID provider.
Register, authorize, consent, login, callback, token, tool call, refresh (by the client itself,
when our short-lived access token expires), revoke, refused after revoke."""

import asyncio
import base64
import hashlib
import json
import multiprocessing
import os
import re
import secrets
import subprocess
import time
from urllib.parse import urlsplit

import httpx2
import pytest
from conftest import REPO
from oauth_client import CLIENT_REDIRECT, Browser, MemoryTokens, client_for, post_mcp, whoami
from ports import free_port, wait_for_port

HOST = REPO / ".build" / "release" / "fastmcpauth-host"


def start_host(upstream_url, extra=None, port=None, args=()):
    port = port or free_port()
    env = {
        **os.environ,
        "FASTMCP_SERVER_AUTH": "oidc_proxy",
        "FASTMCP_PORT": str(port),
        "FASTMCP_SERVER_AUTH_OIDC_CONFIG_URL": upstream_url + "/.well-known/openid-configuration",
        "FASTMCP_SERVER_AUTH_OIDC_CLIENT_ID": "mcp-proxy",
        "FASTMCP_SERVER_AUTH_OIDC_CLIENT_SECRET": "proxy-secret",
        "FASTMCP_SERVER_AUTH_OIDC_REQUIRED_SCOPES": "openid profile",
        "FASTMCP_SERVER_AUTH_OIDC_ACCESS_TOKEN_LIFETIME": "4",
        # Every test browses from 127.0.0.1: the per-address limits are tested on hosts of their own.
        "FASTMCP_SERVER_AUTH_OIDC_AUTHORIZE_RATE_LIMIT": "100000",
        "FASTMCP_SERVER_AUTH_OIDC_CONSENT_RATE_LIMIT": "100000",
        **(extra or {}),
    }
    if extra and extra.get("FASTMCP_SERVER_AUTH") == "workos":
        env = {k: v for k, v in env.items() if not k.startswith("FASTMCP_SERVER_AUTH_OIDC_")}
    process = subprocess.Popen([str(HOST), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_port(port, process=process)
    return process, f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def host(oidc_provider):
    process, base = start_host(oidc_provider)
    yield base
    process.terminate()
    log = process.communicate(timeout=10)[0]
    # No token, code or secret in the log: only request lines and proxy events.
    assert "eyJ" not in log and "proxy-secret" not in log
    assert "POST /token 200" in log


def test_the_official_client_through_the_proxy(host):
    browser, storage = Browser(), MemoryTokens()

    async def run():
        http = client_for(host, browser, storage)
        first = await whoami(host, http)
        issued = storage.tokens
        # Our access token lives 4 s: the client refreshes by itself with our refresh token.
        await asyncio.sleep(5)
        second = await whoami(host, http)
        return first, issued, second, storage.tokens

    first, issued, second, refreshed = asyncio.run(run())
    # The identity comes from the upstream provider (userinfo), the client id from our registration.
    assert first["subject"] == "alice" and second["subject"] == "alice"
    assert first["client_id"] == storage.client.client_id
    assert set(first["scopes"]) == {"openid", "profile"}
    assert refreshed.access_token != issued.access_token and refreshed.refresh_token != issued.refresh_token
    # Upstream tokens never reach the client: ours are HS256 JWTs issued by the proxy.
    assert issued.access_token.count(".") == 2 and "localhost" not in issued.access_token
    # The replaced access token is refused; revocation by the public client ends the new one at once.
    assert post_mcp(host, refreshed.access_token).status_code == 200
    revoke = httpx2.post(
        host + "/revoke",
        data={"token": refreshed.access_token, "client_id": storage.client.client_id, "client_secret": ""},
    )
    assert revoke.status_code == 200
    refused = post_mcp(host, refreshed.access_token)
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
    # Our refresh token is not an access token.
    assert post_mcp(host, refreshed.refresh_token).status_code == 401


def fastmcp_verifies(token, secret, issuer, audience, use="access"):
    """Verifies one of our tokens with FastMCP's JWTIssuer (run in .venv-fastmcp); its claims."""
    script = (
        "import json, sys\n"
        "from fastmcp.server.auth.jwt_issuer import JWTIssuer, derive_jwt_key\n"
        "token, secret, issuer, audience, use = sys.argv[1:]\n"
        "key = derive_jwt_key(high_entropy_material=secret, salt='fastmcp-jwt-signing-key')\n"
        "print(json.dumps(JWTIssuer(issuer, audience, key).verify_token(token, expected_token_use=use)))\n"
    )
    python = REPO / ".venv-fastmcp" / "bin" / "python"
    out = subprocess.run(
        [str(python), "-c", script, token, secret, issuer, audience, use], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout)


def test_metadata_and_discovery(host):
    metadata = httpx2.get(host + "/.well-known/oauth-authorization-server").json()
    assert metadata["issuer"] == host + "/"
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["authorization_response_iss_parameter_supported"] is True
    resource = httpx2.get(host + "/.well-known/oauth-protected-resource/mcp").json()
    assert resource == {
        "resource": host + "/mcp",
        "authorization_servers": [host + "/"],
        "scopes_supported": ["openid", "profile"],
        "bearer_methods_supported": ["header"],
    }
    missing = post_mcp(host, None)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == (
        f'Bearer resource_metadata="{host}/.well-known/oauth-protected-resource/mcp", scope="openid profile"'
    )


def test_denied_consent_returns_access_denied(host):
    browser = Browser()
    registration = httpx2.post(host + "/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()
    url = (
        host
        + "/authorize?"
        + "&".join(
            [
                "response_type=code",
                f"client_id={registration['client_id']}",
                f"redirect_uri={CLIENT_REDIRECT}",
                "code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
                "code_challenge_method=S256",
                "state=xyz",
            ]
        )
    )
    result = browser.sign_in(url, approve=False)
    assert result == {
        "error": "access_denied",
        "error_description": "The user denied access.",
        "state": "xyz",
        "iss": host + "/",
    }


@pytest.fixture(scope="module")
def workos_pair(oidc_provider):
    """Two hosts in WorkOS mode behind one public base URL, sharing one redis-server."""
    from fake_workos import FakeWorkOS
    from redis_server import RedisServer

    workos, redis = FakeWorkOS(oidc_provider), RedisServer()
    ports = [free_port(), free_port()]
    public = f"http://127.0.0.1:{ports[0]}"
    settings = {
        "FASTMCP_SERVER_AUTH": "workos",
        "FASTMCP_SERVER_AUTH_WORKOS_CLIENT_ID": "client_proxy",
        "FASTMCP_SERVER_AUTH_WORKOS_CLIENT_SECRET": "sk_test_proxy",
        "FASTMCP_SERVER_AUTH_WORKOS_AUTHKIT_DOMAIN": workos.url,
        "FASTMCP_SERVER_AUTH_WORKOS_BASE_URL": public,
        "FASTMCP_SERVER_AUTH_WORKOS_REQUIRED_SCOPES": "openid profile",
        "FASTMCP_SERVER_AUTH_WORKOS_UPSTREAM_REVOCATION_ENDPOINT": workos.url + "/oauth2/revoke",
        "FASTMCP_SERVER_AUTH_WORKOS_STORAGE": redis.url,
        "FASTMCP_SERVER_AUTH_WORKOS_AUTHORIZE_RATE_LIMIT": "100000",
        "FASTMCP_SERVER_AUTH_WORKOS_CONSENT_RATE_LIMIT": "100000",
    }
    hosts = [start_host(oidc_provider, settings, port=port) for port in ports]
    yield [base for _, base in hosts], workos, redis
    for process, _ in hosts:
        process.terminate()
        process.communicate(timeout=10)
    workos.close()
    redis.close()


def on(base, url):
    """The same URL served by another host (as a load balancer would route it)."""
    parts = urlsplit(url)
    return base + parts.path + ("?" + parts.query if parts.query else "")


def test_workos_mode_with_the_official_client(workos_pair):
    (a, b), workos, redis = workos_pair
    browser, storage = Browser(), MemoryTokens()
    identity = asyncio.run(whoami(a, client_for(a, browser, storage)))
    assert identity["subject"] == "alice" and identity["client_id"] == storage.client.client_id
    # Interchangeable with FastMCP: its own JWTIssuer, keyed from the same upstream secret, accepts ours.
    claims = fastmcp_verifies(storage.tokens.access_token, secret="sk_test_proxy", issuer=a + "/", audience=a + "/mcp")
    assert claims["client_id"] == storage.client.client_id and "token_use" not in claims
    assert (
        fastmcp_verifies(
            storage.tokens.refresh_token, secret="sk_test_proxy", issuer=a + "/", audience=a + "/mcp", use="refresh"
        )["token_use"]
        == "refresh"
    )
    # FastMCP's own WorkOSProvider, on the same Redis and secrets, reads the state we wrote.
    script = REPO / "bindings" / "python" / "tests" / "fastmcp_reads_state.py"
    out = subprocess.run(
        [
            str(REPO / ".venv-fastmcp" / "bin" / "python"),
            str(script),
            redis.url,
            workos.url,
            a,
            storage.tokens.access_token,
        ],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen is not None, out.stderr[-3000:]
    # FastMCP answers with the upstream validation's view: WorkOS userinfo's subject as client_id.
    assert seen["client_id"] == "alice"
    # Host B honours what host A issued: the state is in the shared Redis.
    assert post_mcp(b, storage.tokens.access_token).status_code == 200
    refreshed = httpx2.post(
        b + "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": storage.tokens.refresh_token,
            "client_id": storage.client.client_id,
        },
    )
    assert refreshed.status_code == 200
    tokens = refreshed.json()
    assert post_mcp(a, tokens["access_token"]).status_code == 200
    # Revoking the refresh token at A ends the grant everywhere, and WorkOS is told.
    revoked = httpx2.post(
        a + "/revoke",
        data={"token": tokens["refresh_token"], "client_id": storage.client.client_id, "client_secret": ""},
    )
    assert revoked.status_code == 200
    assert post_mcp(b, tokens["access_token"]).status_code == 401
    assert len(workos.revoked) == 1 and "token_type_hint=refresh_token" in workos.revoked[0]


def sign_in_split(a, b, user="bob"):
    """One authorization with every step on the other host from the last; (client id, verifier,
    the client's redirect parameters)."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    registration = httpx2.post(a + "/register", json={"redirect_uris": [CLIENT_REDIRECT]}).json()
    client_id = registration["client_id"]
    http = httpx2.Client(follow_redirects=False)
    authorize = http.get(
        b + "/authorize",
        params={
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
            "state": "s1",
            "resource": a + "/mcp",
        },
    )
    assert authorize.status_code == 302
    page = http.get(on(a, authorize.headers["location"]))
    fields = dict(re.findall(r'name="(txn_id|csrf_token)" value="([^"]*)"', page.text))
    approved = http.post(b + "/consent", data={**fields, "action": "approve"})
    assert approved.status_code == 302
    login = http.get(approved.headers["location"]).headers["location"]  # WorkOS sends the browser to the provider
    http.get(login)
    back = http.post(login, data={"sub": user})
    callback = http.get(on(a, back.headers["location"]))
    return client_id, verifier, Browser.parameters(callback.headers["location"])


def test_one_flow_split_across_two_hosts(workos_pair):
    (a, b), _, _ = workos_pair
    client_id, verifier, result = sign_in_split(a, b)
    assert result["state"] == "s1" and result["iss"] == a + "/"
    token = httpx2.post(
        b + "/token",
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert token.status_code == 200
    access = token.json()["access_token"]
    assert post_mcp(a, access).status_code == 200 and post_mcp(b, access).status_code == 200
    # The code is one-time across hosts too.
    replay = httpx2.post(
        a + "/token",
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert post_mcp(b, access).status_code == 200, "the same client's duplicate leaves the grant alone"
    stolen = httpx2.post(
        a + "/token",
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": secrets.token_urlsafe(48),
            "client_id": client_id,
        },
    )
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert post_mcp(b, access).status_code == 401, "a replay with another verifier revoked what the code issued"


def _refresh_in_a_process(base, refresh_token, client_id, start, results):
    start.wait(30)
    response = httpx2.post(
        base + "/token",
        data={"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id},
        timeout=30,
    )
    results.put((response.status_code, response.json()))


@pytest.mark.parametrize("concurrency", [2, 5, 10])
def test_concurrent_refreshes_from_processes_sharing_redis(workos_pair, concurrency):
    """Separate processes refresh one token at once through two hosts on one redis-server: the
    grant is never revoked, every access token handed out works, and it refreshes on."""
    (a, b), _, _ = workos_pair
    client_id, verifier, result = sign_in_split(a, b, user=f"racer{concurrency}")
    tokens = httpx2.post(
        a + "/token",
        data={
            "grant_type": "authorization_code",
            "code": result["code"],
            "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": verifier,
            "client_id": client_id,
        },
    ).json()
    context = multiprocessing.get_context("spawn")
    start, results = context.Event(), context.Queue()
    workers = [
        context.Process(
            target=_refresh_in_a_process, args=((a, b)[i % 2], tokens["refresh_token"], client_id, start, results)
        )
        for i in range(concurrency)
    ]
    for worker in workers:
        worker.start()
    time.sleep(0.5)  # every process is waiting on the event
    start.set()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    granted = [body for status, body in outcomes if status == 200]
    assert granted, outcomes
    assert all(status == 200 or body["error"] == "invalid_grant" for status, body in outcomes)
    assert all(g == granted[0] for g in granted), "one successor, never a second chain"
    for g in granted:
        assert post_mcp(a, g["access_token"]).status_code == 200 and post_mcp(b, g["access_token"]).status_code == 200
    again = httpx2.post(
        b + "/token",
        data={"grant_type": "refresh_token", "refresh_token": granted[0]["refresh_token"], "client_id": client_id},
    )
    assert again.status_code == 200 and post_mcp(a, again.json()["access_token"]).status_code == 200
