"""The official `mcp` client with OAuth, driven headlessly: a browser that follows redirects and
fills in our consent form and the identity provider's sign-in form."""

import html
import json
import re
from urllib.parse import parse_qs, urlsplit

import anyio.to_thread
import httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

CLIENT_REDIRECT = "http://127.0.0.1:47619/callback"


class Browser:
    """A headless browser: a cookie jar, no automatic redirects, and the two forms a user fills in."""

    def __init__(self, user="alice"):
        self.http = httpx2.Client(follow_redirects=False, timeout=10)
        self.user = user

    def sign_in(self, authorize_url, user=None, approve=True):
        """From the client's authorization URL to the parameters of its redirect URI."""
        response = self.http.get(authorize_url)
        assert response.status_code == 302, response.text
        consent_url = response.headers["location"]
        page = self.http.get(consent_url)
        assert page.status_code == 200 and page.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in page.headers["content-security-policy"]
        fields = dict(re.findall(r'name="(txn_id|csrf_token)" value="([^"]*)"', page.text))
        response = self.http.post(
            consent_url.split("?")[0],
            data={**{k: html.unescape(v) for k, v in fields.items()}, "action": "approve" if approve else "deny"},
        )
        assert response.status_code == 302
        location = response.headers["location"]
        if location.startswith(CLIENT_REDIRECT):
            return self.parameters(location)
        # The provider's sign-in page (after any redirects), then its redirect to our callback,
        # then ours to the client.
        page = self.http.get(location)
        while page.status_code == 302:
            location = page.headers["location"]
            page = self.http.get(location)
        assert page.status_code == 200
        form = re.search(r"<form[^>]*>", page.text).group(0)
        action = re.search(r'action="([^"]*)"', form)
        fields = {
            name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)
        }
        fields["username" if 'name="username"' in page.text else "sub"] = user or self.user
        response = self.http.post(html.unescape(action.group(1)) if action else location, data=fields)
        assert response.status_code == 302, response.text
        response = self.http.get(response.headers["location"])
        assert response.status_code == 302, response.text
        return self.parameters(response.headers["location"])

    @staticmethod
    def parameters(url):
        assert url.startswith(CLIENT_REDIRECT)
        return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


class MemoryTokens(TokenStorage):
    def __init__(self):
        self.tokens, self.client = None, None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull):
        self.client = client_info


def client_for(base, browser, storage):
    async def redirect_handler(url):
        redirect_handler.result = await anyio.to_thread.run_sync(browser.sign_in, url)

    async def callback_handler():
        result = redirect_handler.result
        assert "error" not in result, result
        return AuthorizationCodeResult(code=result["code"], state=result.get("state"), iss=result.get("iss"))

    metadata = OAuthClientMetadata(
        client_name="e2e <client>",
        redirect_uris=[CLIENT_REDIRECT],
        grant_types=["authorization_code", "refresh_token"],
        response_types=["code"],
        token_endpoint_auth_method="none",
    )
    provider = OAuthClientProvider(
        server_url=base + "/mcp",
        client_metadata=metadata,
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
    )
    return httpx2.AsyncClient(auth=provider, timeout=20)


async def whoami(base, http):
    async with streamable_http_client(base + "/mcp", http_client=http) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            result = await session.call_tool("whoami", {})
            return json.loads(result.content[0].text)


def post_mcp(base, token):
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx2.post(base + "/mcp", headers=headers, content=b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
