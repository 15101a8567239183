"""Attacks on the OAuth proxy, over real HTTP against fastmcpauth-host (OIDC proxy in front of
oidc-provider-mock). Each asserts the exact status and OAuth error."""

import base64
import hashlib
import re
import secrets
import time
from urllib.parse import urlencode

import httpx2
import pytest
from oauth_client import CLIENT_REDIRECT, Browser, post_mcp
from test_proxy_e2e import start_host


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


def test_wrong_pkce_cross_client_expired_and_resource_mismatch(host):
    client, other = Client(host), Client(host)
    oauth_error(client.exchange(client.code(), code_verifier=secrets.token_urlsafe(48)), 400, "invalid_grant")
    oauth_error(client.exchange(client.code(), code_verifier=None), 400, "invalid_grant")
    oauth_error(other.exchange(client.code(), client_id=other.id, code_verifier=client.verifier), 400, "invalid_grant")
    oauth_error(client.exchange(client.code(), resource="https://other.example/mcp"), 400, "invalid_target")
    code = client.code()
    time.sleep(2.5)
    oauth_error(client.exchange(code), 400, "invalid_grant")


def test_code_replay_revokes_what_it_issued(host):
    client = Client(host)
    code = client.code()
    first = client.exchange(code)
    assert first.status_code == 200 and post_mcp(host, first.json()["access_token"]).status_code == 200
    oauth_error(client.exchange(code), 400, "invalid_grant")
    assert post_mcp(host, first.json()["access_token"]).status_code == 401


def test_state_mismatch_consent_csrf_and_a_foreign_browser(host):
    client = Client(host)
    browser = httpx2.Client(follow_redirects=False)
    consent_url = browser.get(client.authorize_url()).headers["location"]
    page = browser.get(consent_url).text
    txn = re.search(r'name="txn_id" value="([^"]*)"', page).group(1)
    assert (
        browser.post(host + "/consent", data={"txn_id": txn, "csrf_token": "forged", "action": "approve"}).status_code
        == 403
    )
    csrf = re.search(r'name="csrf_token" value="([^"]*)"', page).group(1)
    approved = browser.post(host + "/consent", data={"txn_id": txn, "csrf_token": csrf, "action": "approve"})
    assert approved.status_code == 302
    # The provider signs the user in and sends them back; another browser (no binding cookie) cannot finish.
    login = approved.headers["location"]
    browser.get(login)
    callback = browser.post(login, data={"sub": "mallory"}).headers["location"]
    assert httpx2.get(callback).status_code == 403
    assert httpx2.get(host + "/auth/callback?code=x&state=unknown", cookies=browser.cookies).status_code == 400
    finished = browser.get(callback)
    assert finished.status_code == 302 and "code=" in finished.headers["location"]


def test_refresh_reuse_after_grace_and_cross_client_refresh(host):
    client, other = Client(host), Client(host)
    tokens = client.tokens()
    oauth_error(client.refresh(tokens["refresh_token"], client_id=other.id), 400, "invalid_grant")
    rotated = client.refresh(tokens["refresh_token"])
    assert rotated.status_code == 200
    time.sleep(1.5)
    oauth_error(client.refresh(tokens["refresh_token"]), 400, "invalid_grant")
    # Reuse after the grace window revoked the whole family.
    assert post_mcp(host, rotated.json()["access_token"]).status_code == 401
    oauth_error(client.refresh(rotated.json()["refresh_token"]), 400, "invalid_grant")


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
    oauth_error(response, 429, "too_many_requests")
    assert int(response.headers["retry-after"]) > 0
