"""The OAuth client (fastmcpauth.OAuthClient, used by the official `mcp` client through
httpx2_auth()) against its peers, each a real server on a free loopback port in front of a real
OpenID provider (oidc-provider-mock, started here with its output drained):

- fastmcpauth-host in WorkOS mode pointed straight at the provider: authkit_domain is the
  provider, whose /oauth2/authorize and /oauth2/token are WorkOS's paths, and userinfo_endpoint is
  the provider's /userinfo (WorkOS serves it at /oauth2/userinfo, the one path that differs);
- FastMCP 4.x (.venv-fastmcp) with its own OIDCProxy and consent page (peer_servers/
  fastmcp_oidc_server.py), and two processes refreshing through one SQLite cache at once against
  it: FastMCP rotates refresh tokens without a grace window;
- an MCP SDK server with a tool that needs a second scope (peer_servers/step_up_server.py).

Each flow: sign in with the headless $BROWSER program (headless_browser.py), call a tool; a new
client on the same cache calls again with a browser that must not open (cache); a forced refresh
(refresh_margin past the token's lifetime); revoke; recover by signing in again. Tokens appear in
assertions only as fingerprints."""

import asyncio
import json
import multiprocessing
import os
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import fastmcpauth
import headless_browser
import httpx2
import pytest
from conftest import LIBRARY, REPO
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from peer_servers.processes import ServerProcess
from peer_servers.race import LIST_TOOLS, MCP_HEADERS, fingerprint, refresh_in_a_process
from ports import free_port

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peer_servers"
HOST = REPO / ".build" / "release" / "fastmcpauth-host"
FASTMCP_PYTHON = os.environ.get("FASTMCPAUTH_FASTMCP_PYTHON", str(REPO / ".venv-fastmcp" / "bin" / "python"))
TOKENS = "fastmcpauth-client-tokens"  # the client's cache collection
# refresh_margin's cap (a day): past every token's lifetime here (an hour), so token() refreshes.
FORCE_REFRESH = 86_400
HOST_SECRET = "sk_test_peer_upstream_secret"


def server_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMCP")}
    env.update(PYTHONUNBUFFERED="1", FASTMCPAUTH_LIB=str(LIBRARY), **extra)
    return env


@pytest.fixture(scope="module")
def provider():
    port = free_port()
    server = ServerProcess([sys.executable, "-m", "oidc_provider_mock", "--port", str(port)], port, env=server_env())
    yield server.url
    server.close()


@pytest.fixture(scope="module")
def workos_host(provider, tmp_path_factory):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = server_env(
        FASTMCP_SERVER_AUTH="workos",
        FASTMCP_PORT=str(port),
        FASTMCP_SERVER_AUTH_WORKOS_CLIENT_ID="client_peer",
        FASTMCP_SERVER_AUTH_WORKOS_CLIENT_SECRET=HOST_SECRET,
        FASTMCP_SERVER_AUTH_WORKOS_AUTHKIT_DOMAIN=provider,
        FASTMCP_SERVER_AUTH_WORKOS_USERINFO_ENDPOINT=provider + "/userinfo",
        FASTMCP_SERVER_AUTH_WORKOS_BASE_URL=base,
        FASTMCP_SERVER_AUTH_WORKOS_REQUIRED_SCOPES="openid profile",
        FASTMCP_SERVER_AUTH_WORKOS_STORAGE="memory://",
    )
    server = ServerProcess([str(HOST)], port, env=env, cwd=tmp_path_factory.mktemp("host"))
    yield base
    log = server.close()
    # No token or secret in the log; the upstream really was the provider.
    assert "eyJ" not in log and HOST_SECRET not in log
    assert "(workos auth)" in log and "POST /revoke 200" in log


@pytest.fixture(scope="module")
def fastmcp_server(provider, tmp_path_factory):
    port = free_port()
    script = PEERS / "fastmcp_oidc_server.py"
    server = ServerProcess(
        [FASTMCP_PYTHON, str(script), str(port), provider],
        port,
        env=server_env(COLUMNS="200"),
        cwd=tmp_path_factory.mktemp("fastmcp"),
    )
    yield server.url
    log = server.close()
    assert "eyJ" not in log, "a token reached FastMCP's log"


@pytest.fixture(scope="module")
def step_up_server(provider, tmp_path_factory):
    port = free_port()
    server = ServerProcess(
        [sys.executable, str(PEERS / "step_up_server.py"), str(port), provider],
        port,
        env=server_env(PYTHONPATH=str(REPO / "bindings" / "python")),
        cwd=tmp_path_factory.mktemp("step-up"),
    )
    yield server.url
    log = server.close()
    assert "eyJ" not in log


@pytest.fixture
def cache(tmp_path):
    """A private SQLite token cache for one test: the OAuthClient's storage options."""
    return {
        "storage": f"sqlite:///{tmp_path / 'tokens.db'}",
        "encryption_keys": [fastmcpauth.Fernet.generate_key().decode()],
    }


def cached_record(cache):
    """The one record in the client's cache (its access and refresh tokens, client id, scopes)."""
    with fastmcpauth.open_store(cache["storage"], cache["encryption_keys"]) as store:
        keys = store.keys(TOKENS)
        assert len(keys) == 1
        return store.get(TOKENS, keys[0])


class HeadlessBrowser:
    """$BROWSER set to the headless browser program; its runs counted through its log."""

    def __init__(self, monkeypatch, tmp_path, user):
        self.log = tmp_path / f"browser-{user}.jsonl"
        monkeypatch.setenv("BROWSER", f"{sys.executable} {HERE / 'headless_browser.py'}")
        monkeypatch.setenv("HEADLESS_BROWSER_USER", user)
        monkeypatch.setenv("HEADLESS_BROWSER_LOG", str(self.log))

    @property
    def runs(self):
        return [json.loads(line) for line in self.log.read_text().splitlines()] if self.log.exists() else []


class NoBrowser:
    """The browser of a client that must not sign in: it counts, and raises (browser_unavailable)."""

    def __init__(self):
        self.opened = 0

    def __call__(self, url):
        self.opened += 1
        raise RuntimeError("this client was not to open a browser")


class CountingBrowser:
    """The headless browser in-process, as a browser function: each sign-in's requested scopes kept."""

    def __init__(self, user):
        self.user, self.scopes = user, []

    def __call__(self, url):
        self.scopes.append(set(parse_qs(urlsplit(url).query).get("scope", [""])[0].split()))
        headless_browser.sign_in(url, user=self.user)


async def _call_tool(url, oauth, tool, statuses):
    async def record(response):
        statuses.append(response.status_code)

    async with httpx2.AsyncClient(auth=oauth.httpx2_auth(), timeout=60, event_hooks={"response": [record]}) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                result = await session.call_tool(tool, {})
    assert not result.is_error
    return json.loads(result.content[0].text)


def call_tool(url, oauth, tool, statuses=None):
    """One MCP session with the official client over httpx2_auth(): initialize, call `tool`; its
    JSON result. `statuses` collects the status of every HTTP response, retries included."""
    return asyncio.run(_call_tool(url, oauth, tool, [] if statuses is None else statuses))


def post_mcp(url, token):
    return httpx2.post(url, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}, content=LIST_TOOLS)


def found_in(error, kind):
    """`error`, or the exception of type `kind` inside its groups and causes, else None."""
    seen = set()
    stack = [error]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, kind):
            return current
        stack.extend(getattr(current, "exceptions", ()))
        stack.extend([current.__cause__, current.__context__])
    return None


def token_requests(base):
    """FastMCP's /token answers so far: [{"grant_type", "status"}] (peer_servers/fastmcp_oidc_server.py)."""
    return httpx2.get(base + "/_peer/token-requests").json()


def sign_in_cache_refresh(url, cache, monkeypatch, tmp_path, user):
    """The shared first part of both flows; returns the headless browser."""
    browser = HeadlessBrowser(monkeypatch, tmp_path, user)
    with fastmcpauth.OAuthClient(url, client_name="peer tests", sign_in_timeout=30, **cache) as oauth:
        first = call_tool(url, oauth, "whoami")
        signed_in = fingerprint(oauth.token())
    assert first["subject"] == user
    assert [run["delivered"] for run in browser.runs] == [200], browser.runs
    assert "peer tests" in (browser.runs[0]["consent"] or ""), "the consent page names the registered client"

    # A new client on the same cache: no browser, the cached token.
    no_browser, statuses = NoBrowser(), []
    with fastmcpauth.OAuthClient(url, browser=no_browser, **cache) as oauth:
        again = call_tool(url, oauth, "whoami", statuses)
        assert fingerprint(oauth.token()) == signed_in
    assert again["subject"] == user and no_browser.opened == 0 and 401 not in statuses

    # Expiry forced: the margin covers the token's whole lifetime, so token() refreshes.
    before = cached_record(cache)
    with fastmcpauth.OAuthClient(url, browser=no_browser, refresh_margin=FORCE_REFRESH, **cache) as oauth:
        renewed = fingerprint(oauth.token())
    after = cached_record(cache)
    assert renewed == fingerprint(after["access_token"]) != fingerprint(before["access_token"])
    assert fingerprint(after["refresh_token"]) != fingerprint(before["refresh_token"]), "rotated"
    statuses.clear()
    with fastmcpauth.OAuthClient(url, browser=no_browser, **cache) as oauth:
        third = call_tool(url, oauth, "whoami", statuses)
        assert fingerprint(oauth.token()) == renewed
    assert third["subject"] == user and no_browser.opened == 0 and 401 not in statuses
    return browser


def recover(url, cache, browser, user):
    """After a revocation: the cached token is refused, its refresh is refused, the client signs in
    again through the browser and the call succeeds."""
    revoked = cached_record(cache)
    assert post_mcp(url, revoked["access_token"]).status_code == 401
    statuses = []
    with fastmcpauth.OAuthClient(url, sign_in_timeout=30, **cache) as oauth:
        recovered = call_tool(url, oauth, "whoami", statuses)
        fresh = fingerprint(oauth.token())
    assert recovered["subject"] == user
    assert statuses[0] == 401, "the first request carried the revoked token"
    assert len(browser.runs) == 2 and browser.runs[1]["delivered"] == 200
    assert fresh != fingerprint(revoked["access_token"])


def test_workos_host_sign_in_cache_refresh_revoke(workos_host, cache, monkeypatch, tmp_path):
    url = workos_host + "/mcp"
    browser = sign_in_cache_refresh(url, cache, monkeypatch, tmp_path, "workos-peer")
    # Revoked at the proxy's revocation endpoint (RFC 7009) with the refresh token the client
    # holds: the whole grant ends, access token included.
    record = cached_record(cache)
    response = httpx2.post(
        workos_host + "/revoke",
        data={"token": record["refresh_token"], "client_id": record["client_id"], "client_secret": ""},
    )
    assert response.status_code == 200
    recover(url, cache, browser, "workos-peer")


def test_fastmcp_oidc_proxy_sign_in_cache_refresh_revoke(fastmcp_server, provider, cache, monkeypatch, tmp_path):
    url = fastmcp_server + "/mcp"
    user = "fastmcp-peer"
    start = len(token_requests(fastmcp_server))
    browser = sign_in_cache_refresh(url, cache, monkeypatch, tmp_path, user)
    # FastMCP serves /revoke only with an upstream revocation endpoint, which oidc-provider-mock
    # lacks; so the upstream revokes: every token of the user is gone at the provider.
    assert httpx2.post(fastmcp_server + "/revoke", data={"token": "x"}).status_code == 404
    assert httpx2.post(f"{provider}/users/{user}/revoke-tokens").status_code == 204
    recover(url, cache, browser, user)
    # What FastMCP saw: a sign-in, one refresh, the refresh of the revoked grant refused (FastMCP
    # answers invalid_grant with 401, after the MCP spec's "invalid or expired tokens"), a sign-in.
    assert token_requests(fastmcp_server)[start:] == [
        {"grant_type": "authorization_code", "status": 200},
        {"grant_type": "refresh_token", "status": 200},
        {"grant_type": "refresh_token", "status": 401, "error": "invalid_grant"},
        {"grant_type": "authorization_code", "status": 200},
    ]


def test_two_processes_refresh_through_one_cache_against_fastmcp(fastmcp_server, cache, monkeypatch, tmp_path):
    """FastMCP spends a refresh token once and keeps no grace window: two processes that both
    refreshed with the same token would get invalid_grant for one of them (a sign-in, which their
    browser refuses), or a chain forked in two of which the cache keeps one. Through the store
    lease, one refreshes and the other reads its result (or refreshes after it, with the new token)."""
    url = fastmcp_server + "/mcp"
    HeadlessBrowser(monkeypatch, tmp_path, "fastmcp-racer")
    with fastmcpauth.OAuthClient(url, sign_in_timeout=30, **cache) as oauth:
        assert post_mcp(url, oauth.token()).status_code == 200
    before = len(token_requests(fastmcp_server))
    context = multiprocessing.get_context("spawn")
    ready, start, results = context.Queue(), context.Event(), context.Queue()
    workers = [
        context.Process(target=refresh_in_a_process, args=(url, cache, FORCE_REFRESH, ready, start, results))
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    try:
        assert all(ready.get(timeout=60) for _ in workers)
        start.set()
        outcomes = [results.get(timeout=60) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    assert all(o.get("status") == 200 and o["opened"] == 0 for o in outcomes), outcomes
    refreshes = token_requests(fastmcp_server)[before:]
    assert refreshes and all(r == {"grant_type": "refresh_token", "status": 200} for r in refreshes), refreshes
    # Every refresh FastMCP granted is a token a process got: none was spent twice, none wasted.
    assert len(refreshes) == len({o["token"] for o in outcomes}), (refreshes, outcomes)
    assert fingerprint(cached_record(cache)["access_token"]) in {o["token"] for o in outcomes}
    # The chain goes on: a later refresh works and its token is accepted.
    no_browser = NoBrowser()
    with fastmcpauth.OAuthClient(url, browser=no_browser, refresh_margin=FORCE_REFRESH, **cache) as oauth:
        later = oauth.token()
    assert fingerprint(later) not in {o["token"] for o in outcomes} and no_browser.opened == 0
    assert post_mcp(url, later).status_code == 200
    assert token_requests(fastmcp_server)[-1] == {"grant_type": "refresh_token", "status": 200}


def test_step_up_signs_in_again_with_the_union_of_scopes(step_up_server, cache):
    url = step_up_server + "/mcp"
    browser = CountingBrowser("stepper")
    with fastmcpauth.OAuthClient(url, browser=browser, sign_in_timeout=30, **cache) as oauth:
        first = call_tool(url, oauth, "whoami")
        narrow = fingerprint(oauth.token())
        statuses = []
        stepped = call_tool(url, oauth, "read_email", statuses)
        wide = fingerprint(oauth.token())
        again = call_tool(url, oauth, "read_email")
    assert first["scopes"] == ["openid", "profile"]
    # One 403 insufficient_scope, one more sign-in (the browser opened a second time) asking for
    # the union, and the new token carries both scopes; later calls need no more sign-ins.
    assert statuses.count(403) == 1 and statuses[-1] == 200
    assert browser.scopes == [{"openid", "profile"}, {"openid", "profile", "email"}]
    assert stepped["scopes"] == again["scopes"] == ["email", "openid", "profile"]
    assert wide != narrow
    assert set(cached_record(cache)["scopes"]) == {"openid", "profile", "email"}


def test_step_up_stops_after_two_sign_ins(step_up_server, cache):
    url = step_up_server + "/mcp"
    browser = CountingBrowser("insistent")
    with fastmcpauth.OAuthClient(url, browser=browser, sign_in_timeout=30, **cache) as oauth:
        call_tool(url, oauth, "whoami")
        assert len(browser.scopes) == 1
        statuses = []
        with pytest.raises(Exception) as raised:
            call_tool(url, oauth, "always_refused", statuses)
        error = found_in(raised.value, fastmcpauth.OAuthClientError)
        assert error is not None, repr(raised.value)
        assert error.code == "insufficient_scope"
        # Exactly two step-up sign-ins, each asking for the union; three 403s, then the error.
        assert browser.scopes[1:] == [{"openid", "profile", "email"}] * 2
        assert statuses.count(403) == 3
        # The next request starts over: the server accepts the token, no sign-in is needed.
        assert call_tool(url, oauth, "whoami")["scopes"] == ["email", "openid", "profile"]
        assert len(browser.scopes) == 3
