"""An OpenSSL with no default provider (only `base`): every cryptographic call is an error, never an abort.

The library fetches its algorithms from OpenSSL; without the default provider those fetches fail.
Each operation must then raise, in a process that goes on running.
"""

import json
import os
import subprocess
import sys
import textwrap

import fastmcpauth

OPENSSL_BASE_ONLY = """\
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
base = base_sect

[base_sect]
activate = 1
"""

CHILD = textwrap.dedent(
    """
    import json, sys
    import fastmcpauth

    given = json.loads(sys.argv[1])
    results = {}

    def attempt(name, call):
        try:
            call()
            results[name] = "ok"
        except fastmcpauth.FastMCPAuthError as error:
            results[name] = type(error).__name__ + ":" + str(getattr(error, "code", ""))

    attempt("generate_key", lambda: fastmcpauth.generate_key("ES256"))
    attempt("fernet_encrypt", lambda: fastmcpauth.Fernet(given["fernet_key"]).encrypt(b"x"))
    attempt("fernet_decrypt", lambda: fastmcpauth.Fernet(given["fernet_key"]).decrypt(given["fernet_token"]))
    for alg in ("RS256", "ES256", "HS256"):
        # Loading the key may already fail (no decoder for it): that is an error too.
        attempt(
            "verify_" + alg,
            lambda: fastmcpauth.JWTVerifier(jwks={"keys": [given["jwks"][alg]]}, algorithms=[alg]).verify(
                given["tokens"][alg]
            ),
        )
    attempt("sign_RS256", lambda: fastmcpauth.sign_jwt({"sub": "a"}, given["private"]["RS256"], "RS256"))
    print(json.dumps(results))
    """
)


def _material():
    """Keys and tokens made with a fully working OpenSSL, in this process."""
    tokens, jwks, private = {}, {}, {}
    for alg in ("RS256", "ES256"):
        key = fastmcpauth.generate_key(alg)
        private[alg] = key
        jwks[alg] = fastmcpauth.public_jwk(key)
        tokens[alg] = fastmcpauth.sign_jwt({"sub": "alice", "exp": 4_000_000_000}, key, alg)
    secret = fastmcpauth.generate_key("HS256")
    jwks["HS256"] = secret
    tokens["HS256"] = fastmcpauth.sign_jwt({"sub": "alice", "exp": 4_000_000_000}, secret, "HS256")
    fernet_key = fastmcpauth.Fernet.generate_key().decode()
    fernet_token = fastmcpauth.Fernet(fernet_key).encrypt(b"payload").decode()
    return {"tokens": tokens, "jwks": jwks, "private": private, "fernet_key": fernet_key, "fernet_token": fernet_token}


def _run_child(material, env):
    return subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(material)], env=env, capture_output=True, text=True, timeout=60
    )


def test_without_the_default_provider_every_call_raises_and_the_process_lives(tmp_path):
    material = _material()
    # Control: the same child with the normal configuration succeeds everywhere, so the
    # failures below come from the provider configuration and nothing else.
    normal = _run_child(material, dict(os.environ))
    assert normal.returncode == 0, normal.stderr
    assert set(json.loads(normal.stdout).values()) == {"ok"}

    conf = tmp_path / "openssl-base-only.cnf"
    conf.write_text(OPENSSL_BASE_ONLY)
    child = _run_child(material, {**os.environ, "OPENSSL_CONF": str(conf)})
    assert child.returncode == 0, f"the process died (rc {child.returncode}): {child.stderr[-2000:]}"
    results = json.loads(child.stdout)
    assert len(results) == 7
    for name, outcome in results.items():
        assert outcome != "ok", f"{name} succeeded without the default provider"
        assert outcome.split(":")[1] in {"internal_error", "invalid_config", "invalid_key"}, (name, outcome)
    # Nothing secret reaches an error message.
    for secret in (material["fernet_key"], material["tokens"]["HS256"], material["jwks"]["HS256"]["k"]):
        assert secret not in child.stdout and secret not in child.stderr
