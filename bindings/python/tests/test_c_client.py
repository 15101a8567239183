"""The OAuth client from C, end to end (issue 12): bindings/c/oauth_token.c, compiled here with gcc
against the built library exactly as a user's program is, gets tokens through fma_oauth_client_*
alone — a browser sign-in against fastmcpauth-host's `make run` default (the $BROWSER program
follows the consent and sign-in forms), the cache in a second process, a 401 handed back with
fma_oauth_client_challenge, and client_credentials with client_secret_basic, client_secret_post and
private_key_jwt against the authlib authorization server. Every token is checked by the server
that must accept it."""

import json
import os
import subprocess
import sys

import httpx2
import pytest
from authlib_server import AuthlibServer, Client
from conftest import REPO
from embedded_host import embedded_host, post_tools_list
from fastmcpauth import Fernet
from joserfc.jwk import RSAKey

HERE = os.path.dirname(os.path.abspath(__file__))
RELEASE = REPO / ".build" / "release"
BROWSER = f"{sys.executable} {os.path.join(HERE, 'headless_browser.py')}"
# fastmcpauth.h: FMA_E_AUTHORIZATION_DENIED, FMA_E_BROWSER_UNAVAILABLE (the program's exit codes).
AUTHORIZATION_DENIED, BROWSER_UNAVAILABLE = 41, 45
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "c-svc-1"}, private=True)


@pytest.fixture(scope="module")
def program(tmp_path_factory):
    """oauth_token.c built with the flags of bindings/c/run-tests.sh."""
    binary = tmp_path_factory.mktemp("c") / "oauth_token"
    subprocess.run(
        [
            "gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(REPO / "include"),
            "-o", str(binary), str(REPO / "bindings" / "c" / "oauth_token.c"),
            "-L", str(RELEASE), "-lfastmcpauth", f"-Wl,-rpath,{RELEASE}",
        ],
        check=True,
    )  # fmt: skip
    return binary


def run(program, config, *challenges, cache, browser="false", log=None, check=True):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BROWSER", "HEADLESS_BROWSER"))}
    env.update(XDG_CACHE_HOME=str(cache), BROWSER=browser, HEADLESS_BROWSER_USER="c-user")
    if log is not None:
        env["HEADLESS_BROWSER_LOG"] = str(log)
    result = subprocess.run(
        [str(program), json.dumps(config), *challenges], env=env, capture_output=True, text=True, timeout=60
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def host():
    with embedded_host() as base:
        yield base


def tools_list(url, token):
    return post_tools_list(url, token).status_code


def test_sign_in_cache_and_challenge_from_c(program, host, tmp_path):
    url = host + "/mcp"
    config = {"server_url": url, "client_name": "a C client"}
    cache, log = tmp_path / "cache", tmp_path / "browser.log"
    first = run(program, config, cache=cache, browser=BROWSER, log=log).stdout.strip()
    assert len(log.read_text().splitlines()) == 1 and tools_list(url, first) == 200
    # A second process: the cached token, and a browser that fails must not be needed.
    assert run(program, config, cache=cache).stdout.strip() == first
    # The server's 401 handed back: the next token is a refreshed one, still without the browser.
    challenge = (
        'Bearer error="invalid_token", resource_metadata="' + host + '/.well-known/oauth-protected-resource/mcp"'
    )
    cached, refreshed = run(program, config, "401", challenge, cache=cache).stdout.split()
    assert cached == first and refreshed != first and tools_list(url, refreshed) == 200
    assert len(log.read_text().splitlines()) == 1
    # No cache and no browser: the C caller gets the status and a message, no token.
    failed = run(program, config, cache=tmp_path / "empty", check=False)
    assert failed.returncode == BROWSER_UNAVAILABLE and failed.stdout == ""
    assert failed.stderr.startswith(f"error: {BROWSER_UNAVAILABLE} ")


@pytest.fixture
def authlib():
    with AuthlibServer(
        [
            Client("c-basic", "client_secret_basic", secret="c:basic/secret"),
            Client("c-post", "client_secret_post", secret="c-post-secret"),
            Client("c-jwt", "private_key_jwt", public_jwk=RSA_KEY.as_dict(private=False)),
        ]
    ) as running:
        yield running


@pytest.mark.parametrize(
    "client_id,extra,method",
    [
        ("c-basic", {"client_secret": "c:basic/secret"}, "client_secret_basic"),
        (
            "c-post",
            {"client_secret": "c-post-secret", "token_endpoint_auth_method": "client_secret_post"},
            "client_secret_post",
        ),
        ("c-jwt", {"private_key": RSA_KEY.as_dict(private=True)}, "private_key_jwt"),
    ],
)
def test_client_credentials_from_c(program, authlib, tmp_path, client_id, extra, method):
    config = {
        "server_url": authlib.resource,
        "grant": "client_credentials",
        "client_id": client_id,
        "client_issuer": authlib.issuer,
        "scopes": ["mcp:read"],
        "storage": f"sqlite:///{tmp_path}/tokens.db",
        "encryption_keys": [Fernet.generate_key().decode()],
        **extra,
    }
    token = run(program, config, cache=tmp_path).stdout.strip()
    answer = httpx2.get(authlib.resource, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.json() == {"client_id": client_id, "scope": "mcp:read"}
    # A second process reads the encrypted cache: no second token request.
    assert run(program, config, cache=tmp_path).stdout.strip() == token
    assert [r["auth_method"] for r in authlib.token_requests] == [method]
    # The resource's 401 handed back: a new token by the same method.
    challenge = httpx2.get(authlib.resource).headers["WWW-Authenticate"]
    assert "resource_metadata=" in challenge
    again = run(program, config, "401", challenge, cache=tmp_path).stdout.split()
    assert again[0] == token and again[1] != token
    assert [r["auth_method"] for r in authlib.token_requests] == [method, method]
    # A wrong credential: the status code on exit, the message on stderr, and no secret in it.
    wrong = dict(config, storage="memory://")
    if "client_secret" in extra:
        wrong["client_secret"] = "not-the-secret"
    else:
        wrong["private_key"] = RSAKey.generate_key(2048, private=True).as_dict(private=True)
    refused = run(program, wrong, cache=tmp_path, check=False)
    assert refused.returncode == AUTHORIZATION_DENIED and refused.stdout == ""
    assert "invalid_client" in refused.stderr and "not-the-secret" not in refused.stderr
