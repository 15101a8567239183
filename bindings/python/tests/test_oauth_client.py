"""fastmcpauth.OAuthClient (the MCP client side) end to end against our own servers, over real HTTP:
fastmcpauth-host in its embedded default (the OAuth proxy in front of the embedded development
identity provider, as `make run` starts it) and in OIDC-proxy mode in front of oidc-provider-mock.
Sign-ins go through a real browser program ($BROWSER=headless_browser.py, spawned by the native
client) or a browser callable; the official `mcp` client talks through httpx2_auth()."""

import asyncio
import hashlib
import json
import multiprocessing
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import fastmcpauth
import headless_browser
import httpx
import httpx2
import pytest
from conftest import REPO
from fastmcpauth import ConfigurationError, InvalidArgument, OAuthClient, OAuthClientError
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from oauth_client import post_mcp
from ports import free_port, wait_for_port

HERE = Path(__file__).resolve().parent
HOST = REPO / ".build" / "release" / "fastmcpauth-host"
BROWSER_PROGRAM = shlex.quote(sys.executable) + " " + shlex.quote(str(HERE / "headless_browser.py"))
TOKENS = "fastmcpauth-client-tokens"  # the native client's cache collection
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
TOOLS_LIST = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


# ---- Servers ----------------------------------------------------------------------------------


class Host:
    """fastmcpauth-host with no configuration (the embedded default) on a free loopback port,
    its log in a file so that tests can read it while it runs."""

    def __init__(self, directory: Path, args=()):
        directory.mkdir(parents=True, exist_ok=True)
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMCP_SERVER_AUTH")}
        env["FASTMCP_PORT"] = str(port)
        self.log_path = directory / "host.log"
        self.log_file = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [str(HOST), *args], env=env, cwd=directory, stdout=self.log_file, stderr=subprocess.STDOUT
        )
        wait_for_port(port, process=self.process)
        self.base = f"http://127.0.0.1:{port}"
        self.url = self.base + "/mcp"

    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text()

    def close(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log_file.close()
        log = self.log_path.read_text()
        # Never a token (our JWTs start with eyJ) in the host's log.
        assert "eyJ" not in log
        return log


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """The embedded default (`make run`) for the sign-in flows."""
    server = Host(tmp_path_factory.mktemp("host"))
    yield server
    log = server.close()
    assert "EMBEDDED DEVELOPMENT IDENTITY PROVIDER" in log and "POST /token 200" in log


@pytest.fixture(scope="module")
def other_host(tmp_path_factory):
    """A second embedded default for the failure cases (each fresh cache registers a client, and
    the proxy allows 20 registrations per hour from one address)."""
    server = Host(tmp_path_factory.mktemp("other-host"))
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_real_browser(monkeypatch):
    """Nothing here may open a person's browser: $BROWSER is a command that fails unless a test
    sets the headless one."""
    monkeypatch.setenv("BROWSER", "false")
    for name in ("HEADLESS_BROWSER_USER", "HEADLESS_BROWSER_DENY", "HEADLESS_BROWSER_LOG"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def cache(tmp_path):
    """A private SQLite token cache: the OAuthClient options, the store URL and its key."""
    key = fastmcpauth.Fernet.generate_key().decode()
    url = f"sqlite:///{tmp_path}/tokens.db"
    return {"storage": url, "encryption_keys": [key], "sign_in_timeout": 30}


@pytest.fixture
def browser_program(monkeypatch, tmp_path):
    """$BROWSER = headless_browser.py; returns runs(expected=None), the runs it logged. The program
    logs once it has delivered the redirect, and the client may return before that line is
    written: with `expected`, runs() waits (at most 10 s) for that many."""
    log = tmp_path / "browser.log"
    monkeypatch.setenv("BROWSER", BROWSER_PROGRAM)
    monkeypatch.setenv("HEADLESS_BROWSER_LOG", str(log))

    def read():
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def runs(expected=None):
        deadline = time.monotonic() + 10
        while expected is not None and len(read()) < expected and time.monotonic() < deadline:
            time.sleep(0.02)
        return read()

    return runs


class CountingBrowser:
    """A browser callable: signs in with the headless browser in-process and counts the URLs."""

    def __init__(self, user="alice", deny=False):
        self.user, self.deny = user, deny
        self.urls = []
        self.records = []

    def __call__(self, url):
        self.urls.append(url)
        self.records.append(headless_browser.sign_in(url, user=self.user, deny=self.deny))


class NoBrowser:
    """A browser callable that must not be called: it records the call and raises (the pending
    token() then fails with browser_unavailable)."""

    def __init__(self):
        self.calls = 0

    def __call__(self, url):
        self.calls += 1
        raise AssertionError("the browser was opened although the cache holds the tokens")


def cached_record(cache, server_url):
    with fastmcpauth.open_store(cache["storage"], cache["encryption_keys"]) as store:
        return store.get(TOKENS, hashlib.sha256(server_url.encode()).hexdigest())


async def use_mcp(url, auth, text="héllo"):
    """The official mcp client through `auth`: (tool names, whoami's identity, echo's answer)."""
    async with httpx2.AsyncClient(auth=auth, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                tools = [tool.name for tool in (await session.list_tools()).tools]
                identity = json.loads((await session.call_tool("whoami", {})).content[0].text)
                echo = (await session.call_tool("echo", {"text": text})).content[0].text
                return tools, identity, echo


def revoke(base, token, client_id):
    response = httpx2.post(base + "/revoke", data={"token": token, "client_id": client_id})
    assert response.status_code == 200, response.text


def assert_clean(text, *secrets):
    """No JWT and none of the given values in a message or repr."""
    assert "eyJ" not in text
    for secret in secrets:
        if secret:
            assert secret not in text


# ---- Sign-in, cache, refresh, revoke, logout against the embedded default ----------------------


def test_browser_program_signs_in_and_the_mcp_client_works_then_a_restart_uses_the_cache(
    host, cache, browser_program, monkeypatch
):
    monkeypatch.setenv("HEADLESS_BROWSER_USER", "carol")
    with OAuthClient(host.url, client_name="e2e python client", **cache) as client:
        tools, identity, echo = asyncio.run(use_mcp(host.url, client.httpx2_auth()))
        first = client.token()
        assert_clean(repr(client), first)
    assert tools == ["whoami", "echo"] and echo == "héllo"
    assert identity["subject"] == "carol" and identity["scopes"] == ["mcp"]
    runs = browser_program(1)
    assert len(runs) == 1 and runs[0]["delivered"] == 200, runs
    # Dynamic registration: the consent page names the client and says nobody vouches for it.
    assert "e2e python client" in runs[0]["consent"] and "Unverified" in runs[0]["consent"]
    record = cached_record(cache, host.url)
    assert record["access_token"] == first and record["client_id"] == identity["client_id"]
    assert record["refresh_token"] and record["scopes"] == ["mcp"]

    # A restart: a new client on the same cache, with a browser that must not be needed.
    monkeypatch.setenv("BROWSER", "false")
    never = NoBrowser()
    with OAuthClient(host.url, browser=never, **cache) as again:
        assert again.token() == first
        tools, identity, _ = asyncio.run(use_mcp(host.url, again.httpx2_auth()))
    assert never.calls == 0 and identity["subject"] == "carol" and len(browser_program()) == 1
    assert post_mcp(host.base, first).status_code == 200


def test_a_browser_callable_signs_in_and_set_browser_none_restores_browser_env(host, cache, browser_program):
    browser = CountingBrowser(user="dave")
    with OAuthClient(host.url, browser=browser, scopes="mcp", **cache) as client:
        tools, identity, _ = asyncio.run(use_mcp(host.url, client.httpx2_auth()))
        assert identity["subject"] == "dave" and len(browser.urls) == 1
        assert browser_program() == [], "the callable replaced $BROWSER"
        assert "code_challenge_method=S256" in browser.urls[0] and "resource=" in browser.urls[0]
        # None restores the default chain ($BROWSER, the headless program here).
        client.set_browser(None)
        client.logout()
        token = client.token()
        assert post_mcp(host.base, token).status_code == 200
    assert len(browser.urls) == 1 and len(browser_program(1)) == 1


def test_refresh_renews_the_access_token_and_calls_keep_working(host, cache):
    browser = CountingBrowser()
    with OAuthClient(host.url, browser=browser, **cache) as client:
        first = client.token()
    record = cached_record(cache, host.url)
    # A refresh margin longer than the proxy's 1 h access tokens: every token() refreshes.
    never = NoBrowser()
    with OAuthClient(host.url, browser=never, refresh_margin=7200, **cache) as eager:
        second = eager.token()
        assert second != first and post_mcp(host.base, second).status_code == 200
        refreshed = cached_record(cache, host.url)
        assert refreshed["access_token"] == second
        assert refreshed["refresh_token"] != record["refresh_token"], "the proxy rotates refresh tokens"
        # The mcp client through a client that refreshes before every request: the chain holds.
        tools, identity, _ = asyncio.run(use_mcp(host.url, eager.httpx2_auth()))
        third = eager.token()
        assert third not in (first, second) and post_mcp(host.base, third).status_code == 200
    assert tools == ["whoami", "echo"] and identity["subject"] == "alice"
    assert never.calls == 0 and len(browser.urls) == 1
    # A client with the default margin takes the refreshed token from the shared cache as it is.
    with OAuthClient(host.url, browser=never, **cache) as client:
        assert client.token() == third


def test_a_revoked_grant_is_recovered_by_signing_in_again(host, cache):
    browser = CountingBrowser(user="erin")
    with OAuthClient(host.url, browser=browser, **cache) as client:
        old = client.token()
        record = cached_record(cache, host.url)
        revoke(host.base, record["refresh_token"], record["client_id"])
        assert post_mcp(host.base, old).status_code == 401, "revoking the refresh token ends the grant"
        # The next request gets 401, the refresh is refused, and the client signs in again.
        tools, identity, _ = asyncio.run(use_mcp(host.url, client.httpx2_auth()))
        new = client.token()
    assert len(browser.urls) == 2 and identity["subject"] == "erin"
    assert new != old and post_mcp(host.base, new).status_code == 200


def test_logout_forgets_the_tokens(host, cache):
    browser = CountingBrowser()
    with OAuthClient(host.url, browser=browser, **cache) as client:
        first = client.token()
        assert cached_record(cache, host.url) is not None
        client.logout()
        assert cached_record(cache, host.url) is None
        second = client.token()
    assert len(browser.urls) == 2 and second != first
    assert post_mcp(host.base, second).status_code == 200


def test_httpx_auth_sync_and_async_with_a_resend_after_401(host, cache):
    browser = CountingBrowser()
    with OAuthClient(host.url, browser=browser, **cache) as client:
        with httpx.Client(auth=client.httpx_auth(), timeout=30) as http:
            response = http.post(host.url, headers=MCP_HEADERS, content=TOOLS_LIST)
            assert response.status_code == 200 and response.json()["result"]["tools"][0]["name"] == "whoami"
            first = client.token()
            # The access token alone is revoked: the next request gets 401, the flow hands the
            # challenge over, the client refreshes (no sign-in) and the body is sent again.
            revoke(host.base, first, cached_record(cache, host.url)["client_id"])
            assert post_mcp(host.base, first).status_code == 401
            response = http.post(host.url, headers=MCP_HEADERS, content=TOOLS_LIST)
            assert response.status_code == 200 and "tools" in response.json()["result"]
            assert [r.status_code for r in response.history] == [401]
            second = client.token()
            assert second != first and len(browser.urls) == 1

        async def run():
            async with httpx.AsyncClient(auth=client.httpx_auth(), timeout=30) as http:
                return await http.post(host.url, headers=MCP_HEADERS, content=TOOLS_LIST)

        assert asyncio.run(run()).status_code == 200

        # httpx2's sync client too.
        with httpx2.Client(auth=client.httpx2_auth(), timeout=30) as http:
            assert http.post(host.url, headers=MCP_HEADERS, content=TOOLS_LIST).status_code == 200
    assert len(browser.urls) == 1


class ForbiddingServer:
    """A resource server that answers every POST with 403 and `www_authenticate`, and publishes
    protected-resource metadata naming `issuer` as its authorization server."""

    def __init__(self, www_authenticate, issuer):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        outer = self
        self.requests = []

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                body = json.dumps(
                    {"resource": outer.url, "authorization_servers": [issuer], "scopes_supported": ["mcp"]}
                ).encode()
                found = self.path == "/.well-known/oauth-protected-resource/mcp"
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if found else 0))
                self.end_headers()
                if found:
                    self.wfile.write(body)

            def do_POST(self):
                outer.requests.append(self.headers.get("Authorization"))
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(403)
                self.send_header("WWW-Authenticate", www_authenticate)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mcp"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def cache_token(cache, url, issuer, access_token):
    """A token already in the client's cache for `url` (the servers below cannot issue one)."""
    with fastmcpauth.open_store(cache["storage"], cache["encryption_keys"]) as store:
        store.put(
            TOKENS,
            hashlib.sha256(url.encode()).hexdigest(),
            {
                "issuer": issuer,
                "resource": url,
                "client_id": "c",
                "access_token": access_token,
                "scopes": ["mcp"],
                "expires_at": time.time() + 3600,
            },
        )


def test_a_403_that_is_not_insufficient_scope_is_returned_as_is(cache):
    """A server answering 403 without insufficient_scope: one send, no challenge, no sign-in."""
    server = ForbiddingServer('Bearer error="invalid_request"', "http://127.0.0.1:1/")
    try:
        cache_token(cache, server.url, "http://127.0.0.1:1/", "cached-access")
        with OAuthClient(server.url, browser=NoBrowser(), **cache) as client:
            with httpx2.Client(auth=client.httpx2_auth()) as http:
                response = http.post(server.url, content=b"{}")
    finally:
        server.close()
    assert response.status_code == 403 and server.requests == ["Bearer cached-access"]


def test_a_403_insufficient_scope_signs_in_again_with_the_union_of_the_scopes(other_host, cache):
    """The flow hands a 403 insufficient_scope to the client, which signs in again (at the real
    authorization server the resource names) asking for what it had and what the server wants.
    That server (our proxy) will not issue tokens for a foreign resource, so the browser gives up
    there and the request fails with browser_unavailable instead of returning the 403."""
    issuer = other_host.base + "/"
    server = ForbiddingServer('Bearer error="insufficient_scope", scope="extra"', issuer)
    asked = []

    def browser(url):
        asked.append(url)
        raise RuntimeError("stop here")

    try:
        cache_token(cache, server.url, issuer, "cached-access")
        with OAuthClient(server.url, browser=browser, **cache) as client:
            with httpx2.Client(auth=client.httpx2_auth()) as http, pytest.raises(OAuthClientError) as caught:
                http.post(server.url, content=b"{}")
    finally:
        server.close()
    assert caught.value.code == "browser_unavailable" and server.requests == ["Bearer cached-access"]
    # The cached token had mcp; the server asked for extra.
    assert len(asked) == 1 and set(parse_qs(urlsplit(asked[0]).query)["scope"][0].split()) == {"mcp", "extra"}


# ---- Failures -----------------------------------------------------------------------------------


def test_denied_consent_is_authorization_denied(other_host, cache, browser_program, monkeypatch):
    monkeypatch.setenv("HEADLESS_BROWSER_DENY", "1")
    with OAuthClient(other_host.url, **cache) as client, pytest.raises(OAuthClientError) as caught:
        client.token()
    assert caught.value.code == "authorization_denied"
    assert_clean(str(caught.value))
    runs = browser_program(1)
    assert len(runs) == 1 and runs[0]["consent"] and runs[0]["delivered"] == 200
    assert cached_record(cache, other_host.url) is None


def test_a_browser_that_does_nothing_times_out(other_host, cache):
    opened = []
    with OAuthClient(other_host.url, browser=opened.append, **{**cache, "sign_in_timeout": 1}) as client:
        started = time.monotonic()
        with pytest.raises(OAuthClientError) as caught:
            client.token()
        elapsed = time.monotonic() - started
    assert caught.value.code == "authorization_timeout" and len(opened) == 1
    assert 0.9 <= elapsed < 10


def test_cancel_from_another_thread(other_host, cache):
    opened = threading.Event()
    with OAuthClient(other_host.url, browser=lambda url: opened.set(), **{**cache, "sign_in_timeout": 60}) as client:

        def cancel_once_opened():
            assert opened.wait(30)
            client.cancel()

        canceller = threading.Thread(target=cancel_once_opened)
        canceller.start()
        started = time.monotonic()
        with pytest.raises(OAuthClientError) as caught:
            client.token()
        canceller.join()
    assert caught.value.code == "cancelled" and time.monotonic() - started < 20


def test_a_browser_callable_that_raises_is_browser_unavailable(other_host, cache):
    def broken(url):
        raise RuntimeError("no display")

    with OAuthClient(other_host.url, browser=broken, **{**cache, "sign_in_timeout": 60}) as client:
        started = time.monotonic()
        with pytest.raises(OAuthClientError) as caught:
            client.token()
    assert caught.value.code == "browser_unavailable" and time.monotonic() - started < 20
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_a_browser_program_that_fails_is_browser_unavailable(other_host, cache, browser_program, monkeypatch):
    # The development IdP refuses user names over 64 characters: the headless browser exits 1.
    monkeypatch.setenv("HEADLESS_BROWSER_USER", "x" * 65)
    with OAuthClient(other_host.url, **{**cache, "sign_in_timeout": 60}) as client:
        started = time.monotonic()
        with pytest.raises(OAuthClientError) as caught:
            client.token()
    assert caught.value.code == "browser_unavailable" and time.monotonic() - started < 20
    runs = browser_program(1)
    assert len(runs) == 1 and runs[0]["error"] == "BrowserError"


def test_no_browser_without_a_terminal_is_browser_unavailable(other_host, cache):
    program = (
        "import sys, fastmcpauth\n"
        "client = fastmcpauth.OAuthClient(sys.argv[1], no_browser=True, storage=sys.argv[2],"
        " encryption_keys=[sys.argv[3]], sign_in_timeout=30)\n"
        "try:\n"
        "    client.token()\n"
        "except fastmcpauth.OAuthClientError as exc:\n"
        "    print(exc.code)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(HERE.parent)}
    result = subprocess.run(
        [sys.executable, "-c", program, other_host.url, cache["storage"], cache["encryption_keys"][0]],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.stdout.strip() == "browser_unavailable", result.stderr


def test_nothing_listening_is_discovery_failed(cache):
    with OAuthClient(f"http://127.0.0.1:{free_port()}/mcp", browser=NoBrowser(), **cache) as client:
        with pytest.raises(OAuthClientError) as caught:
            client.token()
    assert caught.value.code == "discovery_failed"


def test_async_cancellation_cancels_the_native_sign_in(other_host, cache):
    """An awaiting task cancelled during a sign-in cancels the native wait (otherwise the next
    sign-in would queue behind it for the whole sign_in_timeout)."""
    opened = threading.Event()
    with OAuthClient(other_host.url, browser=lambda url: opened.set(), **{**cache, "sign_in_timeout": 60}) as client:

        async def request():
            async with httpx2.AsyncClient(auth=client.httpx2_auth(), timeout=30) as http:
                return await http.post(other_host.url, headers=MCP_HEADERS, content=TOOLS_LIST)

        async def cancel_it():
            task = asyncio.ensure_future(request())
            while not opened.is_set():
                await asyncio.sleep(0.02)  # the event loop runs while the sign-in waits
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(asyncio.wait_for(cancel_it(), 30))
        browser = CountingBrowser()
        client.set_browser(browser)
        started = time.monotonic()
        token = client.token()
        assert time.monotonic() - started < 15 and len(browser.urls) == 1
    assert post_mcp(other_host.base, token).status_code == 200


def test_close_cancels_a_pending_sign_in_and_use_after_close_is_refused(other_host, cache):
    opened = threading.Event()
    client = OAuthClient(other_host.url, browser=lambda url: opened.set(), **{**cache, "sign_in_timeout": 60})
    outcome = []

    def sign_in():
        try:
            client.token()
        except OAuthClientError as exc:
            outcome.append(exc.code)

    waiter = threading.Thread(target=sign_in)
    waiter.start()
    assert opened.wait(30)
    client.close()
    waiter.join(20)
    assert not waiter.is_alive() and outcome == ["cancelled"]
    client.close()  # twice: nothing happens
    assert client.closed and "closed" in repr(client)
    for call in (
        client.token,
        client.logout,
        client.cancel,
        lambda: client.challenge(401, None),
        lambda: client.set_browser(None),
        lambda: client.set_browser(print),
    ):
        with pytest.raises(InvalidArgument, match="OAuth client is closed"):
            call()


def test_configuration_is_checked_and_passed_through(cache):
    url = "http://127.0.0.1:9/mcp"
    # Unknown keyword arguments reach the native configuration as they are.
    with pytest.raises(ConfigurationError, match="made_up_key"):
        OAuthClient(url, made_up_key=1, **cache)
    with pytest.raises(ConfigurationError, match="encryption_keys"):
        OAuthClient(url, storage=cache["storage"])
    with pytest.raises(ConfigurationError, match="server_url"):
        OAuthClient("http://example.com/mcp", **cache)
    with pytest.raises(ConfigurationError, match="scopes"):
        OAuthClient(url, scopes=["bad scope"], **cache)
    with pytest.raises(ConfigurationError, match="client_secret"):
        OAuthClient(url, client_id="c", client_secret="s3cr3t-value", **cache)
    with pytest.raises(InvalidArgument, match="NUL"):
        OAuthClient(url, client_name="a\0b", **cache)
    with OAuthClient(url, scopes=["a", "b"], redirect_port=0, no_browser=False, timeout=2, **cache) as client:
        with pytest.raises(InvalidArgument):
            client.challenge(500, None)
        with pytest.raises(TypeError):
            client.challenge("401", None)
        with pytest.raises(TypeError):
            client.set_browser("firefox")
        client.challenge(403, 'Bearer error="insufficient_scope", scope="a b c"')
        client.logout()
    # A client that is garbage collected without close() frees its handle quietly.
    OAuthClient(url, browser=print, **cache)


# ---- Two processes refreshing through one cache at once -----------------------------------------


def _refresh_in_a_process(server_url, cache, barrier, results):
    from fastmcpauth import OAuthClient

    def never(url):
        raise AssertionError("no sign-in: the cache holds a refresh token")

    tokens = []
    try:
        with OAuthClient(server_url, browser=never, refresh_margin=7200, **cache) as client:
            for _ in range(2):  # two rounds of simultaneous refreshes
                barrier.wait(30)
                tokens.append(client.token())
        results.put(("ok", tokens))
    except Exception as exc:
        results.put(("error", f"{type(exc).__name__}: {getattr(exc, 'code', '')}"))


def test_two_processes_refreshing_through_one_cache_keep_the_chain(oidc_provider, cache):
    """Against a proxy without a refresh grace window (a replayed refresh token revokes the grant,
    as FastMCP's does): two processes refresh through one SQLite cache at the same moment, twice;
    every token they get works and the chain refreshes on afterwards."""
    from test_proxy_e2e import start_host

    process, base = start_host(
        oidc_provider,
        {
            "FASTMCP_SERVER_AUTH_OIDC_REFRESH_GRACE_PERIOD": "0",
            "FASTMCP_SERVER_AUTH_OIDC_ACCESS_TOKEN_LIFETIME": "600",
        },
    )
    url = base + "/mcp"
    try:
        browser = CountingBrowser(user="racer")
        with OAuthClient(url, browser=browser, **cache) as client:
            first = client.token()
        assert post_mcp(base, first).status_code == 200
        context = multiprocessing.get_context("spawn")
        barrier, results = context.Barrier(2), context.Queue()
        workers = [context.Process(target=_refresh_in_a_process, args=(url, cache, barrier, results)) for _ in range(2)]
        for worker in workers:
            worker.start()
        outcomes = [results.get(timeout=90) for _ in workers]
        for worker in workers:
            worker.join(30)
        assert all(status == "ok" for status, _ in outcomes), outcomes
        tokens = [token for _, got in outcomes for token in got]
        assert first not in tokens and len(tokens) == 4
        # A rotation retires the access token it replaces: the cache's latest one is the live one.
        latest = cached_record(cache, url)["access_token"]
        assert latest in tokens and post_mcp(base, latest).status_code == 200
        # The grant is alive: a later refresh works, still without a sign-in.
        with OAuthClient(url, browser=NoBrowser(), refresh_margin=7200, **cache) as client:
            later = client.token()
        assert later not in tokens and post_mcp(base, later).status_code == 200
        assert len(browser.urls) == 1
    finally:
        process.terminate()
        log = process.communicate(timeout=10)[0]
    assert "revoked" not in log, "a refresh token was replayed"
    assert "eyJ" not in log


# ---- Client ID Metadata Documents ---------------------------------------------------------------


def test_a_client_metadata_document_is_the_client_id_and_the_consent_page_shows_its_host(tmp_path, cache):
    """Against the host's --testing mode (metadata documents may be served from loopback over
    plain http there; the native configuration accepts http client_metadata_url on loopback hosts
    only)."""
    from json_server import JSONServer

    redirect_port = free_port()
    documents = {}
    server = JSONServer({"/client.json": lambda: documents["client"]}, headers={"Cache-Control": "max-age=60"})
    metadata_url = server.url + "/client.json"
    documents["client"] = {
        "client_id": metadata_url,
        "client_name": "Metadata Document Client",
        "redirect_uris": [f"http://127.0.0.1:{redirect_port}/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    testing_host = Host(tmp_path / "testing-host", args=["--testing"])
    try:
        browser = CountingBrowser(user="frank")
        client = OAuthClient(
            testing_host.url,
            client_metadata_url=metadata_url,
            redirect_port=redirect_port,
            browser=browser,
            **cache,
        )
        with client:
            tools, identity, _ = asyncio.run(use_mcp(testing_host.url, client.httpx2_auth()))
        assert identity["client_id"] == metadata_url and identity["subject"] == "frank"
        assert "/client.json" in server.requests
        consent = browser.records[0]["consent"]
        assert "Verified: its metadata document is published by 127.0.0.1" in consent
        assert "Metadata Document Client" in consent
        assert "POST /register" not in testing_host.log(), "no dynamic registration"
    finally:
        testing_host.close()
        server.close()


# ---- Tokens stay with their server ---------------------------------------------------------------


def test_the_auth_objects_send_tokens_only_to_the_server_and_ignore_strangers_challenges(cache):
    """An httpx client reused for other URLs (or redirected elsewhere) sends them no token, and a
    401 or 403 from them starts no sign-in. httpx's own MockTransport plays the other servers."""
    import httpx

    opened = []
    seen = []

    def stranger(request):
        seen.append(request.headers.get("authorization"))
        return httpx.Response(
            403, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope", scope="admin"'}, json={}
        )

    with OAuthClient("http://127.0.0.1:9/mcp", browser=opened.append, **cache) as client:
        assert client._is_for_server("http://127.0.0.1:9/mcp/") and client._is_for_server("HTTP://127.0.0.1:9/mcp")
        with httpx.Client(auth=client.httpx_auth(), transport=httpx.MockTransport(stranger)) as http:
            for url in ("http://127.0.0.1:9/other", "http://127.0.0.1:10/mcp", "https://127.0.0.1:9/mcp"):
                assert http.get(url).status_code == 403
    assert seen == [None, None, None] and opened == []
