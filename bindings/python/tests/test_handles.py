"""Hostile input and exhaustion at the Python boundary, against the real library: handles closed
under running calls, NUL bytes in strings, the one status-to-exception table, and request bodies
over the 1 MiB cap in the integrations."""

import asyncio
import gc
import inspect
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import fastmcpauth
import fastmcpauth._native as native
import pytest
from conftest import LIBRARY, REPO
from fastmcpauth._handle import NativeHandle
from fastmcpauth.errors import STATUS_EXCEPTIONS, exception_for
from test_abi import prototypes

HEADER = REPO / "include" / "fastmcpauth.h"
FASTMCP_PYTHON = os.environ.get("FASTMCPAUTH_FASTMCP_PYTHON", str(REPO / ".venv-fastmcp" / "bin" / "python"))


def future():
    return int(time.time()) + 600


def child_env():
    return {**os.environ, "PYTHONPATH": str(REPO / "bindings" / "python"), "FASTMCPAUTH_LIB": str(LIBRARY)}


# ---- Handles closed under running calls -------------------------------------------------------

HAMMER = r"""
import collections, random, sys, threading, time
import fastmcpauth
from fastmcpauth import InvalidArgument

key = fastmcpauth.generate_key("ES256")
jwks = {"keys": [fastmcpauth.public_jwk(key)]}
tokens = [fastmcpauth.sign_jwt({"sub": f"u{i}", "exp": int(time.time()) + 600}, key, "ES256") for i in range(4)]
fernet_key = fastmcpauth.Fernet.generate_key()
frees, busy_at_free, errors, everything = collections.Counter(), [], [], []


def watched(obj):
    # The real fma_*_free, counted, and checked to run with no call in flight.
    real = type(obj)._free

    def free(handle):
        if obj._handle_calls:
            busy_at_free.append(type(obj).__name__)
        frees[id(obj)] += 1
        real(handle)

    obj._free = free
    everything.append(obj)
    return obj


def worker(n, store, verifier, fernet, auth):
    ops = [
        lambda: store.put("c", f"k{n}", {"n": n}),
        lambda: store.get("c", f"k{n}"),
        lambda: store.increment("counters", "shared"),
        lambda: verifier.verify(tokens[n % 4]).subject,
        lambda: fernet.decrypt(fernet.encrypt(b"payload")),
        lambda: auth.authenticate("Bearer static-token").client_id,
        lambda: auth.describe(),
    ]
    while True:
        closed = 0
        for op in ops:
            try:
                op()
            except InvalidArgument as error:
                if error.code != "invalid_argument" or "closed" not in error.message:
                    errors.append(repr(error))
                closed += 1
            except Exception as error:
                errors.append(repr(error))
        if closed == len(ops):
            return


for round_ in range(int(sys.argv[1])):
    store = watched(fastmcpauth.open_store("memory://", encryption_keys=[fernet_key]))
    verifier = watched(fastmcpauth.JWTVerifier(jwks=jwks, algorithm="ES256", cache_size=0))
    fernet = watched(fastmcpauth.Fernet(fernet_key))
    auth = watched(fastmcpauth.StaticTokenProvider({"static-token": {"client_id": "c", "scopes": ["read"]}}))
    threads = [threading.Thread(target=worker, args=(n, store, verifier, fernet, auth)) for n in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(random.uniform(0, 0.02))
    objects = [store, verifier, fernet, auth]
    random.shuffle(objects)
    for obj in objects:
        obj.close()
    for thread in threads:
        thread.join(60)
        assert not thread.is_alive()

assert errors == [], errors[:5]
assert busy_at_free == [], busy_at_free
assert all(frees[id(obj)] == 1 for obj in everything), [frees[id(obj)] for obj in everything]
print("ok", len(everything))
"""


def test_closing_handles_under_eight_busy_threads_never_crashes():
    result = subprocess.run(
        [sys.executable, "-c", HAMMER, "25"], env=child_env(), capture_output=True, text=True, timeout=300
    )
    # A use-after-free shows as a negative return code (killed by SIGSEGV / SIGABRT).
    assert result.returncode == 0, (result.returncode, result.stderr[-3000:])
    assert result.stdout.split() == ["ok", "100"]


def test_close_during_a_running_call_frees_when_the_call_returns():
    # A listener that never answers: the Redis call blocks until the store's timeout.
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(16)
        store = fastmcpauth.open_store(f"redis://127.0.0.1:{blackhole.getsockname()[1]}/0", timeout=1)
        frees, real = [], store._free

        def free(handle):
            frees.append(store._handle_calls)
            real(handle)

        store._free = free
        outcome = []

        def call():
            try:
                store.get("c", "k")
            except Exception as error:  # checked below
                outcome.append(error)

        thread = threading.Thread(target=call)
        thread.start()
        deadline = time.monotonic() + 10
        while store._handle_calls == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        assert store._handle_calls == 1
        store.close()
        assert store.closed and frees == []  # not freed under the running call
        with pytest.raises(fastmcpauth.InvalidArgument, match="the store is closed"):
            store.get("c", "k")
        thread.join(30)
        assert isinstance(outcome[0], fastmcpauth.StoreUnavailable) and outcome[0].code == "store_unavailable"
        assert frees == [0]  # freed once, by the call that returned last
        store.close()
        assert frees == [0]


def _lifecycle_cases():
    key = fastmcpauth.generate_key("ES256")
    jwks = {"keys": [fastmcpauth.public_jwk(key)]}
    token = fastmcpauth.sign_jwt({"sub": "u", "exp": future()}, key, "ES256")
    verifier = fastmcpauth.JWTVerifier(jwks=jwks, algorithm="ES256")
    k1, k2 = fastmcpauth.Fernet.generate_key(), fastmcpauth.Fernet.generate_key()
    static = {"t": {"client_id": "c", "scopes": ["read"]}}
    return {
        "JWTVerifier": (lambda: fastmcpauth.JWTVerifier(jwks=jwks, algorithm="ES256"), lambda v: v.verify(token)),
        "Fernet": (lambda: fastmcpauth.Fernet(k1), lambda f: f.encrypt(b"x")),
        "MultiFernet": (lambda: fastmcpauth.MultiFernet([k1, k2]), lambda f: f.decrypt(f.encrypt(b"x"))),
        "Store": (lambda: fastmcpauth.open_store("memory://"), lambda s: s.put("c", "k", {"v": 1})),
        "StaticTokenProvider": (lambda: fastmcpauth.StaticTokenProvider(static), lambda a: a.authenticate("Bearer t")),
        "AuthProvider.from_config": (
            lambda: fastmcpauth.AuthProvider.from_config({"provider": "jwt", "jwks": jwks, "algorithm": "ES256"}),
            lambda a: a.authenticate("Bearer " + token),
        ),
        "WorkOSProvider": (
            lambda: fastmcpauth.WorkOSProvider(
                client_id="c", client_secret="s", authkit_domain="https://demo.authkit.app", base_url="https://x.test"
            ),
            lambda a: a.handle("GET", "/.well-known/oauth-authorization-server"),
        ),
        "AccessToken": (lambda: verifier.verify(token), lambda t: t.claims),
        "AccessToken from authenticate": (
            lambda: fastmcpauth.StaticTokenProvider(static).authenticate("Bearer t"),
            lambda t: t.scopes,
        ),
    }


CASES = _lifecycle_cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_handle_class_has_the_one_lifecycle(name):
    make, use = CASES[name]
    obj = make()
    assert isinstance(obj, NativeHandle)
    for method in ("close", "__enter__", "__exit__", "__del__", "_borrow", "_give_back"):
        assert getattr(type(obj), method) is getattr(NativeHandle, method), method
    # with: the object itself, closed on the way out; then every call raises the closed error.
    with obj as entered:
        assert entered is obj and not obj.closed
    assert obj.closed
    with pytest.raises(fastmcpauth.InvalidArgument) as info:
        use(obj)
    assert isinstance(info.value, ValueError) and isinstance(info.value, fastmcpauth.FastMCPAuthError)
    assert info.value.code == "invalid_argument" and "is closed" in info.value.message
    obj.close()  # twice: harmless
    # close() after use; __del__ on an open object.
    used = make()
    use(used)
    used.close()
    used.close()
    assert used.closed
    dropped = make()
    use(dropped)
    del dropped
    gc.collect()


def test_an_access_token_keeps_what_was_read_before_close():
    key = fastmcpauth.generate_key("ES256")
    verifier = fastmcpauth.JWTVerifier(jwks={"keys": [fastmcpauth.public_jwk(key)]}, algorithm="ES256")
    access = verifier.verify(fastmcpauth.sign_jwt({"sub": "u", "scope": "a b", "exp": future()}, key, "ES256"))
    assert access.subject == "u"
    access.close()
    assert access.subject == "u"
    with pytest.raises(fastmcpauth.InvalidArgument, match="the access token is closed"):
        access.scopes  # noqa: B018 - the read is the test
    # A token built in Python owns nothing: close() is harmless and every field stays.
    plain = fastmcpauth.AccessToken("raw", "client", ["s"])
    with plain:
        pass
    assert plain.closed and plain.token == "raw" and plain.scopes == ["s"]
    # Closing the verifier leaves its tokens alive (they own their data).
    other = verifier.verify(fastmcpauth.sign_jwt({"sub": "v", "exp": future()}, key, "ES256"))
    verifier.close()
    assert other.subject == "v" and other.claims["sub"] == "v"


# ---- NUL bytes ----------------------------------------------------------------------------------


def assert_nul_refused(call, parameter):
    with pytest.raises(ValueError) as info:
        call()
    assert isinstance(info.value, fastmcpauth.InvalidArgument) and info.value.code == "invalid_argument"
    assert re.search(rf"\b{re.escape(parameter)} contains a NUL", info.value.message), info.value.message


def test_nul_in_store_names_and_values_never_aliases():
    with fastmcpauth.open_store("memory://") as store:
        store.put("c", "a", {"v": 1})
        assert_nul_refused(lambda: store.put("c", "a\x00b", {"v": 2}), "key")
        assert_nul_refused(lambda: store.put_if_absent("c", "a\x00", {"v": 2}), "key")
        assert_nul_refused(lambda: store.get("c", "a\x00b"), "key")
        assert_nul_refused(lambda: store.take("c", "a\x00b"), "key")
        assert_nul_refused(lambda: store.delete("c", "a\x00b"), "key")
        assert_nul_refused(lambda: store.compare_and_swap("c", "a\x00b", None, {"v": 2}), "key")
        assert_nul_refused(lambda: store.increment("c", "a\x00b"), "key")
        assert_nul_refused(lambda: store.ttl("c", "a\x00b"), "key")
        assert_nul_refused(lambda: store.put("c\x00x", "a", {"v": 3}), "collection")
        assert_nul_refused(lambda: store.keys("c\x00x"), "collection")
        assert_nul_refused(lambda: store.delete_collection("c\x00"), "collection")
        assert_nul_refused(lambda: store.put("c", "k", {"v": "x\x00y"}), "value")
        assert_nul_refused(lambda: store.put("c", "k", {"x\x00": 1}), "value")
        assert_nul_refused(lambda: store.compare_and_delete("c", "a", {"v": "\x00"}), "expected")
        assert_nul_refused(lambda: store.compare_and_swap("c", "a", {"v": 1}, {"v": "\x00"}), "new")
        assert_nul_refused(lambda: store.acquire_lease("lease\x00", 5), "name")
        assert_nul_refused(lambda: store.release_lease("lease", "holder\x00"), "holder")
        assert store.get("c", "a") == {"v": 1} and store.keys("c") == ["a"] and store.keys("c\\x00x") == []
        # An escaped backslash is no NUL: the text "\u0000" is stored as it is.
        store.put("c", "text", {"v": "\\u0000", "w": "\\\\u0000"})
        assert store.get("c", "text") == {"v": "\\u0000", "w": "\\\\u0000"}
    assert_nul_refused(lambda: fastmcpauth.open_store("memory://\x00ignored"), "url")
    assert_nul_refused(lambda: fastmcpauth.open_store("memory://", encryption_keys=["k\x00"]), "options")


def test_nul_in_verifier_config_and_key_tools():
    secret = "s" * 32
    assert_nul_refused(lambda: fastmcpauth.JWTVerifier(public_key=secret + "\x00x", algorithm="HS256"), "config")
    assert_nul_refused(lambda: fastmcpauth.JWTVerifier(public_key=secret, algorithm="HS256", issuer="a\x00b"), "config")
    assert_nul_refused(lambda: fastmcpauth.JWTVerifier(jwks='{"keys":[]}\x00'), "config")
    key = fastmcpauth.generate_key("ES256")
    assert_nul_refused(lambda: fastmcpauth.generate_key("ES256\x00"), "alg")
    assert_nul_refused(lambda: fastmcpauth.generate_key("ES256", kid="k\x00"), "options")
    assert_nul_refused(lambda: fastmcpauth.sign_jwt({"sub": "a"}, key, "ES256\x00"), "alg")
    assert_nul_refused(lambda: fastmcpauth.sign_jwt({"sub": "a\x00b"}, key, "ES256"), "claims")
    assert_nul_refused(lambda: fastmcpauth.sign_jwt({"sub": "a"}, key, "ES256", {"kid": "\x00"}), "headers")
    assert_nul_refused(lambda: fastmcpauth.public_jwk(json.dumps(key) + "\x00"), "jwk")
    assert_nul_refused(lambda: fastmcpauth.public_jwk('{"kty":"oct","k":"\\u0000"}'), "jwk")
    # A token carries its length: a NUL inside is the library's verdict, not a truncation.
    verifier = fastmcpauth.JWTVerifier(jwks={"keys": [fastmcpauth.public_jwk(key)]}, algorithm="ES256")
    token = fastmcpauth.sign_jwt({"sub": "a", "exp": future()}, key, "ES256")
    assert verifier.verify(token).subject == "a"
    with pytest.raises(fastmcpauth.InvalidToken):
        verifier.verify(token + "\x00junk")
    assert verifier.verify_token(token + "\x00") is None


def test_nul_in_auth_provider_arguments():
    auth = fastmcpauth.StaticTokenProvider({"t": {"client_id": "c", "scopes": ["read"]}})
    assert auth.authenticate("Bearer t").client_id == "c"
    assert_nul_refused(lambda: auth.authenticate("Bearer t\x00junk"), "authorization_header")
    assert_nul_refused(lambda: auth.authenticate("Bearer t", required_scopes=["read\x00"]), "required_scopes")
    assert_nul_refused(lambda: auth.authenticate("Bearer t", target="/mcp\x00"), "target")
    assert_nul_refused(lambda: auth.handle("GET\x00", "/"), "method")
    assert_nul_refused(lambda: auth.handle("GET", "/.well-known/oauth-protected-resource\x00"), "target")
    assert_nul_refused(lambda: auth.handle("GET", "/", {"X-Test": "a\x00b"}), "headers")
    assert_nul_refused(lambda: auth.handle("GET", "/", {}, b"", client_address="127.0.0.1\x00"), "client_address")
    assert_nul_refused(lambda: fastmcpauth.StaticTokenProvider({"t\x00u": {"client_id": "c"}}), "config")
    assert_nul_refused(lambda: fastmcpauth.auth_from_env(mcp_path="/mcp\x00"), "overrides")


def test_nul_in_fernet_keys_and_tokens():
    key = fastmcpauth.Fernet.generate_key()
    assert_nul_refused(lambda: fastmcpauth.Fernet(key + b"\x00"), "key")
    assert_nul_refused(lambda: fastmcpauth.Fernet(key.decode() + "\x00tail"), "key")
    assert_nul_refused(lambda: fastmcpauth.MultiFernet([key, b"\x00" + key]), "key")
    f = fastmcpauth.Fernet(key)
    token = f.encrypt(b"data \x00 with a NUL")  # data carries its length
    assert f.decrypt(token) == b"data \x00 with a NUL"
    assert_nul_refused(lambda: f.decrypt(token + b"\x00junk"), "token")
    assert_nul_refused(lambda: f.rotate(token + b"\x00"), "token")
    assert_nul_refused(lambda: f.extract_timestamp(token + b"\x00"), "token")


# ---- The one status table ---------------------------------------------------------------------


def header_statuses():
    """[(number, name)] of the fma_status enum."""
    text = HEADER.read_text()
    enum = text.split("typedef enum fma_status {", 1)[1].split("} fma_status;", 1)[0]
    entries = re.findall(r"(FMA_(?:OK|E_[A-Z0-9_]+)) = (\d+),?\s*(?:/\*\s*([a-z0-9_]+))?", enum)
    assert len(entries) == enum.count(" = ")
    return [(int(number), "ok" if name == "FMA_OK" else code) for name, number, code in entries]


def test_the_table_covers_every_status_in_the_header_with_one_class():
    statuses = header_statuses()
    assert len(statuses) >= 35
    assert set(STATUS_EXCEPTIONS) == {name for _, name in statuses}
    for number, name in statuses:
        assert native.status_name(number).decode() == name
        kind = exception_for(name)
        if name == "ok":
            assert kind is None
            assert native._raise_for_status(0, None, (native.Error(),)) == 0
            continue
        assert isinstance(kind, type) and issubclass(kind, fastmcpauth.FastMCPAuthError), name
        assert not issubclass(kind, fastmcpauth.AuthChallenge)
        err = native.Error()
        err.message = b"what the library said"
        with pytest.raises(fastmcpauth.FastMCPAuthError) as info:
            native._raise_for_status(number, None, (err,))
        assert type(info.value) is kind, name
        assert info.value.code == name and info.value.message == "what the library said"
        # Without a message, the status's own sentence.
        with pytest.raises(kind) as info:
            native._raise_for_status(number, None, (native.Error(),))
        assert info.value.message == native.status_string(number).decode()


def test_unknown_status_numbers_fall_back_to_the_base_class():
    with pytest.raises(fastmcpauth.FastMCPAuthError) as info:
        native._raise_for_status(9999, None, (native.Error(),))
    assert type(info.value) is fastmcpauth.FastMCPAuthError
    assert info.value.code == "unknown_status" and "9999" in info.value.message
    assert exception_for("no_such_status") is fastmcpauth.FastMCPAuthError


def test_the_families():
    families = {
        fastmcpauth.InvalidToken: {
            "malformed_token",
            "malformed_base64",
            "malformed_header",
            "malformed_claims",
            "alg_not_allowed",
            "key_not_found",
            "key_type_mismatch",
            "bad_signature",
            "expired",
            "not_yet_valid",
            "invalid_issuer",
            "invalid_audience",
            "invalid_type",
            "missing_claim",
            "invalid_claim",
            "insufficient_scope",
            "unsupported_crit",
            "too_large",
            "decryption_failed",
            "token_revoked",
        },
        ValueError: {
            "invalid_argument",
            "invalid_config",
            "invalid_key",
            "weak_key",
            "unsupported_algorithm",
            "key_type_mismatch",
        },
        fastmcpauth.InvalidArgument: {"invalid_argument"},
        fastmcpauth.ConfigurationError: {"invalid_config", "weak_key"},
        fastmcpauth.InvalidKey: {"invalid_key", "weak_key", "unsupported_algorithm", "key_type_mismatch"},
        fastmcpauth.StoreError: {
            "store_unavailable",
            "corrupted_value",
            "undecryptable_value",
            "plaintext_value",
            "over_capacity",
            "too_large",
        },
        fastmcpauth.Unavailable: {
            "jwks_unavailable",
            "upstream_unavailable",
            "store_unavailable",
            "rate_limited",
            "over_capacity",
        },
    }
    for family, codes in families.items():
        members = {code for code, kind in STATUS_EXCEPTIONS.items() if kind is not None and issubclass(kind, family)}
        assert members == codes, family
    assert STATUS_EXCEPTIONS["internal_error"] is fastmcpauth.FastMCPAuthError
    for name in ("InvalidArgument", "Unavailable", "StoreUnavailable", "WeakKey", "KeyTypeMismatch", "TooLarge"):
        assert name in fastmcpauth.__all__ and getattr(fastmcpauth, name) is getattr(fastmcpauth.errors, name)


def test_every_status_function_raises_through_the_table():
    for name, (returns, parameters) in prototypes().items():
        function = getattr(native.lib, name)
        if returns == "fma_status":
            assert parameters[-1] == "fma_error*", name
            assert function.errcheck is native._raise_for_status, name
        else:
            assert getattr(function, "errcheck", None) is not native._raise_for_status, name


def test_real_calls_raise_the_table_s_classes():
    with pytest.raises(fastmcpauth.StoreError) as info:
        fastmcpauth.open_store("redis://127.0.0.1:1", timeout=1).get("c", "k")
    assert info.value.code == "store_unavailable"
    assert isinstance(info.value, fastmcpauth.StoreUnavailable) and isinstance(info.value, fastmcpauth.Unavailable)
    with pytest.raises(fastmcpauth.ConfigurationError) as info:
        fastmcpauth.JWTVerifier(jwks_uri="https://idp.example/jwks", no_such_option=1)
    assert info.value.code == "invalid_config" and isinstance(info.value, ValueError)
    with pytest.raises(fastmcpauth.ConfigurationError) as info:
        fastmcpauth.open_store("mysql://x")
    assert info.value.code == "invalid_config"
    key = fastmcpauth.generate_key("ES256")
    verifier = fastmcpauth.JWTVerifier(jwks={"keys": [fastmcpauth.public_jwk(key)]}, algorithm="ES256")
    token = fastmcpauth.sign_jwt({"sub": "a", "exp": future()}, key, "ES256")
    tampered = token[:-6] + ("AAAAAA" if not token.endswith("AAAAAA") else "BBBBBB")
    with pytest.raises(fastmcpauth.InvalidToken) as info:
        verifier.verify(tampered)
    assert info.value.code == "bad_signature" and type(info.value) is fastmcpauth.InvalidToken
    with pytest.raises(fastmcpauth.InvalidToken) as info:
        verifier.verify("x" * 20000)
    assert info.value.code == "too_large" and isinstance(info.value, fastmcpauth.TooLarge)
    with pytest.raises(fastmcpauth.InvalidKey) as info:
        fastmcpauth.Fernet(b"A" * 44)
    assert info.value.code == "invalid_key" and isinstance(info.value, ValueError)
    with pytest.raises(fastmcpauth.WeakKey) as info:
        fastmcpauth.generate_key("RS256", bits=1024)
    assert isinstance(info.value, fastmcpauth.InvalidKey) and isinstance(info.value, fastmcpauth.ConfigurationError)
    with pytest.raises(fastmcpauth.KeyTypeMismatch) as info:
        fastmcpauth.public_jwk({"kty": "oct", "k": "c2VjcmV0"})
    assert info.value.code == "key_type_mismatch" and isinstance(info.value, fastmcpauth.InvalidKey)
    with fastmcpauth.open_store("memory://") as store:
        with pytest.raises(fastmcpauth.InvalidArgument) as info:
            store.put("c", "k", {"a": 1}, ttl=0)
        assert info.value.code == "invalid_argument"
        with pytest.raises(fastmcpauth.TooLarge) as info:
            fastmcpauth.open_store("memory://", max_value_bytes=64).put("c", "k", {"x": "y" * 200})
        assert isinstance(info.value, fastmcpauth.StoreError) and info.value.code == "too_large"


# ---- Request bodies over the cap in the integrations ------------------------------------------

CAP = 1 << 20
CHUNK = 64 << 10
TOO_LARGE = {"error": "invalid_request", "error_description": "The request body is too large."}


def asgi_post(app, path, total, declare_length=True, body=None):
    """POSTs `total` bytes (or `body`) to an ASGI app in chunks of 64 KiB, as a server would hand
    them over; returns (status, headers, response body, bytes the app pulled)."""
    payload = body if body is not None else b"x" * total
    pulled, sent = 0, []

    async def receive():
        nonlocal pulled
        if pulled >= len(payload) and pulled > 0:
            await asyncio.sleep(3600)  # nothing more arrives; a plain response never waits here
        piece = payload[pulled : pulled + CHUNK]
        pulled += len(piece)
        return {"type": "http.request", "body": piece, "more_body": pulled < len(payload)}

    async def send(message):
        sent.append(message)

    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", b"application/json")]
    if declare_length:
        headers.append((b"content-length", str(len(payload)).encode()))
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    content = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, content, pulled


def workos_proxy():
    return fastmcpauth.WorkOSProvider(
        client_id="client_01",
        client_secret="sk_test",
        authkit_domain="https://demo.authkit.app",
        base_url="http://127.0.0.1:8000",
        allowed_client_redirect_uris=["http://localhost:*"],
    )


def test_mcp_add_routes_refuses_bodies_over_the_cap_without_reading_them():
    from fastmcpauth.integrations.mcp import add_routes
    from mcp.server.mcpserver import MCPServer

    proxy, received = workos_proxy(), []
    handle = proxy.handle
    proxy.handle = lambda method, target, headers, body, client: (
        received.append(len(body)) or handle(method, target, headers, body, client)
    )
    server = MCPServer("body-cap")
    add_routes(server, proxy)
    app = server.streamable_http_app(json_response=True, stateless_http=True)
    # Streamed without a length: refused once more than 1 MiB has arrived.
    status, headers, content, pulled = asgi_post(app, "/register", 8 * CAP, declare_length=False)
    assert status == 413 and json.loads(content) == TOO_LARGE
    assert headers["content-type"] == "application/json"
    assert CAP < pulled <= CAP + CHUNK
    # A declared length over the cap: refused before reading anything.
    status, _, content, pulled = asgi_post(app, "/register", 8 * CAP)
    assert status == 413 and json.loads(content) == TOO_LARGE and pulled == 0
    # One byte over is over; exactly the cap reaches the library (whose /register has its own cap).
    status, _, _, pulled = asgi_post(app, "/register", CAP + 1, declare_length=False)
    assert status == 413 and pulled == CAP + 1
    assert received == []  # none of these reached the library
    asgi_post(app, "/register", CAP)
    assert received == [CAP]
    # A normal registration still works.
    registration = json.dumps({"redirect_uris": ["http://localhost:3000/cb"]}).encode()
    status, _, content, _ = asgi_post(app, "/register", 0, body=registration)
    assert status == 201 and json.loads(content)["client_id"] and received[-1] == len(registration)


FASTMCP_CHECK = r"""
import asyncio, json, sys
from fastmcp import FastMCP
from fastmcpauth.integrations import fastmcp as ours
CAP, CHUNK = 1 << 20, 64 << 10
exec(sys.argv[1])  # asgi_post, from test_handles

auth = ours.WorkOSProvider(client_id="client_01", client_secret="sk_test", authkit_domain="https://demo.authkit.app",
                           base_url="http://127.0.0.1:8000", allowed_client_redirect_uris=["http://localhost:*"])
app = FastMCP("body-cap", auth=auth).http_app(path="/mcp", json_response=True, stateless_http=True)
body = json.dumps({"redirect_uris": ["http://localhost:3000/cb"]}).encode()
results = [
    asgi_post(app, "/register", 8 * CAP, declare_length=False),
    asgi_post(app, "/register", 8 * CAP),
    asgi_post(app, "/register", 0, body=body),
]
with auth:
    pass
print(json.dumps([[status, content.decode(), pulled] for status, _, content, pulled in results]))
"""


@pytest.mark.skipif(not os.path.exists(FASTMCP_PYTHON), reason="no FastMCP venv (.venv-fastmcp)")
def test_fastmcp_routes_refuse_bodies_over_the_cap_without_reading_them():
    helper = inspect.getsource(asgi_post)
    result = subprocess.run(
        [FASTMCP_PYTHON, "-c", FASTMCP_CHECK, helper], env=child_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    streamed, declared, normal = json.loads(result.stdout.strip().splitlines()[-1])
    assert streamed[0] == 413 and json.loads(streamed[1]) == TOO_LARGE and CAP < streamed[2] <= CAP + CHUNK
    assert declared[0] == 413 and json.loads(declared[1]) == TOO_LARGE and declared[2] == 0
    assert normal[0] == 201
