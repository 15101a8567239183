"""Resource-server mode from Python: discovery routes, challenges, AuthKit against a local
authorization server with joserfc-signed tokens, static tokens, FastMCP's environment."""

import json
import time

import fastmcpauth
import pytest
from fake_authkit import FakeAuthKit


class LocalAuthKit(FakeAuthKit):
    def token(self, **claims):
        return super().token("http://127.0.0.1:8000/mcp", **{"sub": "user_1", "scope": "openid profile", **claims})


@pytest.fixture(scope="module")
def authkit():
    server = LocalAuthKit()
    yield server
    server.close()


def test_authkit_routes_and_tokens(authkit):
    auth = fastmcpauth.AuthKitProvider(authkit.url, "http://127.0.0.1:8000", required_scopes=["openid"])
    prm = auth.handle("GET", "/.well-known/oauth-protected-resource/mcp", {"Host": "127.0.0.1:8000"})
    assert prm.status == 200
    assert json.loads(prm.body) == {
        "resource": "http://127.0.0.1:8000/mcp",
        "authorization_servers": [authkit.url],
        "scopes_supported": ["openid"],
        "bearer_methods_supported": ["header"],
    }
    assert auth.handle("GET", "/.well-known/oauth-protected-resource").status == 200
    for _ in range(3):
        mirrored = auth.handle("GET", "/.well-known/oauth-authorization-server")
        assert mirrored.status == 200 and json.loads(mirrored.body)["issuer"] == authkit.url
    assert authkit.metadata_requests == 1
    assert auth.handle("POST", "/mcp", {}, b"{}") is None

    token = authkit.token()
    access = auth.authenticate("Bearer " + token)
    assert access.token == token and access.subject == "user_1" and access.scopes == ["openid", "profile"]

    with pytest.raises(fastmcpauth.AuthChallenge) as info:
        auth.authenticate(None)
    assert info.value.status == 401
    assert info.value.www_authenticate == (
        'Bearer resource_metadata="http://127.0.0.1:8000/.well-known/oauth-protected-resource/mcp", scope="openid"'
    )
    for bad in [
        authkit.token(exp=int(time.time()) - 5),
        authkit.token(aud="http://elsewhere/mcp"),
        authkit.token(iss="https://evil"),
    ]:
        with pytest.raises(fastmcpauth.AuthChallenge) as info:
            auth.authenticate("Bearer " + bad)
        assert info.value.status == 401 and info.value.www_authenticate.startswith('Bearer error="invalid_token"')
        assert bad not in info.value.www_authenticate and bad.encode() not in info.value.body
    with pytest.raises(fastmcpauth.AuthChallenge) as info:
        auth.authenticate("Bearer " + token, required_scopes=["admin"])
    assert info.value.status == 403 and 'error="insufficient_scope"' in info.value.www_authenticate
    assert 'scope="openid admin"' in info.value.www_authenticate
    assert json.loads(info.value.body)["error"] == "insufficient_scope"
    with pytest.raises(fastmcpauth.AuthChallenge) as info:
        auth.authenticate("Bearer " + token, target="/mcp?access_token=" + token)
    assert info.value.status == 401


def test_remote_provider_under_a_path_prefix():
    key = fastmcpauth.generate_key("ES256")
    verifier = fastmcpauth.JWTVerifier(
        jwks={"keys": [fastmcpauth.public_jwk(key)]}, algorithm="ES256", audience="https://api.example.com/tools/mcp"
    )
    auth = fastmcpauth.RemoteAuthProvider(
        verifier,
        ["https://auth.example.com"],
        "https://api.example.com/tools",
        required_scopes=["mcp"],
        resource_name="Tools",
    )
    document = json.loads(auth.handle("GET", "/.well-known/oauth-protected-resource/tools/mcp").body)
    assert document["resource"] == "https://api.example.com/tools/mcp" and document["resource_name"] == "Tools"
    token = fastmcpauth.sign_jwt(
        {"sub": "a", "aud": "https://api.example.com/tools/mcp", "scope": "mcp", "exp": int(time.time()) + 60},
        key,
        "ES256",
    )
    assert auth.authenticate("Bearer " + token).subject == "a"
    with pytest.raises(fastmcpauth.AuthChallenge) as info:
        auth.authenticate("Basic dXNlcjpwYXNz")
    assert (
        'resource_metadata="https://api.example.com/.well-known/oauth-protected-resource/tools/mcp"'
        in info.value.www_authenticate
    )
    assert auth.describe() == {
        "provider": "remote",
        "required_scopes": ["mcp"],
        "authorization_servers": ["https://auth.example.com"],
        "routes": ["/.well-known/oauth-protected-resource/tools/mcp", "/.well-known/oauth-protected-resource"],
        "resource": "https://api.example.com/tools/mcp",
        "resource_metadata": "https://api.example.com/.well-known/oauth-protected-resource/tools/mcp",
    }


def test_static_tokens():
    auth = fastmcpauth.StaticTokenProvider(
        {"dev-token": {"client_id": "dev", "scopes": ["read"]}}, "http://localhost:8000"
    )
    assert auth.authenticate("Bearer dev-token").client_id == "dev"
    with pytest.raises(fastmcpauth.AuthChallenge):
        auth.authenticate("Bearer nope")
    # Without a base_url (as FastMCP's bare verifiers) it authenticates and advertises nothing.
    bare = fastmcpauth.StaticTokenProvider({"dev-token": {"client_id": "dev"}})
    assert bare.authenticate("Bearer dev-token").client_id == "dev"
    assert bare.describe()["routes"] == [] and "resource" not in bare.describe()
    with pytest.raises(fastmcpauth.AuthChallenge) as info:
        bare.authenticate(None)
    assert info.value.status == 401 and info.value.www_authenticate == "Bearer"


def test_auth_from_env(monkeypatch, authkit):
    monkeypatch.delenv("FASTMCP_SERVER_AUTH", raising=False)
    assert fastmcpauth.auth_from_env() is None
    monkeypatch.setenv("FASTMCP_SERVER_AUTH", "fastmcp.server.auth.providers.workos.AuthKitProvider")
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_AUTHKIT_DOMAIN", authkit.url)
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_BASE_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_AUTHKITPROVIDER_REQUIRED_SCOPES", '["openid","profile"]')
    auth = fastmcpauth.auth_from_env()
    assert auth.authenticate("Bearer " + authkit.token()).subject == "user_1"
    assert json.loads(auth.handle("GET", "/.well-known/oauth-protected-resource/mcp").body)["scopes_supported"] == [
        "openid",
        "profile",
    ]
    explicit = fastmcpauth.auth_from_env(required_scopes=["email"])
    with pytest.raises(fastmcpauth.AuthChallenge) as info:
        explicit.authenticate("Bearer " + authkit.token())
    assert info.value.status == 403
    monkeypatch.setenv("FASTMCP_SERVER_AUTH", "fastmcp.server.auth.providers.jwt.JWTVerifier")
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_JWT_JWKS_URI", authkit.url + "/oauth2/jwks")
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_JWT_BASE_URL", "http://127.0.0.1:8000")
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_JWT_LEEWAY", "soon")
    with pytest.raises(fastmcpauth.ConfigurationError) as info:
        fastmcpauth.auth_from_env()
    assert "FASTMCP_SERVER_AUTH_JWT_LEEWAY" in info.value.message
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_JWT_LEEWAY", "5")
    assert fastmcpauth.auth_from_env().authenticate("Bearer " + authkit.token()).subject == "user_1"


def test_introspection_provider():
    """RFC 7662 introspection against a real local endpoint that checks client credentials."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from urllib.parse import parse_qs

    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            seen.append(form["token"][0])
            ok = self.headers["Authorization"] == "Basic " + base64.b64encode(b"rs:secret").decode()
            active = ok and form["token"] == ["opaque-good"]
            body = json.dumps(
                {"active": True, "client_id": "c9", "scope": "read", "exp": int(time.time()) + 60}
                if active
                else {"active": False}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        auth = fastmcpauth.AuthProvider.from_config(
            {
                "provider": "introspection",
                "base_url": "http://127.0.0.1:8000",
                "required_scopes": ["read"],
                "introspection_url": f"http://127.0.0.1:{server.server_address[1]}/introspect",
                "client_id": "rs",
                "client_secret": "secret",
            }
        )
        assert auth.authenticate("Bearer opaque-good").client_id == "c9"
        assert auth.authenticate("Bearer opaque-good").scopes == ["read"]
        assert seen == ["opaque-good"]  # the second call was served from the cache
        with pytest.raises(fastmcpauth.AuthChallenge) as info:
            auth.authenticate("Bearer opaque-bad")
        assert info.value.status == 401
    finally:
        server.shutdown()
        server.server_close()


def test_proxy_providers_from_python():
    auth = fastmcpauth.WorkOSProvider(
        client_id="client_01",
        client_secret="sk_test",
        authkit_domain="https://demo.authkit.app",
        base_url="https://mcp.example.com/tools",
        required_scopes=["openid"],
    )
    description = auth.describe()
    assert description["provider"] == "workos" and description["authorization_servers"] == [
        "https://mcp.example.com/tools/"
    ]
    assert (
        "/tools/token" in description["routes"]
        and "/.well-known/oauth-authorization-server/tools" in description["routes"]
    )
    metadata = json.loads(auth.handle("GET", "/.well-known/oauth-authorization-server/tools").body)
    assert (
        metadata["issuer"] == "https://mcp.example.com/tools/"
        and metadata["token_endpoint"] == "https://mcp.example.com/tools/token"
    )
    registered = auth.handle(
        "POST",
        "/tools/register",
        {"Content-Type": "application/json"},
        json.dumps({"redirect_uris": ["http://localhost:3000/cb"]}).encode(),
        client_address="198.51.100.1",
    )
    assert registered.status == 201 and json.loads(registered.body)["token_endpoint_auth_method"] == "none"
    with pytest.raises(fastmcpauth.ConfigurationError) as info:
        fastmcpauth.OAuthProxy(
            upstream_authorization_endpoint="https://idp.example/authorize",
            upstream_token_endpoint="https://idp.example/token",
            upstream_client_id="c",
            base_url="https://mcp.example.com",
        )
    assert "secret" in str(info.value)
    with pytest.raises(fastmcpauth.ConfigurationError):
        fastmcpauth.OAuthProxy(
            upstream_authorization_endpoint="http://idp.example/authorize",
            upstream_token_endpoint="https://idp.example/token",
            upstream_client_id="c",
            upstream_client_secret="s",
            base_url="https://mcp.example.com",
        )


def test_workos_proxy_from_the_fastmcp_environment(monkeypatch):
    for name in [n for n in list(__import__("os").environ) if n.startswith("FASTMCP_SERVER_AUTH")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("FASTMCP_SERVER_AUTH", "fastmcp.server.auth.providers.workos.WorkOSProvider")
    for name, value in {
        "CLIENT_ID": "client_01",
        "CLIENT_SECRET": "sk_test",
        "AUTHKIT_DOMAIN": "https://demo.authkit.app",
        "BASE_URL": "https://mcp.example.com",
        "ISSUER_URL": "https://mcp.example.com/",
        "REDIRECT_PATH": "/oauth/back",
        "REQUIRED_SCOPES": "openid,profile",
        "TIMEOUT_SECONDS": "5",
        "JWT_SIGNING_KEY": "a-signing-key-of-32-characters!!",
        "ALLOWED_CLIENT_REDIRECT_URIS": '["http://localhost:*"]',
        "STORAGE": "memory://",
    }.items():
        monkeypatch.setenv("FASTMCP_SERVER_AUTH_WORKOS_" + name, value)
    auth = fastmcpauth.auth_from_env()
    description = auth.describe()
    assert description["provider"] == "workos" and description["required_scopes"] == ["openid", "profile"]
    assert "/oauth/back" in description["routes"]
    allowed = auth.handle("POST", "/register", {}, json.dumps({"redirect_uris": ["http://localhost:1234/cb"]}).encode())
    refused = auth.handle("POST", "/register", {}, json.dumps({"redirect_uris": ["https://app.example/cb"]}).encode())
    assert allowed.status == 201 and refused.status == 400
    # A signing key under 16 characters is refused.
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_WORKOS_JWT_SIGNING_KEY", "short-key")
    with pytest.raises(fastmcpauth.FastMCPAuthError) as info:
        fastmcpauth.auth_from_env()
    assert info.value.code == "weak_key"
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_WORKOS_JWT_SIGNING_KEY", "a-signing-key-of-32-characters!!")
    # Test-only settings never come from the environment.
    for name in ("PBKDF2_ITERATIONS", "CIMD_TEST_ALLOW_LOOPBACK", "TESTING"):
        monkeypatch.setenv("FASTMCP_SERVER_AUTH_WORKOS_" + name, "10" if name == "PBKDF2_ITERATIONS" else "true")
        with pytest.raises(fastmcpauth.ConfigurationError) as info:
            fastmcpauth.auth_from_env()
        assert info.value.code == "invalid_config" and "FASTMCP_SERVER_AUTH_WORKOS_" + name in str(info.value)
        monkeypatch.delenv("FASTMCP_SERVER_AUTH_WORKOS_" + name)
    monkeypatch.setenv("FASTMCP_SERVER_AUTH_WORKOS_TIMEOUT_SECONDS", "soon")
    with pytest.raises(fastmcpauth.ConfigurationError) as info:
        fastmcpauth.auth_from_env()
    assert "FASTMCP_SERVER_AUTH_WORKOS_TIMEOUT_SECONDS" in str(info.value)
