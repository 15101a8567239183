"""Machine to machine (issue 12): fastmcpauth.OAuthClient with grant="client_credentials" against a
test authorization server built on authlib (ClientCredentialsGrant; JWTBearerClientAssertion as
private_key_jwt), each client authentication method getting a token the protected resource
accepts, and what the server received checked from its own records."""

import base64
import json
import os
import subprocess
import urllib.error
import urllib.request

import pytest
from authlib_server import AuthlibServer, Client
from conftest import REPO
from fastmcpauth import ConfigurationError, Fernet, OAuthClient, OAuthClientError
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import ECKey, RSAKey
from json_server import LoopbackServer, QuietHandler

CLI = REPO / ".build" / "release" / "fastmcpauth-cli"
BASIC_SECRET = "b4sic:s3cret/+%"
POST_SECRET = "p0st-s3cret"
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "svc-rsa-1"}, private=True)
EC_KEY = ECKey.generate_key("P-256", private=True)


@pytest.fixture
def server():
    with AuthlibServer(
        [
            Client("basic-svc", "client_secret_basic", secret=BASIC_SECRET),
            Client("post-svc", "client_secret_post", secret=POST_SECRET),
            Client("jwt-svc", "private_key_jwt", public_jwk=RSA_KEY.as_dict(private=False)),
            Client("ec-svc", "private_key_jwt", public_jwk=EC_KEY.as_dict(private=False)),
        ]
    ) as running:
        yield running


def client(server, client_id, **extra):
    """A client_credentials OAuthClient for the server's /mcp with a private in-memory cache."""
    return OAuthClient(
        server.resource,
        client_id=client_id,
        client_issuer=server.issuer,
        scopes=["mcp:read"],
        storage="memory://",
        encryption_keys=[Fernet.generate_key()],
        timeout=5,
        grant="client_credentials",
        **extra,
    )


def call_resource(server, token=None):
    request = urllib.request.Request(server.resource)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read()), None
    except urllib.error.HTTPError as error:
        return error.code, None, error.headers.get("WWW-Authenticate")


def test_the_resource_refuses_without_a_token(server):
    status, _, challenge = call_resource(server)
    assert status == 401 and "resource_metadata=" in challenge


def test_client_secret_basic(server):
    with client(server, "basic-svc", client_secret=BASIC_SECRET) as oauth:
        token = oauth.token()
        assert call_resource(server, token)[:2] == (200, {"client_id": "basic-svc", "scope": "mcp:read"})
        assert oauth.token() == token  # cached: no second request
    (sent,) = server.token_requests
    assert sent["auth_method"] == "client_secret_basic"
    assert sent["authorization"].startswith("Basic ")
    assert "client_secret" not in sent["form"] and "client_id" not in sent["form"]
    # RFC 6749 §2.3.1: the id and the secret each form-urlencoded inside the Basic credentials.
    decoded = base64.b64decode(sent["authorization"][len("Basic ") :]).decode()
    assert decoded == "basic-svc:b4sic%3As3cret%2F%2B%25"
    assert sent["form"]["grant_type"] == "client_credentials"
    assert sent["form"]["scope"] == "mcp:read" and sent["form"]["resource"] == server.resource


def test_client_secret_post(server):
    with client(
        server, "post-svc", client_secret=POST_SECRET, token_endpoint_auth_method="client_secret_post"
    ) as oauth:
        token = oauth.token()
        assert call_resource(server, token)[0] == 200
    (sent,) = server.token_requests
    assert sent["auth_method"] == "client_secret_post"
    assert sent["authorization"] is None
    assert sent["form"]["client_id"] == "post-svc" and sent["form"]["client_secret"] == POST_SECRET


def test_private_key_jwt(server):
    with client(server, "jwt-svc", private_key=RSA_KEY.as_dict(private=True)) as oauth:
        first = oauth.token()
        assert call_resource(server, first)[0] == 200
        # The resource refuses the token (as after a revocation): the challenge brings a new one.
        status, _, challenge = call_resource(server, "revoked")
        assert status == 401
        oauth.challenge(401, challenge)
        second = oauth.token()
        assert second != first and call_resource(server, second)[0] == 200
    sent = server.token_requests
    assert [r["auth_method"] for r in sent] == ["private_key_jwt", "private_key_jwt"]
    assert all(r["authorization"] is None and "client_secret" not in r["form"] for r in sent)
    for record in sent:
        form = record["form"]
        assert form["client_assertion_type"] == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        claims, header = record["assertion_claims"], record["assertion_header"]
        assert header == {"alg": "RS256", "kid": "svc-rsa-1", "typ": "JWT"}
        assert claims["aud"] == server.issuer
        assert claims["iss"] == claims["sub"] == "jwt-svc"
        assert 0 < claims["exp"] - claims["iat"] <= 300
        # An external check of the signature and the claims (joserfc, with the public key only).
        verified = joserfc_jwt.decode(form["client_assertion"], RSAKey.import_key(RSA_KEY.as_dict(private=False)))
        assert verified.claims == claims
    assert sent[0]["assertion_claims"]["jti"] != sent[1]["assertion_claims"]["jti"]


def test_private_key_jwt_with_an_ec_key_given_as_json_text(server):
    with client(server, "ec-svc", private_key=json.dumps(EC_KEY.as_dict(private=True))) as oauth:
        assert call_resource(server, oauth.token())[0] == 200
    (sent,) = server.token_requests
    assert sent["assertion_header"]["alg"] == "ES256" and "kid" not in sent["assertion_header"]


def test_a_wrong_secret_is_authorization_denied(server):
    with client(
        server, "post-svc", client_secret="wrong-guess", token_endpoint_auth_method="client_secret_post"
    ) as oauth:
        with pytest.raises(OAuthClientError) as raised:
            oauth.token()
    assert raised.value.code == "authorization_denied"
    assert "invalid_client" in raised.value.message and "wrong-guess" not in str(raised.value)
    assert len(server.token_requests) == 1


def test_a_method_the_server_does_not_list_is_refused_before_the_secret_is_sent(server):
    server.auth_methods = ["private_key_jwt"]
    with client(server, "basic-svc", client_secret=BASIC_SECRET) as oauth:
        with pytest.raises(OAuthClientError) as raised:
            oauth.token()
    assert raised.value.code == "discovery_failed"
    assert "client_secret_basic" in raised.value.message and BASIC_SECRET not in str(raised.value)
    assert server.token_requests == []


def test_inconsistent_configurations_are_refused(server):
    public = RSA_KEY.as_dict(private=False)
    for extra in (
        {"private_key": public},
        {"client_secret": "s", "private_key": RSA_KEY.as_dict(private=True)},
        {"token_endpoint_auth_method": "client_secret_post", "private_key": RSA_KEY.as_dict(private=True)},
        {"token_endpoint_auth_method": "private_key_jwt", "client_secret": "s"},
        {"token_endpoint_auth_method": "tls_client_auth", "client_secret": "s"},
        {},
    ):
        with pytest.raises(ConfigurationError) as raised:
            client(server, "jwt-svc", **extra)
        assert raised.value.code == "invalid_config"
        assert RSA_KEY.as_dict(private=True)["d"][:16] not in raised.value.message


def test_the_cli_with_each_method(server, tmp_path):
    """`fastmcpauth token --grant client_credentials`: the secret from a file or the environment,
    the key from a JWK file; each token works on the resource, and a second process reads the cache."""
    secret_file, key_file = tmp_path / "secret", tmp_path / "key.json"
    secret_file.write_text(BASIC_SECRET + "\n")
    key_file.write_text(json.dumps(RSA_KEY.as_dict(private=True)))
    for name in (secret_file, key_file):
        name.chmod(0o600)
    common = ["--client-issuer", server.issuer, "--grant", "client_credentials", "--scope", "mcp:read"]
    runs = [
        (["--client-id", "basic-svc", "--client-secret-file", str(secret_file)], {}, "client_secret_basic"),
        (
            ["--client-id", "post-svc", "--auth-method", "client_secret_post"],
            {"FASTMCPAUTH_CLIENT_SECRET": POST_SECRET},
            "client_secret_post",
        ),
        (["--client-id", "jwt-svc", "--private-key", str(key_file)], {}, "private_key_jwt"),
    ]
    for index, (args, env, method) in enumerate(runs):
        cache = tmp_path / f"cache-{index}"
        first = cli("token", server.resource, *common, *args, cache=cache, env=env)
        assert first.returncode == 0, first.stderr
        token = first.stdout.strip()
        assert call_resource(server, token)[0] == 200
        again = cli("token", server.resource, *common, *args, cache=cache, env=env)
        assert again.stdout.strip() == token
        assert server.token_requests[-1]["auth_method"] == method
        assert BASIC_SECRET not in first.stderr + again.stderr and POST_SECRET not in first.stderr
        assert "warning" not in first.stderr  # the secret and key files are 0600
    assert len(server.token_requests) == len(runs)
    # logout with the service's options forgets its tokens: the next token is a new request.
    basic_args, _, _ = runs[0]
    signed_out = cli("logout", server.resource, *common, *basic_args, cache=tmp_path / "cache-0", env={})
    assert signed_out.returncode == 0 and "Signed out" in signed_out.stderr
    renewed = cli("token", server.resource, *common, *basic_args, cache=tmp_path / "cache-0", env={})
    assert renewed.returncode == 0 and call_resource(server, renewed.stdout.strip())[0] == 200
    assert len(server.token_requests) == len(runs) + 1
    runs.append(runs[0])
    # A secret file others may read still works, with a warning that names the file, not the secret.
    secret_file.chmod(0o644)
    loose = cli("token", server.resource, *common, *basic_args, cache=tmp_path / "cache-0", env={})
    assert loose.returncode == 0 and call_resource(server, loose.stdout.strip())[0] == 200
    assert f"warning: {secret_file} holds a secret and is readable by others (mode 644)" in loose.stderr
    assert BASIC_SECRET not in loose.stderr
    # A wrong secret: authorization_denied on stderr, nothing on stdout, the secret nowhere.
    wrong = cli(
        "token", server.resource, *common, "--client-id", "basic-svc", cache=tmp_path / "wrong",
        env={"FASTMCPAUTH_CLIENT_SECRET": "wrong-guess"},
    )  # fmt: skip
    assert wrong.returncode != 0 and wrong.stdout == ""
    assert "authorization_denied" in wrong.stderr and "wrong-guess" not in wrong.stderr
    # A key file that holds no JWK is refused before anything is sent.
    secret_file.write_text("not a key")
    bad = cli("token", server.resource, *common, "--client-id", "jwt-svc", "--private-key", str(secret_file),
              cache=tmp_path / "bad", env={})  # fmt: skip
    assert bad.returncode != 0 and "does not hold a JSON Web Key" in bad.stderr
    assert len(server.token_requests) == len(runs) + 1


def test_cli_call_never_follows_a_redirect_to_another_origin_with_the_token(server, tmp_path):
    """`fastmcpauth call` (swift-sdk's transport): the server answers the authorized request with a
    307 to another loopback port; the call fails naming that origin and the other port receives
    nothing, neither the token nor the request."""
    received = []

    class Collector(QuietHandler):
        def do_POST(self):
            received.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST

    collector = LoopbackServer(Collector)
    try:
        server.redirect_mcp_to = collector.url + "/collect"
        common = ["--client-issuer", server.issuer, "--grant", "client_credentials", "--scope", "mcp:read"]
        result = cli(
            "call", server.resource, "whoami", *common, "--client-id", "post-svc", "--auth-method",
            "client_secret_post", cache=tmp_path / "cache", env={"FASTMCPAUTH_CLIENT_SECRET": POST_SECRET},
        )  # fmt: skip
        assert result.returncode != 0 and result.stdout == ""
        assert "another origin" in result.stderr and collector.url.removeprefix("http://") in result.stderr
        assert received == []
        # The token was issued and sent to the server itself, and is not in the message.
        issued = list(server.tokens)
        assert len(server.token_requests) == 1 and len(issued) == 1
        assert issued[0] not in result.stderr and POST_SECRET not in result.stderr
    finally:
        collector.close()


def cli(*args, cache, env):
    environment = {k: v for k, v in os.environ.items() if k not in ("BROWSER", "FASTMCPAUTH_CLIENT_SECRET")}
    environment.update(XDG_CACHE_HOME=str(cache), BROWSER="false", **env)
    return subprocess.run([str(CLI), *args], env=environment, capture_output=True, text=True, timeout=60)
