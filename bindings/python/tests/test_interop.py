"""Interop in both directions, for every algorithm, with Python joserfc and PyJWT."""

import time

import fastmcpauth
import jwt as pyjwt
import pytest
from joserfc import jwt as joserfc_jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import JWKRegistry

ALGORITHMS = [
    ("HS256", None),
    ("HS384", None),
    ("HS512", None),
    ("RS256", None),
    ("RS384", None),
    ("RS512", None),
    ("PS256", None),
    ("PS384", None),
    ("PS512", None),
    ("ES256", None),
    ("ES384", None),
    ("ES512", None),
    ("ES256K", None),
    ("EdDSA", "Ed25519"),
    ("EdDSA", "Ed448"),
]
# RFC 9864 fully-specified names; PyJWT 2.15 does not know them yet, joserfc does.
RFC9864 = [("Ed25519", None), ("Ed448", None)]
IDS = [f"{alg}-{crv}" if crv else alg for alg, crv in ALGORITHMS]


def claims():
    now = int(time.time())
    return {
        "sub": "alice",
        "iss": "https://idp.example",
        "aud": "mcp",
        "iat": now,
        "exp": now + 300,
        "scope": "read write",
    }


def our_verifier(jwk_for_verification, alg):
    return fastmcpauth.JWTVerifier(
        jwks={"keys": [jwk_for_verification]}, algorithms=[alg], issuer="https://idp.example", audience="mcp"
    )


def verification_jwk(private_jwk, alg):
    return private_jwk if alg.startswith("HS") else fastmcpauth.public_jwk(private_jwk)


# joserfc warns that "EdDSA" is superseded by RFC 9864; interop with it is still the point here.
@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg,crv", ALGORITHMS + RFC9864, ids=IDS + ["Ed25519", "Ed448"])
def test_joserfc_signs_we_verify(alg, crv):
    private = fastmcpauth.generate_key(alg, crv=crv)
    key = JWKRegistry.import_key(private)
    token = joserfc_jwt.encode({"alg": alg, "kid": private["kid"]}, claims(), key, algorithms=[alg])
    access = our_verifier(verification_jwk(private, alg), alg).verify(token)
    assert access.subject == "alice" and access.scopes == ["read", "write"] and access.token == token


@pytest.mark.filterwarnings("ignore:EdDSA is deprecated")
@pytest.mark.parametrize("alg,crv", ALGORITHMS + RFC9864, ids=IDS + ["Ed25519", "Ed448"])
def test_we_sign_joserfc_verifies(alg, crv):
    private = fastmcpauth.generate_key(alg, crv=crv)
    token = fastmcpauth.sign_jwt(claims(), private, alg)
    key = JWKRegistry.import_key(verification_jwk(private, alg))
    decoded = joserfc_jwt.decode(token, key, algorithms=[alg])
    assert decoded.claims["sub"] == "alice" and decoded.header["alg"] == alg
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(BadSignatureError):
        joserfc_jwt.decode(tampered, key, algorithms=[alg])


@pytest.mark.parametrize("alg,crv", ALGORITHMS, ids=IDS)
def test_pyjwt_signs_we_verify(alg, crv):
    private = fastmcpauth.generate_key(alg, crv=crv)
    signing_key = pyjwt.PyJWK(private, algorithm=alg).key
    payload = claims()
    token = pyjwt.encode(payload, signing_key, algorithm=alg, headers={"kid": private["kid"]})
    access = our_verifier(verification_jwk(private, alg), alg).verify(token)
    assert access.client_id == "alice" and access.expires_at == payload["exp"] and access.claims == payload


@pytest.mark.parametrize("alg,crv", ALGORITHMS, ids=IDS)
def test_we_sign_pyjwt_verifies(alg, crv):
    private = fastmcpauth.generate_key(alg, crv=crv)
    token = fastmcpauth.sign_jwt(claims(), private, alg)
    verifying_key = pyjwt.PyJWK(verification_jwk(private, alg), algorithm=alg).key
    decoded = pyjwt.decode(token, verifying_key, algorithms=[alg], audience="mcp", issuer="https://idp.example")
    assert decoded["sub"] == "alice"
    assert pyjwt.get_unverified_header(token)["kid"] == private["kid"]


@pytest.mark.parametrize("alg,crv", ALGORITHMS, ids=IDS)
def test_public_jwk_matches_joserfc(alg, crv):
    """Our public JWK and thumbprint kid agree with joserfc's view of the same key."""
    private = fastmcpauth.generate_key(alg, crv=crv)
    theirs = JWKRegistry.import_key(private)
    assert private["kid"] == theirs.thumbprint()
    if not alg.startswith("HS"):
        ours = fastmcpauth.public_jwk(private)
        expected = {k: v for k, v in theirs.as_dict(private=False).items() if k not in ("kid", "alg", "use", "key_ops")}
        assert {k: v for k, v in ours.items() if k in expected} == expected
        assert "d" not in ours
