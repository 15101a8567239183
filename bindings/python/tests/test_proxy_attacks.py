"""Attacks on the OAuth proxy, over real HTTP against fastmcpauth-host (OIDC proxy in front of
oidc-provider-mock). Each asserts the exact status and OAuth error."""

import base64
import hashlib
import re
import secrets
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx2
import pytest
from oauth_client import CLIENT_REDIRECT, Browser, post_mcp
from test_proxy_e2e import HOST, start_host


@pytest.fixture(scope="module")
def host(oidc_provider):
    process, base = start_host(
        oidc_provider,
        {
            "FASTMCP_SERVER_AUTH_OIDC_ACCESS_TOKEN_LIFETIME": "3600",
            "FASTMCP_SERVER_AUTH_OIDC_REFRESH_GRACE_PERIOD": "1",
            "FASTMCP_SERVER_AUTH_OIDC_CODE_LIFETIME": "2",
            "FASTMCP_SERVER_AUTH_OIDC_REGISTRATION_RATE_LIMIT": "30",
        },
    )
    yield base
    process.terminate()
    process.communicate(timeout=10)


class Client:
    def __init__(self, base):
        self.base = base
        response = httpx2.post(
            base + "/register", json={"redirect_uris": [CLIENT_REDIRECT], "client_name": "attack test"}
        )
        assert response.status_code == 201
        self.id = response.json()["client_id"]
        self.verifier = secrets.token_urlsafe(48)
        self.challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).decode().rstrip("=")

    def authorize_url(self, **overrides):
        params = {
            "response_type": "code",
            "client_id": self.id,
            "redirect_uri": CLIENT_REDIRECT,
            "code_challenge": self.challenge,
            "code_challenge_method": "S256",
            "state": "st",
            "resource": self.base + "/mcp",
        }
        params.update(overrides)
        return self.base + "/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})

    def code(self):
        result = Browser().sign_in(self.authorize_url())
        return result["code"]

    def exchange(self, code, **overrides):
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CLIENT_REDIRECT,
            "code_verifier": self.verifier,
            "client_id": self.id,
        }
        data.update(overrides)
        return httpx2.post(self.base + "/token", data={k: v for k, v in data.items() if v is not None})

    def tokens(self):
        response = self.exchange(self.code())
        assert response.status_code == 200
        return response.json()

    def refresh(self, token, client_id=None):
        return httpx2.post(
            self.base + "/token",
            data={"grant_type": "refresh_token", "refresh_token": token, "client_id": client_id or self.id},
        )


def redirect_error(response):
    assert response.status_code == 302 and response.headers["location"].startswith(CLIENT_REDIRECT)
    return dict(x.split("=", 1) for x in response.headers["location"].split("?", 1)[1].split("&"))["error"]


def oauth_error(response, status, error):
    assert response.status_code == status, response.text
    assert response.json()["error"] == error


def test_unregistered_or_altered_redirect_uri_never_redirects(host):
    client = Client(host)
    for uri in ["http://127.0.0.1:47619/other", "https://evil.example/callback", CLIENT_REDIRECT + "?x=1"]:
        response = httpx2.get(client.authorize_url(redirect_uri=uri))
        assert response.status_code == 400 and "location" not in response.headers


@pytest.mark.parametrize(
    "uri", ["javascript:alert(1)", "data:text/html,<script>1</script>", "http://evil.example/cb", "file:///etc/passwd"]
)
def test_unsafe_redirect_uris_are_not_registered(host, uri):
    oauth_error(httpx2.post(host + "/register", json={"redirect_uris": [uri]}), 400, "invalid_redirect_uri")


@pytest.mark.parametrize(
    "overrides,error",
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"resource": "https://other.example/mcp"}, "invalid_target"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
def test_authorize_errors_go_back_to_the_verified_redirect_uri(host, overrides, error):
    client = Client(host)
    assert redirect_error(httpx2.get(client.authorize_url(**overrides))) == error


def test_a_misused_code_is_refused_without_being_used_up(host):
    client, other = Client(host), Client(host)
    code = client.code()
    oauth_error(client.exchange(code, code_verifier=secrets.token_urlsafe(48)), 400, "invalid_grant")
    oauth_error(client.exchange(code, code_verifier=None), 400, "invalid_grant")
    oauth_error(other.exchange(code, client_id=other.id), 400, "invalid_grant")
    oauth_error(client.exchange(code, redirect_uri="http://127.0.0.1:47619/other"), 400, "invalid_grant")
    oauth_error(client.exchange(code, resource="https://other.example/mcp"), 400, "invalid_target")
    # None of that burned it: a stranger holding a leaked code cannot lock its owner out.
    assert client.exchange(code).status_code == 200
    code = client.code()
    time.sleep(2.5)
    oauth_error(client.exchange(code), 400, "invalid_grant")


def test_a_second_use_of_a_code_is_refused_and_a_replay_revokes(host):
    client = Client(host)
    code = client.code()
    first = client.exchange(code)
    assert first.status_code == 200 and post_mcp(host, first.json()["access_token"]).status_code == 200
    # The same client posting twice (same verifier, within 10 s): refused, the grant left alone.
    oauth_error(client.exchange(code), 400, "invalid_grant")
    assert post_mcp(host, first.json()["access_token"]).status_code == 200
    # Anyone else's replay revokes what the code issued.
    oauth_error(client.exchange(code, code_verifier=secrets.token_urlsafe(48)), 400, "invalid_grant")
    assert post_mcp(host, first.json()["access_token"]).status_code == 401
    oauth_error(client.refresh(first.json()["refresh_token"]), 400, "invalid_grant")


def test_concurrent_exchanges_of_one_code_issue_once(host):
    client = Client(host)
    code = client.code()
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: client.exchange(code), range(8)))
    assert sorted(r.status_code for r in responses) == [200] + [400] * 7
    winner = next(r for r in responses if r.status_code == 200).json()
    assert post_mcp(host, winner["access_token"]).status_code == 200, "duplicates of the winner revoke nothing"


def consent_page(browser, client):
    consent_url = browser.get(client.authorize_url()).headers["location"]
    page = browser.get(consent_url)
    fields = dict(re.findall(r'name="(txn_id|csrf_token)" value="([^"]*)"', page.text))
    return page, fields["txn_id"], fields["csrf_token"]


def test_the_consent_form_of_one_browser_cannot_be_submitted_by_another(host):
    """The reported takeover: the attacker renders the consent page of their own authorization,
    then has a victim's browser submit it."""
    client = Client(host)
    attacker = httpx2.Client(follow_redirects=False)
    page, txn, csrf = consent_page(attacker, client)
    cookie = page.headers["set-cookie"]
    assert cookie.startswith("fastmcpauth_browser=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert page.headers["referrer-policy"] == "same-origin"
    # The victim: a browser with a binding cookie of its own (it visited before), or none.
    victim = httpx2.Client(follow_redirects=False)
    consent_page(victim, Client(host))
    for browser in (victim, httpx2.Client(follow_redirects=False)):
        refused = browser.post(host + "/consent", data={"txn_id": txn, "csrf_token": csrf, "action": "approve"})
        assert refused.status_code == 403 and "set-cookie" not in refused.headers
    # Cross-site posts are refused before the token is read, in the attacker's own browser too.
    _, txn, csrf = consent_page(attacker, client)
    for headers in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ):
        response = attacker.post(
            host + "/consent", data={"txn_id": txn, "csrf_token": csrf, "action": "approve"}, headers=headers
        )
        assert response.status_code == 403, headers
    approved = attacker.post(
        host + "/consent", data={"txn_id": txn, "csrf_token": csrf, "action": "approve"}, headers={"Origin": host}
    )
    assert approved.status_code == 302
    # Signed in at the provider; only the approving browser can finish.
    login = approved.headers["location"]
    attacker.get(login)
    callback = attacker.post(login, data={"sub": "mallory"}).headers["location"]
    assert httpx2.get(callback).status_code == 403
    assert victim.get(callback).status_code == 403
    assert httpx2.get(host + "/auth/callback?code=x&state=unknown", cookies=attacker.cookies).status_code == 400
    finished = attacker.get(callback)
    assert finished.status_code == 302 and "code=" in finished.headers["location"]


def test_two_pages_and_two_authorizations_in_one_browser(host):
    client = Client(host)
    browser = httpx2.Client(follow_redirects=False)
    _, txn, csrf = consent_page(browser, client)
    prefetch = browser.get(host + "/consent?txn_id=" + txn)  # a prefetch or an extension
    assert prefetch.status_code == 200 and "set-cookie" not in prefetch.headers
    _, other_txn, other_csrf = consent_page(browser, client)
    for t, c in ((txn, csrf), (other_txn, other_csrf)):
        approved = browser.post(host + "/consent", data={"txn_id": t, "csrf_token": c, "action": "approve"})
        assert approved.status_code == 302
        login = approved.headers["location"]
        browser.get(login)
        callback = browser.post(login, data={"sub": "alice"}).headers["location"]
        assert "code=" in browser.get(callback).headers["location"]


def test_scopes_are_only_those_offered(host):
    oauth_error(
        httpx2.post(host + "/register", json={"redirect_uris": [CLIENT_REDIRECT], "scope": "openid admin"}),
        400,
        "invalid_client_metadata",
    )
    client = Client(host)
    assert redirect_error(httpx2.get(client.authorize_url(scope="openid admin"))) == "invalid_scope"
    # A client that asks for nothing gets the offered set.
    tokens = client.tokens()
    assert set(tokens["scope"].split()) == {"openid", "profile"}


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.attacker.example/cb",
        "http://localhost.evil.example/cb",
        "https://app.example/a/../cb",
        "https://app.example/a/%2e%2e/cb",
        "https://user@app.example/cb",
        "http://127.0.0.1:\u0668\u0660/cb",
    ],
)
def test_deceptive_redirect_uris_are_not_registered(host, uri):
    oauth_error(httpx2.post(host + "/register", json={"redirect_uris": [uri]}), 400, "invalid_redirect_uri")


def test_a_replay_inside_the_grace_window_gets_the_same_successor_once(host):
    client = Client(host)
    tokens = client.tokens()
    first = client.refresh(tokens["refresh_token"])
    second = client.refresh(tokens["refresh_token"])
    assert first.status_code == 200 and second.status_code == 200 and second.json() == first.json()
    oauth_error(client.refresh(tokens["refresh_token"]), 400, "invalid_grant")
    # The grant lives on: the successor works and refreshes.
    assert post_mcp(host, first.json()["access_token"]).status_code == 200
    successor = client.refresh(first.json()["refresh_token"])
    assert successor.status_code == 200


def test_refresh_reuse_after_grace_and_cross_client_refresh(host):
    client, other = Client(host), Client(host)
    tokens = client.tokens()
    oauth_error(client.refresh(tokens["refresh_token"], client_id=other.id), 400, "invalid_grant")
    rotated = client.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200
    time.sleep(1.5)
    oauth_error(client.refresh(tokens["refresh_token"]), 400, "invalid_grant")
    # Reuse after the grace window revoked the whole grant.
    assert post_mcp(host, rotated.json()["access_token"]).status_code == 401
    oauth_error(client.refresh(rotated.json()["refresh_token"]), 400, "invalid_grant")


@pytest.mark.parametrize("concurrency", [2, 5, 10])
def test_concurrent_refreshes_never_revoke_the_grant(host, concurrency):
    client = Client(host)
    tokens = client.tokens()
    with ThreadPoolExecutor(concurrency) as pool:
        responses = list(pool.map(lambda _: client.refresh(tokens["refresh_token"]), range(concurrency)))
    granted = [r.json() for r in responses if r.status_code == 200]
    assert granted and all(r.status_code in (200, 400) for r in responses)
    assert all(g == granted[0] for g in granted), "one successor, never a second chain"
    for g in granted:
        assert post_mcp(host, g["access_token"]).status_code == 200
    assert client.refresh(granted[0]["refresh_token"]).status_code == 200, "the grant can still be refreshed"


def test_tokens_that_are_not_access_tokens_and_revocation(host, oidc_provider):
    client = Client(host)
    tokens = client.tokens()
    assert post_mcp(host, tokens["refresh_token"]).status_code == 401
    # A real upstream token, straight from the provider, is not ours.
    idp = httpx2.Client(follow_redirects=False)
    login = (
        oidc_provider
        + "/oauth2/authorize?"
        + urlencode(
            {
                "client_id": "someone",
                "redirect_uri": "http://127.0.0.1:9/cb",
                "response_type": "code",
                "scope": "openid profile",
            }
        )
    )
    code = dict(
        x.split("=", 1) for x in idp.post(login, data={"sub": "alice"}).headers["location"].split("?", 1)[1].split("&")
    )["code"]
    upstream = idp.post(
        oidc_provider + "/oauth2/token",
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1:9/cb"},
        auth=("someone", "x"),
    )
    assert upstream.status_code == 200
    assert post_mcp(host, upstream.json()["access_token"]).status_code == 401
    assert post_mcp(host, upstream.json()["id_token"]).status_code == 401
    assert post_mcp(host, tokens["access_token"]).status_code == 200
    assert (
        httpx2.post(
            host + "/revoke", data={"token": tokens["access_token"], "client_id": client.id, "client_secret": ""}
        ).status_code
        == 200
    )
    response = post_mcp(host, tokens["access_token"])
    assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]
    oauth_error(
        httpx2.post(host + "/revoke", data={"token": tokens["refresh_token"], "client_id": "nobody"}),
        401,
        "invalid_client",
    )


def test_registration_flood(host):
    statuses = [
        httpx2.post(host + "/register", json={"redirect_uris": [CLIENT_REDIRECT]}).status_code for _ in range(30)
    ]
    assert statuses.count(429) >= 10 and statuses[-1] == 429
    response = httpx2.post(host + "/register", json={"redirect_uris": [CLIENT_REDIRECT]})
    oauth_error(response, 429, "rate_limited")
    assert int(response.headers["retry-after"]) > 0


def test_a_store_outage_is_a_503_never_a_401(oidc_provider):
    """MCP clients throw their tokens away on 401: a Redis blip must not log every user out."""
    from redis_server import RedisServer

    redis = RedisServer()
    process, base = start_host(oidc_provider, {"FASTMCP_SERVER_AUTH_OIDC_STORAGE": redis.url})
    try:
        client = Client(base)
        tokens = client.tokens()
        assert post_mcp(base, tokens["access_token"]).status_code == 200
        redis.stop()
        outage = post_mcp(base, tokens["access_token"])
        assert outage.status_code == 503 and int(outage.headers["retry-after"]) > 0
        assert outage.json()["error"] == "temporarily_unavailable" and "www-authenticate" not in outage.headers
        refresh = client.refresh(tokens["refresh_token"])
        assert refresh.status_code == 503 and refresh.json()["error"] == "temporarily_unavailable"
        redis.start()
        assert post_mcp(base, tokens["access_token"]).status_code == 200
        assert client.refresh(tokens["refresh_token"]).status_code == 200, "nothing was revoked by the outage"
    finally:
        process.terminate()
        process.communicate(timeout=10)
        redis.close()


def test_the_testing_flag_allows_loopback_metadata_documents_and_nothing_else(oidc_provider):
    from json_server import JSONServer

    documents = {}
    server = JSONServer({"/client.json": lambda: documents["client"]}, headers={"Cache-Control": "max-age=60"})
    client_id = server.url + "/client.json"
    documents["client"] = {"client_id": client_id, "client_name": "Doc Client", "redirect_uris": [CLIENT_REDIRECT]}
    try:
        # Without --testing, a loopback document host is refused (SSRF policy).
        process, base = start_host(oidc_provider)
        try:
            client = Client(base)
            client.id = client_id
            assert httpx2.get(client.authorize_url()).status_code == 400
        finally:
            process.terminate()
            process.communicate(timeout=10)
        process, base = start_host(oidc_provider, args=["--testing"])
        try:
            client = Client(base)
            client.id = client_id
            browser = httpx2.Client(follow_redirects=False)
            page, _, _ = consent_page(browser, client)
            assert "Verified: its metadata document is published by <strong>127.0.0.1</strong>" in page.text
        finally:
            process.terminate()
            process.communicate(timeout=10)
        # --testing refuses a non-loopback bind.
        refused = subprocess.run(
            [str(HOST), "--testing", "--host", "0.0.0.0", "--port", "1"],
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert refused.returncode != 0 and "loopback" in refused.stderr + refused.stdout
    finally:
        server.close()


def test_strangers_are_limited_per_address_and_never_evict_anyone(oidc_provider):
    process, base = start_host(
        oidc_provider,
        {
            "FASTMCP_SERVER_AUTH_OIDC_AUTHORIZE_RATE_LIMIT": "8",
            "FASTMCP_SERVER_AUTH_OIDC_CONSENT_RATE_LIMIT": "100000",
            "FASTMCP_SERVER_AUTH_OIDC_MAX_PENDING_TRANSACTIONS_PER_CLIENT": "3",
            "FASTMCP_SERVER_AUTH_OIDC_TRUSTED_PROXIES": "127.0.0.1/32",
        },
    )
    try:
        # A user signs in (from 198.51.100.1 behind our trusted proxy) and keeps a sign-in pending.
        user = Client(base)
        browser = httpx2.Client(follow_redirects=False, headers={"X-Forwarded-For": "198.51.100.1"})
        pending = browser.get(user.authorize_url()).headers["location"]
        # A stranger (another address) floods /authorize: 429 rate_limited past its limit.
        stranger = Client(base)
        flood = [
            httpx2.get(stranger.authorize_url(), headers={"X-Forwarded-For": "203.0.113.9"}).status_code
            for _ in range(12)
        ]
        assert flood.count(429) >= 4, flood
        limited = httpx2.get(stranger.authorize_url(), headers={"X-Forwarded-For": "203.0.113.9"})
        oauth_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) > 0
        # Another address is not limited; a spoofed header from an untrusted peer counts as that peer.
        assert httpx2.get(Client(base).authorize_url(), headers={"X-Forwarded-For": "203.0.113.10"}).status_code == 302
        # One client's pending sign-ins are capped (3 per transaction lifetime), whatever the addresses.
        busy = Client(base)
        statuses = [
            httpx2.get(busy.authorize_url(), headers={"X-Forwarded-For": f"192.0.2.{i}"}).status_code
            for i in range(1, 6)
        ]
        assert statuses == [302, 302, 302, 429, 429], statuses
        # The user's pending sign-in was never evicted: it completes.
        page = browser.get(pending)
        assert page.status_code == 200
        fields = dict(re.findall(r'name="(txn_id|csrf_token)" value="([^"]*)"', page.text))
        approved = browser.post(base + "/consent", data={**fields, "action": "approve"})
        assert approved.status_code == 302
    finally:
        process.terminate()
        process.communicate(timeout=10)
