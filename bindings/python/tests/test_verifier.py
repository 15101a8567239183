"""The Python API of JWTVerifier, keys and signing, against real peers (cryptography, http.server)."""

import datetime
import json
import time
from concurrent.futures import ThreadPoolExecutor

import fastmcpauth
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID
from fastmcpauth import ConfigurationError, InvalidKey, InvalidToken
from json_server import JSONServer


def future(seconds=300):
    return int(time.time()) + seconds


@pytest.fixture(scope="module")
def es_key():
    return fastmcpauth.generate_key("ES256")


@pytest.fixture(scope="module")
def verifier(es_key):
    return fastmcpauth.JWTVerifier(
        jwks={"keys": [fastmcpauth.public_jwk(es_key)]},
        algorithms=["ES256"],
        issuer="https://idp.example",
        audience=["mcp", "other"],
        required_scopes=["read"],
    )


def sign(key, **claims):
    base = {"sub": "alice", "iss": "https://idp.example", "aud": "mcp", "exp": future(), "scope": "read"}
    base.update(claims)
    return fastmcpauth.sign_jwt({k: v for k, v in base.items() if v is not None}, key, key["alg"])


def test_access_token_fields(verifier, es_key):
    token = sign(es_key, client_id="cid", scope="read write", tenant="t1")
    access = verifier.verify(token)
    assert access == fastmcpauth.AccessToken(
        token=token,
        client_id="cid",
        scopes=["read", "write"],
        expires_at=access.claims["exp"],
        subject="alice",
        claims=access.claims,
    )
    assert access.claims["tenant"] == "t1"
    assert verifier.verify(sign(es_key, azp="azp-client")).client_id == "azp-client"


# The times are computed when pytest collects the module, minutes before a late test runs in a
# slow suite: "not yet valid" is a day ahead so that it still is.
@pytest.mark.parametrize(
    "claims,code",
    [
        ({"exp": future(-1)}, "expired"),
        ({"nbf": future(86400)}, "not_yet_valid"),
        ({"iat": future(86400)}, "not_yet_valid"),
        ({"iss": "https://evil.example"}, "invalid_issuer"),
        ({"iss": None}, "missing_claim"),
        ({"aud": "nope"}, "invalid_audience"),
        ({"aud": 5}, "invalid_claim"),
        ({"exp": "soon"}, "invalid_claim"),
        ({"scope": "write"}, "insufficient_scope"),
        ({"exp": None}, "missing_claim"),
    ],
)
def test_rejections_carry_specific_codes(verifier, es_key, claims, code):
    token = sign(es_key, **claims)
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert info.value.code == code
    assert token not in str(info.value) and token.split(".")[2] not in info.value.message
    assert verifier.verify_token(token) is None


@pytest.mark.parametrize(
    "token,code",
    [
        ("", "malformed_token"),
        ("a.b", "malformed_token"),
        ("e30=.e30.AA", "malformed_base64"),
        ("x" * 20000, "too_large"),
        ("eyJhbGciOiJub25lIn0.e30.", "alg_not_allowed"),
    ],
)
def test_malformed_inputs(verifier, token, code):
    with pytest.raises(InvalidToken) as info:
        verifier.verify(token)
    assert info.value.code == code


def test_configuration_errors():
    with pytest.raises(ConfigurationError) as info:
        fastmcpauth.JWTVerifier()
    assert info.value.code == "invalid_config"
    with pytest.raises(ConfigurationError):
        fastmcpauth.JWTVerifier(jwks_uri="https://idp.example/jwks", algorithm="RS256", algorithms=["RS256"])
    with pytest.raises(ConfigurationError) as info:
        fastmcpauth.JWTVerifier(public_key="short", algorithm="HS256")
    assert info.value.code == "weak_key"
    with pytest.raises(ConfigurationError) as info:
        fastmcpauth.JWTVerifier(jwks_uri="http://idp.example/jwks")
    assert "jwks_uri" in info.value.message
    with pytest.raises(ConfigurationError) as info:
        fastmcpauth.JWTVerifier(jwks_uri="https://idp.example/jwks", no_such_option=1)
    assert "no_such_option" in info.value.message


def test_key_tool_errors():
    with pytest.raises(InvalidKey) as info:
        fastmcpauth.generate_key("none")
    assert info.value.code == "unsupported_algorithm"
    with pytest.raises(InvalidKey) as info:
        fastmcpauth.generate_key("RS256", bits=1024)
    assert info.value.code == "weak_key"
    with pytest.raises(InvalidKey) as info:
        fastmcpauth.public_jwk({"kty": "oct", "k": "c2VjcmV0"})
    assert info.value.code == "key_type_mismatch"
    with pytest.raises(InvalidKey) as info:
        fastmcpauth.sign_jwt({"sub": "a"}, fastmcpauth.generate_key("ES256"), "RS256")
    assert info.value.code == "key_type_mismatch"


def test_generated_keys_have_the_requested_shape():
    rsa_key = fastmcpauth.generate_key("PS384", bits=3072, kid="mine")
    assert rsa_key["kid"] == "mine" and rsa_key["alg"] == "PS384" and rsa_key["kty"] == "RSA"
    n = rsa_key["n"]
    assert len(n) == 512  # 3072 bits = 384 bytes = 512 base64url characters
    assert fastmcpauth.generate_key("EdDSA", crv="Ed448")["crv"] == "Ed448"
    assert fastmcpauth.generate_key("ES256K")["crv"] == "secp256k1"
    assert len(fastmcpauth.generate_key("HS512")["k"]) == 86  # 64 bytes


def _pem_verifier(public_pem, alg):
    return fastmcpauth.JWTVerifier(public_key=public_pem, algorithm=alg)


def _jwt_with_cryptography_key(private_key, alg):
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    import jwt as pyjwt

    return pyjwt.encode({"sub": "pem-user", "exp": future()}, pem, algorithm=alg)


@pytest.mark.parametrize("form", ["spki", "pkcs1", "certificate"])
def test_pem_public_key_forms(form):
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = private_key.public_key()
    if form == "spki":
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    elif form == "pkcs1":
        pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    else:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.example")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1))
            .sign(private_key, hashes.SHA256())
        )
        pem = cert.public_bytes(serialization.Encoding.PEM)
    token = _jwt_with_cryptography_key(private_key, "RS256")
    assert _pem_verifier(pem, "RS256").verify(token).subject == "pem-user"
    # The same PEM never verifies an HS256 token made with its bytes (alg confusion).
    import base64
    import hashlib
    import hmac

    header = base64.urlsafe_b64encode(b'{"alg":"HS256"}').rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps({"sub": "x", "exp": future()}).encode()).rstrip(b"=")
    mac = base64.urlsafe_b64encode(hmac.new(pem, header + b"." + body, hashlib.sha256).digest()).rstrip(b"=")
    with pytest.raises(InvalidToken) as info:
        _pem_verifier(pem, "RS256").verify((header + b"." + body + b"." + mac).decode())
    assert info.value.code == "alg_not_allowed"


@pytest.mark.parametrize(
    "private_key,alg",
    [
        (ec.generate_private_key(ec.SECP256R1()), "ES256"),
        (ec.generate_private_key(ec.SECP384R1()), "ES384"),
        (ed25519.Ed25519PrivateKey.generate(), "EdDSA"),
    ],
)
def test_pem_ec_and_ed_keys(private_key, alg):
    pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert _pem_verifier(pem.decode(), alg).verify(_jwt_with_cryptography_key(private_key, alg)).subject == "pem-user"


def test_rsa_under_2048_bits_is_refused():
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    pem = small.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ConfigurationError) as info:
        _pem_verifier(pem, "RS256")
    assert info.value.code == "weak_key"


def test_hs_shared_secret_as_public_key_like_fastmcp():
    secret = "s" * 32
    key = {"kty": "oct", "k": __import__("base64").urlsafe_b64encode(secret.encode()).rstrip(b"=").decode()}
    token = fastmcpauth.sign_jwt({"sub": "hs", "exp": future()}, key, "HS256")
    assert fastmcpauth.JWTVerifier(public_key=secret, algorithm="HS256").verify(token).subject == "hs"
    assert fastmcpauth.JWTVerifier(public_key=secret.encode(), algorithm="HS256").verify(token).subject == "hs"


def test_remote_jwks_and_threads():
    key = fastmcpauth.generate_key("RS256")
    document = {"keys": [fastmcpauth.public_jwk(key)]}
    server = JSONServer({"/jwks": lambda: document}, headers={"Cache-Control": "max-age=300"})
    try:
        with fastmcpauth.JWTVerifier(jwks_uri=server.url + "/jwks", cache_size=0) as v:
            tokens = [fastmcpauth.sign_jwt({"sub": f"u{i}", "exp": future()}, key, "RS256") for i in range(8)]

            def work(i):
                return [v.verify(tokens[(i + r) % 8]).subject for r in range(25)]

            with ThreadPoolExecutor(8) as pool:
                results = list(pool.map(work, range(8)))
            assert all(results[i][r] == f"u{(i + r) % 8}" for i in range(8) for r in range(25))
            assert server.requests == ["/jwks"]
            stranger = fastmcpauth.generate_key("RS256")
            with pytest.raises(InvalidToken) as info:
                v.verify(fastmcpauth.sign_jwt({"sub": "x", "exp": future()}, stranger, "RS256"))
            assert info.value.code == "key_not_found"
    finally:
        server.close()


def test_unreachable_jwks_is_jwks_unavailable():
    v = fastmcpauth.JWTVerifier(jwks_uri="http://127.0.0.1:9/jwks", jwks_timeout=1)
    with pytest.raises(fastmcpauth.Unavailable) as info:
        v.verify(fastmcpauth.sign_jwt({"sub": "a", "exp": future()}, fastmcpauth.generate_key("RS256"), "RS256"))
    assert info.value.code == "jwks_unavailable"


def test_closed_verifier_raises():
    v = fastmcpauth.JWTVerifier(jwks_uri="https://idp.example/jwks")
    v.close()
    v.close()
    with pytest.raises(fastmcpauth.FastMCPAuthError):
        v.verify("a.b.c")


def test_versions_agree():
    assert fastmcpauth.library_version() == fastmcpauth.__version__
