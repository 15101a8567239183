"""Fernet and MultiFernet: the spec vectors, and byte compatibility with cryptography.fernet."""

import datetime
import json
import os

import fastmcpauth
import pytest
from conftest import VECTORS
from cryptography import fernet as crypto


def epoch(iso):
    return int(datetime.datetime.fromisoformat(iso).timestamp())


def test_spec_verify_vectors():
    for vector in json.loads((VECTORS / "fernet" / "verify.json").read_text()):
        f = fastmcpauth.Fernet(vector["secret"])
        assert f.decrypt_at_time(vector["token"], vector["ttl_sec"], epoch(vector["now"])) == vector["src"].encode()


def test_spec_generate_vectors_decrypt_and_carry_their_timestamp():
    for vector in json.loads((VECTORS / "fernet" / "generate.json").read_text()):
        f = fastmcpauth.Fernet(vector["secret"])
        assert f.decrypt(vector["token"]) == vector["src"].encode()
        assert f.extract_timestamp(vector["token"]) == epoch(vector["now"])


@pytest.mark.parametrize(
    "vector", json.loads((VECTORS / "fernet" / "invalid.json").read_text()), ids=lambda v: v["desc"]
)
def test_spec_invalid_vectors(vector):
    f = fastmcpauth.Fernet(vector["secret"])
    with pytest.raises(fastmcpauth.InvalidToken):
        f.decrypt_at_time(vector["token"], vector["ttl_sec"], epoch(vector["now"]))
    # cryptography agrees on every one.
    with pytest.raises(crypto.InvalidToken):
        crypto.Fernet(vector["secret"]).decrypt_at_time(vector["token"], vector["ttl_sec"], epoch(vector["now"]))


SIZES = [0, 1, 15, 16, 17, 255, 1024, 4096, 65535, 65536]


@pytest.mark.parametrize("size", SIZES)
def test_both_directions_with_cryptography(size):
    key = crypto.Fernet.generate_key()
    ours, theirs = fastmcpauth.Fernet(key), crypto.Fernet(key)
    data = os.urandom(size)
    assert theirs.decrypt(ours.encrypt(data)) == data
    assert ours.decrypt(theirs.encrypt(data)) == data
    text = ("café ☃ 😀 " * (size // 12 + 1))[:size].encode()
    assert theirs.decrypt(ours.encrypt(text)) == text
    assert ours.decrypt(theirs.encrypt(text), ttl=60) == text


def test_keys_as_str_or_bytes_and_bad_keys():
    key = fastmcpauth.Fernet.generate_key()
    assert isinstance(key, bytes) and len(key) == 44
    token = fastmcpauth.Fernet(key.decode()).encrypt(b"x")
    assert fastmcpauth.Fernet(key).decrypt(token.decode()) == b"x"
    for bad in [b"", b"short", b"A" * 44, key[:-4]]:
        with pytest.raises(ValueError):
            fastmcpauth.Fernet(bad)
    with pytest.raises(ValueError):
        fastmcpauth.MultiFernet([])


def test_ttl_and_clock_skew_match_cryptography():
    key = crypto.Fernet.generate_key()
    ours, theirs = fastmcpauth.Fernet(key), crypto.Fernet(key)
    token = theirs.encrypt_at_time(b"data", 1_000_000)
    assert ours.extract_timestamp(token) == theirs.extract_timestamp(token) == 1_000_000
    for now in [999_900, 999_939, 999_940, 1_000_000, 1_000_030, 1_000_031, 2_000_000]:
        try:
            expected = theirs.decrypt_at_time(token, 30, now)
        except crypto.InvalidToken:
            expected = None
        try:
            got = ours.decrypt_at_time(token, 30, now)
        except fastmcpauth.InvalidToken as error:
            got = None
            assert error.code in ("expired", "not_yet_valid")
        assert got == expected, now


def test_multifernet_rotation_and_timestamps():
    old, new = crypto.Fernet.generate_key(), crypto.Fernet.generate_key()
    token = crypto.Fernet(old).encrypt_at_time(b"secret", 1_234_567)
    ours = fastmcpauth.MultiFernet([new, old])
    rotated = ours.rotate(token)
    assert crypto.Fernet(new).decrypt(rotated) == b"secret"
    assert crypto.Fernet(new).extract_timestamp(rotated) == 1_234_567
    with pytest.raises(crypto.InvalidToken):
        crypto.Fernet(old).decrypt(rotated)
    # cryptography's MultiFernet reads what ours wrote and the other way round.
    theirs = crypto.MultiFernet([crypto.Fernet(new), crypto.Fernet(old)])
    assert theirs.decrypt(ours.encrypt(b"a")) == b"a"
    assert ours.decrypt(theirs.encrypt(b"b")) == b"b"
    # Fernet objects are accepted too, as in cryptography.
    assert fastmcpauth.MultiFernet([fastmcpauth.Fernet(new), fastmcpauth.Fernet(old)]).decrypt(token) == b"secret"


def test_tampering_is_a_bad_signature():
    f = fastmcpauth.Fernet(fastmcpauth.Fernet.generate_key())
    token = bytearray(f.encrypt(b"hello world"))
    token[30] = ord("A") if token[30] != ord("A") else ord("B")
    with pytest.raises(fastmcpauth.InvalidToken) as info:
        f.decrypt(bytes(token))
    assert info.value.code in ("bad_signature", "malformed_base64")
    with pytest.raises(fastmcpauth.InvalidToken) as info:
        fastmcpauth.Fernet(fastmcpauth.Fernet.generate_key()).decrypt(f.encrypt(b"x"))
    assert info.value.code == "bad_signature"
