"""The OAuth proxy side by side with FastMCP's OAuthProxy, both in process, memory store, the same
local upstream (a token endpoint answering an RS256 JWT that both proxies verify upstream):
bearer checks per second for proxy-issued tokens, and each flow step's own time. Run with
.venv-fastmcp's Python (`make bench` does): FastMCP and the fastmcpauth binding side by side.

The callback step includes one upstream token request; its round trip, measured alone from the
same process, is printed beside it and subtracted."""

import asyncio
import json
import os
import secrets
import statistics
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bindings" / "python"))
os.environ.setdefault("FASTMCPAUTH_LIB", str(REPO / ".build" / "release" / "libfastmcpauth.so"))
os.environ.setdefault("FASTMCP_LOG_LEVEL", "WARNING")  # neither side logs per step

import fastmcpauth  # noqa: E402
import httpx2  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: E402
from joserfc import jwt as joserfc_jwt  # noqa: E402
from joserfc.jwk import RSAKey  # noqa: E402

ITERATIONS = int(os.environ.get("BENCH_PROXY_ITERATIONS", "300"))
BEARER_SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
BASE = "http://127.0.0.1:8000"
REDIRECT = "http://127.0.0.1:47619/callback"
ISSUER, AUDIENCE = "https://upstream.bench", "bench-upstream"


class Upstream:
    """A token endpoint answering one pre-signed RS256 access token (valid an hour)."""

    def __init__(self):
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.pem = (
            private.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )
        key = RSAKey.import_key(
            private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        token = joserfc_jwt.encode(
            {"alg": "RS256"},
            {
                "iss": ISSUER,
                "aud": AUDIENCE,
                "sub": "bench-user",
                "scope": "read",
                "exp": int(time.time()) + 3600,
                "iat": int(time.time()),
            },
            key,
        )
        body = json.dumps(
            {
                "access_token": token,
                "refresh_token": "upstream-refresh",
                "expires_in": 3600,
                "token_type": "Bearer",
                "scope": "read",
            }
        ).encode()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                # One write: split header and body writes meet Nagle and delayed ACKs (40 ms).
                self.wfile.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def round_trip_ms(self):
        """One token request's round trip from this process (what the callback step spends upstream)."""
        samples = []
        with httpx2.Client() as client:
            for _ in range(100):
                start = time.perf_counter()
                client.post(self.url + "/token", data={"grant_type": "authorization_code", "code": "x"})
                samples.append((time.perf_counter() - start) * 1000)
        return statistics.median(samples)


def pkce():
    import base64
    import hashlib

    verifier = secrets.token_urlsafe(48)
    return verifier, base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")


def timed(step, samples, function):
    start = time.perf_counter()
    result = function()
    samples.setdefault(step, []).append((time.perf_counter() - start) * 1000)
    return result


async def atimed(step, samples, coroutine):
    start = time.perf_counter()
    result = await coroutine
    samples.setdefault(step, []).append((time.perf_counter() - start) * 1000)
    return result


def bearer_rate(check):
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < BEARER_SECONDS:
        for _ in range(64):
            check()
        count += 64
    return count / (time.perf_counter() - start)


def ours(upstream):
    auth = fastmcpauth.OAuthProxy(
        upstream_authorization_endpoint=upstream.url + "/authorize",
        upstream_token_endpoint=upstream.url + "/token",
        upstream_client_id="bench",
        upstream_client_secret="bench-secret",
        base_url=BASE,
        token_verifier={"public_key": upstream.pem, "issuer": ISSUER, "audience": AUDIENCE, "algorithm": "RS256"},
        registration_rate_limit=1_000_000,
    )
    samples, access = {}, None
    for _ in range(ITERATIONS):
        registered = timed(
            "register",
            samples,
            lambda: auth.handle(
                "POST",
                "/register",
                {"Content-Type": "application/json"},
                json.dumps({"redirect_uris": [REDIRECT]}).encode(),
                "10.0.0.1",
            ),
        )
        client_id = json.loads(registered.body)["client_id"]
        verifier, challenge = pkce()
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": REDIRECT,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": "s",
                "scope": "read",
            }
        )
        consent = timed("authorize", samples, lambda: auth.handle("GET", "/authorize?" + query)).headers["Location"]
        page = auth.handle("GET", consent[len(BASE) :]).body.decode()
        txn = page.split('name="txn_id" value="')[1].split('"')[0]
        csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
        approved = auth.handle(
            "POST",
            "/consent",
            {"Content-Type": "application/x-www-form-urlencoded"},
            urlencode({"txn_id": txn, "csrf_token": csrf, "action": "approve"}).encode(),
        )
        cookie = approved.headers["Set-Cookie"].split(";")[0]
        back = timed(
            "callback",
            samples,
            lambda: auth.handle("GET", "/auth/callback?" + urlencode({"code": "up", "state": txn}), {"Cookie": cookie}),
        )
        code = parse_qs(urlsplit(back.headers["Location"]).query)["code"][0]
        tokens = timed(
            "token",
            samples,
            lambda: auth.handle(
                "POST",
                "/token",
                {"Content-Type": "application/x-www-form-urlencoded"},
                urlencode(
                    {
                        "grant_type": "authorization_code",
                        "code": code,
                        "redirect_uri": REDIRECT,
                        "code_verifier": verifier,
                        "client_id": client_id,
                    }
                ).encode(),
            ),
        )
        refresh = json.loads(tokens.body)["refresh_token"]
        refreshed = timed(
            "refresh",
            samples,
            lambda: auth.handle(
                "POST",
                "/token",
                {"Content-Type": "application/x-www-form-urlencoded"},
                urlencode({"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id}).encode(),
            ),
        )
        access = json.loads(refreshed.body)["access_token"]
    header = "Bearer " + access
    auth.authenticate(header)
    return samples, bearer_rate(lambda: auth.authenticate(header))


async def fastmcp(upstream):
    from fastmcp.server.auth.oauth_proxy import OAuthProxy
    from fastmcp.server.auth.providers.jwt import JWTVerifier
    from key_value.aio.stores.memory import MemoryStore
    from mcp.server.auth.provider import AuthorizationParams
    from mcp.shared.auth import OAuthClientInformationFull
    from starlette.requests import Request

    proxy = OAuthProxy(
        upstream_authorization_endpoint=upstream.url + "/authorize",
        upstream_token_endpoint=upstream.url + "/token",
        upstream_client_id="bench",
        upstream_client_secret="bench-secret",
        base_url=BASE,
        token_verifier=JWTVerifier(public_key=upstream.pem, issuer=ISSUER, audience=AUDIENCE, algorithm="RS256"),
        require_authorization_consent=False,
        client_storage=MemoryStore(),
    )
    proxy.set_mcp_path("/mcp")
    samples, access = {}, None
    for _ in range(ITERATIONS):
        info = OAuthClientInformationFull(
            client_id=str(uuid.uuid4()),
            redirect_uris=[REDIRECT],
            token_endpoint_auth_method="none",
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
        )
        await atimed("register", samples, proxy.register_client(info))
        client = await proxy.get_client(info.client_id)
        verifier, challenge = pkce()
        params = AuthorizationParams(
            state="s",
            scopes=["read"],
            code_challenge=challenge,
            redirect_uri=REDIRECT,
            redirect_uri_provided_explicitly=True,
        )
        upstream_url = await atimed("authorize", samples, proxy.authorize(client, params))
        txn = parse_qs(urlsplit(upstream_url).query)["state"][0]
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/auth/callback",
            "raw_path": b"/auth/callback",
            "root_path": "",
            "query_string": urlencode({"code": "up", "state": txn}).encode(),
            "headers": [],
            "scheme": "http",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 1),
        }
        back = await atimed("callback", samples, proxy._handle_idp_callback(Request(scope)))
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]

        async def token_step():
            authorization_code = await proxy.load_authorization_code(client, code)
            return await proxy.exchange_authorization_code(client, authorization_code)

        tokens = await atimed("token", samples, token_step())

        async def refresh_step():
            refresh_token = await proxy.load_refresh_token(client, tokens.refresh_token)
            return await proxy.exchange_refresh_token(client, refresh_token, ["read"])

        refreshed = await atimed("refresh", samples, refresh_step())
        access = refreshed.access_token
    assert await proxy.load_access_token(access) is not None
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < BEARER_SECONDS:
        for _ in range(64):
            await proxy.load_access_token(access)
        count += 64
    return samples, count / (time.perf_counter() - start)


def main():
    upstream = Upstream()
    round_trip = upstream.round_trip_ms()
    our_steps, our_rate = ours(upstream)
    their_steps, their_rate = asyncio.run(fastmcp(upstream))
    print(
        f"OAuth proxy, in process, memory store, {ITERATIONS} flows each; median ms per step "
        f"(callback minus the {round_trip:.2f} ms upstream round trip):"
    )
    print(f"{'step':10} {'fastmcpauth':>12} {'FastMCP 4.0.11':>15} {'ratio':>7}")
    for step in ["register", "authorize", "callback", "token", "refresh"]:
        ours_ms, theirs_ms = statistics.median(our_steps[step]), statistics.median(their_steps[step])
        if step == "callback":
            ours_ms, theirs_ms = max(ours_ms - round_trip, 0.001), max(theirs_ms - round_trip, 0.001)
        print(f"{step:10} {ours_ms:>12.3f} {theirs_ms:>15.3f} {theirs_ms / ours_ms:>6.1f}x")
    print(f"{'bearer/s':10} {our_rate:>12,.0f} {their_rate:>15,.0f} {our_rate / their_rate:>6.1f}x")


if __name__ == "__main__":
    main()
