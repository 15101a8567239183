"""The fastmcpauth CLI, run as a user runs it."""

import json
import os
import subprocess

from conftest import REPO
from cryptography.fernet import Fernet as CryptoFernet

CLI = REPO / ".build" / "release" / "fastmcpauth-cli"


def run(*args, stdin=None, env=None, check=True):
    result = subprocess.run([str(CLI), *args], input=stdin, capture_output=True, env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, result.stderr.decode()
    return result


def test_keygen_sign_verify_and_rejection(tmp_path):
    key = json.loads(run("keygen", "--alg", "EdDSA").stdout)
    (tmp_path / "key.json").write_text(json.dumps(key))
    public = {k: v for k, v in key.items() if k != "d"}
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [public]}))
    token = (
        run(
            "sign", "--key", str(tmp_path / "key.json"), "--claims", '{"sub":"alice","aud":"mcp"}', "--expires-in", "60"
        )
        .stdout.decode()
        .strip()
    )
    claims = json.loads(
        run("verify", token, "--jwks", str(tmp_path / "jwks.json"), "--alg", "EdDSA", "--audience", "mcp").stdout
    )
    assert claims["sub"] == "alice"
    bad = run(
        "verify", token, "--jwks", str(tmp_path / "jwks.json"), "--alg", "EdDSA", "--audience", "other", check=False
    )
    assert bad.returncode != 0 and bad.stderr.decode().startswith("error: invalid_audience: ")
    assert token.split(".")[2] not in bad.stderr.decode()


def test_fernet_commands_interoperate_with_cryptography(tmp_path):
    key = run("fernet", "genkey").stdout.strip()
    (tmp_path / "keys").write_text(key.decode() + "\n")
    token = run("fernet", "encrypt", "--key-file", str(tmp_path / "keys"), stdin=b"secret \xe2\x98\x83").stdout.strip()
    assert CryptoFernet(key).decrypt(token) == "secret ☃".encode()
    theirs = CryptoFernet(key).encrypt(b"from python")
    assert (
        run("fernet", "decrypt", theirs.decode(), env={"FASTMCPAUTH_ENCRYPTION_KEYS": key.decode()}).stdout
        == b"from python"
    )
    wrong = run(
        "fernet",
        "decrypt",
        theirs.decode(),
        env={"FASTMCPAUTH_ENCRYPTION_KEYS": CryptoFernet.generate_key().decode()},
        check=False,
    )
    assert wrong.returncode != 0 and b"bad_signature" in wrong.stderr


def test_store_commands(tmp_path):
    key = CryptoFernet.generate_key().decode()
    url = f"sqlite:///{tmp_path}/cli.db"
    env = {"FASTMCPAUTH_ENCRYPTION_KEYS": key}
    run("store", "put", "--url", url, "clients", "c1", '{"client_id":"c1"}', "--ttl", "60", env=env)
    assert json.loads(run("store", "get", "--url", url, "clients", "c1", env=env).stdout) == {"client_id": "c1"}
    assert run("store", "keys", "--url", url, "clients", env=env).stdout.decode().split() == ["c1"]
    assert b"undecryptable_value" in run("store", "get", "--url", url, "clients", "c1", check=False).stderr
    run("store", "del", "--url", url, "clients", "c1", env=env)
    assert run("store", "get", "--url", url, "clients", "c1", env=env, check=False).returncode != 0
