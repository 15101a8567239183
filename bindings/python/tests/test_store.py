"""The token store from Python: the contract on every backend, faults, concurrency, and
wire compatibility with py-key-value-aio's RedisStore + FernetEncryptionWrapper."""

import asyncio
import json
import math
import multiprocessing
import threading
from concurrent.futures import ThreadPoolExecutor

import fastmcpauth
import pytest
import redis
from conftest import VECTORS
from cryptography.fernet import Fernet as CryptoFernet
from key_value.aio.stores.redis import RedisStore
from key_value.aio.wrappers.encryption import FernetEncryptionWrapper
from redis_server import RedisServer


@pytest.fixture(scope="module")
def redis_server():
    server = RedisServer()
    yield server
    server.close()


@pytest.fixture(params=["memory", "sqlite", "redis"])
def url(request, tmp_path, redis_server):
    if request.param == "memory":
        return "memory://"
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/store.db"
    redis.Redis(port=redis_server.port).flushdb()
    return redis_server.url


def test_contract(url):
    key = fastmcpauth.Fernet.generate_key()
    with fastmcpauth.open_store(url, encryption_keys=[key]) as store:
        assert store.get("c", "k") is None
        store.put("c", "k", {"a": 1, "name": "café ☃", "nested": {"list": [1, 2.5, None, True]}})
        assert store.get("c", "k") == {"a": 1, "name": "café ☃", "nested": {"list": [1, 2.5, None, True]}}
        store.put("c", "t", {"b": 2}, ttl=30)
        assert store.keys("c") == ["k", "t"]
        assert store.ttl("c", "k") == math.inf
        assert 29 < store.ttl("c", "t") <= 30
        assert store.ttl("c", "missing") is None
        assert store.put_if_absent("c", "k", {"a": 9}) is False
        assert store.put_if_absent("c", "new", {"a": 9}, ttl=5) is True
        assert store.take("c", "new") == {"a": 9} and store.take("c", "new") is None
        assert store.compare_and_delete("c", "k", {"a": 2}) is False
        assert store.compare_and_delete("c", "k", store.get("c", "k")) is True
        assert store.delete("c", "t") is True and store.delete("c", "t") is False
        holder = store.acquire_lease("refresh:x", ttl=10)
        assert holder and store.acquire_lease("refresh:x", ttl=10) is None
        assert store.release_lease("refresh:x", "not-me") is False and store.release_lease("refresh:x", holder) is True
        store.put("gone", "a", {})
        store.put("gone", "b", {})
        assert store.delete_collection("gone") == 2 and store.keys("gone") == []
        # Compare-and-swap and counters.
        assert store.compare_and_swap("g", "x", None, {"state": "pending"}, ttl=60) is True
        assert store.compare_and_swap("g", "x", None, {"state": "other"}) is False
        assert store.compare_and_swap("g", "x", {"state": "approved"}, {"state": "x"}) is False
        assert store.compare_and_swap("g", "x", {"state": "pending"}, {"state": "approved"}) is True
        assert store.get("g", "x") == {"state": "approved"}
        assert store.increment("n", "a", ttl=60) == 1 and store.increment("n", "a", 4) == 5
        assert store.increment("n", "a", 0) == 5 and 59 < store.ttl("n", "a") <= 60
        with pytest.raises(fastmcpauth.StoreError) as info:
            store.increment("g", "x")
        assert info.value.code == "corrupted_value"
        with pytest.raises(TypeError):
            store.increment("n", "a", 1.5)
        for bad_ttl in (0, -1, 1e17, float("nan"), float("inf")):
            with pytest.raises(fastmcpauth.InvalidArgument) as info:
                store.put("c", "k", {"a": 1}, ttl=bad_ttl)
            assert info.value.code == "invalid_argument"
        with pytest.raises(TypeError):
            store.put("c", "k", ["not", "an", "object"])


def test_faults(tmp_path, redis_server):
    with pytest.raises(fastmcpauth.ConfigurationError) as info:
        fastmcpauth.open_store("mysql://x")
    assert info.value.code == "invalid_config"
    with pytest.raises(fastmcpauth.ConfigurationError) as info:
        fastmcpauth.open_store("memory://", encryption_keys=["not-a-key"])
    assert info.value.code == "invalid_config"
    key, other = fastmcpauth.Fernet.generate_key(), fastmcpauth.Fernet.generate_key()
    url = f"sqlite:///{tmp_path}/faults.db"
    fastmcpauth.open_store(url, encryption_keys=[key]).put("c", "k", {"token": "t"})
    with pytest.raises(fastmcpauth.StoreError) as info:
        fastmcpauth.open_store(url, encryption_keys=[other]).get("c", "k")
    assert info.value.code == "undecryptable_value"
    assert fastmcpauth.open_store(url, encryption_keys=[other], on_undecryptable="miss").get("c", "k") is None
    fastmcpauth.open_store(url).put("c", "plain", {"token": "t"})
    with pytest.raises(fastmcpauth.StoreError) as info:
        fastmcpauth.open_store(url, encryption_keys=[key]).get("c", "plain")
    assert info.value.code == "plaintext_value"
    with pytest.raises(fastmcpauth.StoreError) as info:
        fastmcpauth.open_store(url, encryption_keys=[key], max_value_bytes=200).put("c", "big", {"x": "y" * 500})
    assert info.value.code == "too_large"
    # Damage on the wire: a truncated envelope and a garbage value in Redis.
    client = redis.Redis(port=redis_server.port)
    store = fastmcpauth.open_store(redis_server.url, encryption_keys=[key])
    store.put("c", "k", {"token": "t"})
    raw = client.get("c::k")
    client.set("c::k", raw[: len(raw) // 2])
    with pytest.raises(fastmcpauth.StoreError) as info:
        store.get("c", "k")
    assert info.value.code == "corrupted_value"
    envelope = json.loads(raw)
    envelope["value"]["__encrypted_data__"] = envelope["value"]["__encrypted_data__"][:40]
    client.set("c::k", json.dumps(envelope))
    with pytest.raises(fastmcpauth.StoreError) as info:
        store.get("c", "k")
    assert info.value.code in ("corrupted_value", "undecryptable_value")
    # Nothing else was lost.
    store.put("c", "ok", {"v": 1})
    assert store.get("c", "ok") == {"v": 1}


def test_redis_restart_in_the_middle():
    server = RedisServer()
    try:
        store = fastmcpauth.open_store(server.url, encryption_keys=[fastmcpauth.Fernet.generate_key()], timeout=1)
        for i in range(20):
            store.put("sessions", f"s{i}", {"i": i})
        server.stop()
        with pytest.raises(fastmcpauth.StoreError) as info:
            store.get("sessions", "s1")
        assert info.value.code == "store_unavailable"
        server.start()
        assert [store.get("sessions", f"s{i}")["i"] for i in range(20)] == list(range(20))
        store.put("sessions", "after", {"ok": True})
        assert store.get("sessions", "after") == {"ok": True}
    finally:
        server.close()


def test_eight_threads_one_handle(url):
    with fastmcpauth.open_store(url, encryption_keys=[fastmcpauth.Fernet.generate_key()]) as store:
        for i in range(100):
            store.put("codes", f"code{i}", {"n": i})
        taken, lock = [], threading.Lock()

        def worker(_):
            wins = 0
            for i in range(100):
                value = store.take("codes", f"code{i}")
                if value is not None:
                    with lock:
                        taken.append(value["n"])
                if store.put_if_absent("once", f"k{i}", {"w": 1}):
                    wins += 1
            return wins

        with ThreadPoolExecutor(8) as pool:
            wins = sum(pool.map(worker, range(8)))
        assert sorted(taken) == list(range(100))
        assert wins == 100


def _process_worker(url, key, results):
    store = fastmcpauth.open_store(url, encryption_keys=[key])
    got, wins = [], 0
    for i in range(150):
        value = store.take("codes", f"code{i}")
        if value is not None:
            got.append(value["n"])
        if store.put_if_absent("once", f"k{i}", {"pid": 1}):
            wins += 1
        store.increment("limits", "shared", ttl=600)
        # Swap in the next generation of a chain; a loser reads again.
        while True:
            current = store.get("chain", "c")
            if store.compare_and_swap("chain", "c", current, {"generation": current["generation"] + 1}):
                break
    results.put((got, wins))


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_two_processes_on_one_store(backend, tmp_path, redis_server):
    url = f"sqlite:///{tmp_path}/shared.db" if backend == "sqlite" else redis_server.url
    if backend == "redis":
        redis.Redis(port=redis_server.port).flushdb()
    key = fastmcpauth.Fernet.generate_key().decode()
    store = fastmcpauth.open_store(url, encryption_keys=[key])
    for i in range(150):
        store.put("codes", f"code{i}", {"n": i})
    store.put("chain", "c", {"generation": 0})
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    workers = [context.Process(target=_process_worker, args=(url, key, results)) for _ in range(2)]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=60)
    taken = sorted(n for got, _ in outcomes for n in got)
    assert taken == list(range(150))
    assert sum(wins for _, wins in outcomes) == 150
    # No increment lost, no generation written twice, across processes.
    assert store.increment("limits", "shared", 0) == 300
    assert store.get("chain", "c") == {"generation": 300}


# ---- Wire compatibility with py-key-value-aio (real packages, same Redis, same key) ----


def _pkv(server, key):
    return FernetEncryptionWrapper(RedisStore(url=server.url), fernet=CryptoFernet(key))


def test_python_writes_we_read(redis_server):
    key = CryptoFernet.generate_key()
    values = {
        "client": {"client_id": "abc", "redirect_uris": ["http://127.0.0.1:3000/cb"], "scope": "read write"},
        "unicode": {"name": "café ☃ 😀", "n": [1, 2.5, None, True]},
        "empty": {},
    }

    async def write():
        store = _pkv(redis_server, key)
        for name, value in values.items():
            await store.put(key=name, value=value, collection="mcp-oauth-proxy-clients")
        await store.put(key="short", value={"x": 1}, collection="mcp-oauth-transactions", ttl=900)

    asyncio.run(write())
    ours = fastmcpauth.open_store(redis_server.url, encryption_keys=[key])
    for name, value in values.items():
        assert ours.get("mcp-oauth-proxy-clients", name) == value
    assert 890 < ours.ttl("mcp-oauth-transactions", "short") <= 900
    assert ours.keys("mcp-oauth-proxy-clients") == sorted(values)


def test_we_write_python_reads(redis_server):
    key = CryptoFernet.generate_key()
    ours = fastmcpauth.open_store(redis_server.url, encryption_keys=[key])
    ours.put(
        "mcp-upstream-tokens", "u1", {"access_token": "at", "expires_at": 1795310531.5, "name": "café ☃"}, ttl=3600
    )
    ours.put("mcp-jti-mappings", "j1", {"upstream_token_id": "u1"})

    async def read():
        store = _pkv(redis_server, key)
        first = await store.get(key="u1", collection="mcp-upstream-tokens")
        value, ttl = await store.ttl(key="u1", collection="mcp-upstream-tokens")
        second = await store.get(key="j1", collection="mcp-jti-mappings")
        return first, ttl, second

    first, ttl, second = asyncio.run(read())
    assert first == {"access_token": "at", "expires_at": 1795310531.5, "name": "café ☃"}
    assert 3590 < ttl <= 3600
    assert second == {"upstream_token_id": "u1"}
    # The raw Redis value is the envelope py-key-value writes: sorted keys, Python's separators.
    raw = redis.Redis(port=redis_server.port).get("mcp-jti-mappings::j1").decode()
    document = json.loads(raw)
    assert list(document) == ["collection", "created_at", "key", "value", "version"]
    assert raw == json.dumps(document, sort_keys=True)
    assert set(document["value"]) == {"__encrypted_data__", "__encryption_version__"}


def test_wrapper_vectors_read_back(redis_server):
    """The shared vectors' stored envelopes (made by cryptography + py-key-value with a fixed IV and
    time), written raw by py-key-value's RedisStore, decrypt to their values in our store."""
    vectors = json.loads((VECTORS / "fernet" / "py_key_value_wrapper_vectors.json").read_text())

    async def write_raw():
        plain = RedisStore(url=redis_server.url)
        for index, vector in enumerate(vectors["wrapper_vectors"]):
            await plain.put(key=f"v{index}", value=vector["stored"], collection="vectors")

    asyncio.run(write_raw())
    sealed = fastmcpauth.open_store(redis_server.url, encryption_keys=[vectors["fernet_key"]])
    for index, vector in enumerate(vectors["wrapper_vectors"]):
        assert sealed.get("vectors", f"v{index}") == vector["value"]
        token = __import__("base64").b64decode(vector["stored"]["__encrypted_data__"])
        assert fastmcpauth.Fernet(vectors["fernet_key"]).decrypt(token).decode() == vector["json_plaintext"]
