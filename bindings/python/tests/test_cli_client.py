"""`fastmcpauth login/token/logout/call`, run as a user runs them, against fastmcpauth-host in its
`make run` default (the OAuth proxy in front of the embedded development identity provider), with
a headless `$BROWSER` that follows the consent and sign-in forms."""

import hashlib
import json
import os
import subprocess
import sys

import httpx2
import pytest
from conftest import REPO
from embedded_host import embedded_host, post_tools_list
from fastmcpauth import open_store

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = REPO / ".build" / "release" / "fastmcpauth-cli"
BROWSER = f"{sys.executable} {os.path.join(HERE, 'headless_browser.py')}"


@pytest.fixture(scope="module")
def host():
    with embedded_host() as base:
        yield base


def cli(*args, cache, browser=BROWSER, log=None, check=True, extra_env=None, timeout=60):
    env = {k: v for k, v in os.environ.items() if k not in ("BROWSER", "FASTMCPAUTH_CLIENT_SECRET")}
    env.update(XDG_CACHE_HOME=str(cache), HEADLESS_BROWSER_USER="dev-user", **(extra_env or {}))
    if browser is not None:
        env["BROWSER"] = browser
    if log is not None:
        env["HEADLESS_BROWSER_LOG"] = str(log)
    result = subprocess.run([str(CLI), *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def openings(log):
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_login_token_call_logout(host, tmp_path):
    url = host + "/mcp"
    cache, log = tmp_path / "cache", tmp_path / "browser.log"
    login = cli("login", url, cache=cache, log=log)
    assert openings(log) == 1 and "Signed in" in login.stderr and login.stdout == ""
    # The cache is private: the directory 0700, the database and its key 0600.
    assert (cache / "fastmcpauth").stat().st_mode & 0o777 == 0o700
    for name in ("tokens.db", "key"):
        assert (cache / "fastmcpauth" / name).stat().st_mode & 0o777 == 0o600
    # A new process: the cached token, no browser (a browser that fails would make this fail).
    token = cli("token", url, cache=cache, browser="false").stdout.strip()
    assert token.count(".") == 2 and openings(log) == 1
    assert token not in (cache / "fastmcpauth" / "tokens.db").read_bytes().decode("latin-1")
    # The curl form of the README: the server accepts the printed token.
    assert post_tools_list(url, token).status_code == 200
    # One tool call through swift-sdk's client with our authorizer; the result is JSON.
    called = cli("call", url, "whoami", cache=cache, browser="false")
    result = json.loads(called.stdout)
    assert result["isError"] is False
    identity = json.loads(result["content"][0]["text"])
    assert identity["subject"] == "dev-user" and identity["scopes"] == ["mcp"]
    # Signed out: the next token needs the browser again; a failing browser is browser_unavailable.
    cli("logout", url, cache=cache)
    failed = cli("token", url, cache=cache, browser="false", check=False)
    assert failed.returncode != 0 and "browser_unavailable" in failed.stderr and failed.stdout == ""
    assert cli("token", url, cache=cache, log=log).stdout.strip() != token and openings(log) == 2


def test_revoked_tokens_recover_by_refresh_then_by_signing_in_again(host, tmp_path):
    url = host + "/mcp"
    key = subprocess.run([str(CLI), "fernet", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    store_url = f"sqlite:///{tmp_path}/tokens.db"
    env = {"FASTMCPAUTH_ENCRYPTION_KEYS": key}
    cache, log = tmp_path / "cache", tmp_path / "browser.log"
    first = cli("token", url, "--store", store_url, cache=cache, log=log, extra_env=env).stdout.strip()
    called = cli("call", url, "whoami", "--store", store_url, cache=cache, browser="false", extra_env=env)
    client_id = json.loads(json.loads(called.stdout)["content"][0]["text"])["client_id"]
    # The access token revoked (RFC 7009, as the registered public client): the server answers 401
    # to it, and the next call recovers with the refresh token, without the browser.
    assert httpx2.post(host + "/revoke", data={"token": first, "client_id": client_id}).status_code == 200
    assert post_tools_list(url, first).status_code == 401
    called = cli("call", url, "whoami", "--store", store_url, cache=cache, browser="false", extra_env=env)
    assert json.loads(called.stdout)["isError"] is False and openings(log) == 1
    # The refresh token revoked too (read from the encrypted cache): the refresh is refused and the
    # next call signs in again, once.
    with open_store(store_url, encryption_keys=[key]) as store:
        record = store.get("fastmcpauth-client-tokens", hashlib.sha256(url.encode()).hexdigest())
    assert record["access_token"] != first
    for token in (record["refresh_token"], record["access_token"]):
        assert httpx2.post(host + "/revoke", data={"token": token, "client_id": client_id}).status_code == 200
    called = cli("call", url, "whoami", "--store", store_url, cache=cache, log=log, extra_env=env)
    assert json.loads(called.stdout)["isError"] is False and openings(log) == 2
    renewed = cli("token", url, "--store", store_url, cache=cache, browser="false", extra_env=env).stdout.strip()
    assert renewed not in (first, record["access_token"]) and post_tools_list(url, renewed).status_code == 200


def test_denied_and_no_browser_and_bad_arguments(host, tmp_path):
    url = host + "/mcp"
    cache = tmp_path / "cache"
    denied = cli("token", url, cache=cache, check=False, extra_env={"HEADLESS_BROWSER_DENY": "1"})
    assert denied.returncode != 0 and "authorization_denied" in denied.stderr
    # `call` too: it signs in before connecting, so the refusal keeps its code after one prompt.
    log = tmp_path / "browser.log"
    denied = cli("call", url, "whoami", cache=cache, log=log, check=False, extra_env={"HEADLESS_BROWSER_DENY": "1"})
    assert denied.returncode != 0 and denied.stdout == "" and openings(log) == 1
    assert denied.stderr.startswith("error: authorization_denied:")
    # --no-browser without a terminal: at once, not after the sign-in timeout.
    headless = cli("login", url, "--no-browser", cache=cache, browser=None, check=False, timeout=20)
    assert headless.returncode != 0 and "browser_unavailable" in headless.stderr
    bad = cli("call", url, "whoami", "[1]", cache=cache, check=False)
    assert bad.returncode != 0 and "invalid_argument" in bad.stderr
    insecure = cli("token", "http://mcp.example.com/mcp", cache=cache, check=False)
    assert insecure.returncode != 0 and "invalid_config" in insecure.stderr
    # --store needs its Fernet keys (tokens are never kept in plaintext), and never on the command line.
    store = cli("token", url, "--store", f"sqlite:///{tmp_path}/t.db", cache=cache, check=False)
    assert store.returncode != 0 and "FASTMCPAUTH_ENCRYPTION_KEYS" in store.stderr


def test_store_option_and_client_secret_stays_out_of_errors(host, tmp_path):
    url = host + "/mcp"
    key = subprocess.run([str(CLI), "fernet", "genkey"], capture_output=True, text=True, check=True).stdout.strip()
    store = f"sqlite:///{tmp_path}/shared.db"
    env = {"FASTMCPAUTH_ENCRYPTION_KEYS": key}
    cache, log = tmp_path / "cache", tmp_path / "browser.log"
    token = cli("token", url, "--store", store, cache=cache, log=log, extra_env=env).stdout.strip()
    again = cli("token", url, "--store", store, cache=cache, browser="false", extra_env=env).stdout.strip()
    assert token == again and openings(log) == 1
    assert not (cache / "fastmcpauth").exists()
    # A secret without the issuer it belongs to is refused, and the secret is not echoed.
    secret = "s3cr3t-value-that-must-not-leak"
    refused = cli(
        "token", url, "--client-id", "c", cache=cache, check=False, extra_env={"FASTMCPAUTH_CLIENT_SECRET": secret}
    )
    assert refused.returncode != 0 and "client_issuer" in refused.stderr and secret not in refused.stderr
