"""Side-by-side verify throughput in one run: C ABI, Python binding, PyJWT, joserfc, OpenSSL raw.

Single thread, one token per algorithm, verified-token cache off unless stated. Prints ops/s and
ratios. Run with `make bench` (it builds the library first)."""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bindings" / "python"))

import fastmcpauth  # noqa: E402
import jwt as pyjwt  # noqa: E402
from joserfc import jwt as joserfc_jwt  # noqa: E402
from joserfc.jwk import JWKRegistry  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "2"))
ALGORITHMS = ["RS256", "PS256", "ES256", "EdDSA", "HS256"]
OPENSSL = {
    "RS256": ("rsa2048", "verify"),
    "PS256": ("rsa2048", "verify"),
    "ES256": ("ecdsap256", "verify"),
    "EdDSA": ("ed25519", "verify"),
}


def rate(function, seconds=SECONDS):
    count, start = 0, time.perf_counter()
    end = start + seconds
    while True:
        for _ in range(32):
            function()
        count += 32
        now = time.perf_counter()
        if now >= end:
            return count / (now - start)


def build_c_bench():
    out = REPO / ".build" / "bench_c"
    lib = REPO / ".build" / "release"
    subprocess.run(
        [
            "gcc",
            "-O2",
            "-std=c11",
            "-o",
            str(out),
            str(REPO / "bench" / "bench_c.c"),
            f"-I{REPO / 'include'}",
            f"-L{lib}",
            "-lfastmcpauth",
            f"-Wl,-rpath,{lib}",
        ],
        check=True,
    )
    return out


def c_rates(binary, *args):
    """{name: ops/s} from one bench_c run."""
    out = subprocess.run([str(binary), *args], capture_output=True, text=True, check=True).stdout
    return {line.split()[0]: float(line.split()[1]) for line in out.splitlines()}


def c_rate(binary, alg, cache="0"):
    return c_rates(binary, "verify", alg, str(SECONDS), cache)[alg]


def openssl_rate(alg):
    """OpenSSL's own raw verify rate (openssl speed), or the HMAC rate over a 256-byte input."""
    if alg == "HS256":
        out = subprocess.run(
            ["openssl", "speed", "-seconds", str(int(max(1, SECONDS))), "-bytes", "256", "-hmac", "sha256"],
            capture_output=True,
            text=True,
        ).stdout
        match = re.search(r"^hmac\(sha256\)\s+([\d.]+)k", out, re.M)
        return float(match.group(1)) * 1000 / 256 if match else None
    name, column = OPENSSL[alg]
    out = subprocess.run(
        ["openssl", "speed", "-seconds", str(int(max(1, SECONDS))), name], capture_output=True, text=True
    ).stdout
    for line in out.splitlines():
        parts = line.split()
        if name == "rsa2048" and line.startswith("rsa 2048 bits"):
            return float(parts[-1])  # sign/s verify/s: verify is last
        if name == "ecdsap256" and "nistp256" in line and "ecdsa" in line:
            return float(parts[-1])
        if name == "ed25519" and "Ed25519" in line and "bits" in line:
            return float(parts[-1])
    return None


def main():
    binary = build_c_bench()
    print(
        f"{'alg':6} {'openssl':>10} {'C ABI':>10} {'python':>10} {'PyJWT':>10} {'joserfc':>10}"
        "   C/openssl  py/openssl  PyJWT/openssl  joserfc/openssl"
    )
    for alg in ALGORITHMS:
        private = fastmcpauth.generate_key(alg)
        verification = private if alg.startswith("HS") else fastmcpauth.public_jwk(private)
        token = fastmcpauth.sign_jwt({"sub": "bench", "scope": "read", "exp": int(time.time()) + 3600}, private, alg)
        ours = fastmcpauth.JWTVerifier(jwks={"keys": [verification]}, algorithms=[alg], cache_size=0)
        pyjwt_key = pyjwt.PyJWK(verification, algorithm=alg).key
        joserfc_key = JWKRegistry.import_key(verification)
        rates = {
            "openssl": openssl_rate(alg),
            "c": c_rate(binary, alg),
            "python": rate(lambda: ours.verify(token)),
            "pyjwt": rate(lambda: pyjwt.decode(token, pyjwt_key, algorithms=[alg])),
            "joserfc": rate(lambda: joserfc_jwt.decode(token, joserfc_key, algorithms=[alg])),
        }
        base = rates["openssl"]

        def ratio(name):
            return f"{rates[name] / base:10.0%}" if base else "       n/a"

        print(
            f"{alg:6} {base or 0:10.0f} {rates['c']:10.0f} {rates['python']:10.0f} {rates['pyjwt']:10.0f}"
            f" {rates['joserfc']:10.0f}"
            f"  {ratio('c')}  {ratio('python')}  {ratio('pyjwt'):>13}  {ratio('joserfc'):>15}"
        )

    # Repeated verification of one token with the verified-token cache on, from Python.
    private = fastmcpauth.generate_key("RS256")
    token = fastmcpauth.sign_jwt({"sub": "bench", "exp": int(time.time()) + 3600}, private, "RS256")
    cached = fastmcpauth.JWTVerifier(
        jwks={"keys": [fastmcpauth.public_jwk(private)]}, algorithms=["RS256"], cache_size=10000
    )
    pyjwt_key = pyjwt.PyJWK(fastmcpauth.public_jwk(private), algorithm="RS256").key
    cached_rate = rate(lambda: cached.verify(token))
    pyjwt_rate = rate(lambda: pyjwt.decode(token, pyjwt_key, algorithms=["RS256"]))
    print(
        f"\nRS256, one token repeated, verified-token cache on: python {cached_rate:.0f}/s, PyJWT {pyjwt_rate:.0f}/s "
        f"= {cached_rate / pyjwt_rate:.1f}x PyJWT; C ABI {c_rate(binary, 'RS256', '10000'):.0f}/s"
    )


def fernet_and_store(binary):
    import asyncio
    import shutil
    import tempfile

    from cryptography.fernet import Fernet as CryptoFernet
    from key_value.aio.stores.redis import RedisStore
    from key_value.aio.wrappers.encryption import FernetEncryptionWrapper

    sys.path.insert(0, str(REPO / "bindings" / "python" / "tests"))
    from redis_server import RedisServer

    print("\nFernet, 1 KiB, single thread (ops/s):")
    key = CryptoFernet.generate_key()
    data = b"x" * 1024
    theirs, ours = CryptoFernet(key), fastmcpauth.Fernet(key)
    token = theirs.encrypt(data)
    c = c_rates(binary, "fernet", str(SECONDS))
    rows = {
        "encrypt": (c["fernet_encrypt"], rate(lambda: ours.encrypt(data)), rate(lambda: theirs.encrypt(data))),
        "decrypt": (c["fernet_decrypt"], rate(lambda: ours.decrypt(token)), rate(lambda: theirs.decrypt(token))),
    }
    print(f"{'':8} {'C ABI':>10} {'python':>10} {'cryptography':>13}   C/cryptography")
    for name, (c_ops, py_ops, crypto_ops) in rows.items():
        print(f"{name:8} {c_ops:10.0f} {py_ops:10.0f} {crypto_ops:13.0f}   {c_ops / crypto_ops:13.1f}x")

    print("\nStore, encrypted, one put + one get per operation, one connection (ops/s):")
    server = RedisServer(appendfsync="everysec")
    directory = tempfile.mkdtemp(prefix="fma-bench-")
    try:
        for name, url in [
            ("memory", "memory://"),
            ("sqlite", f"sqlite:///{directory}/bench.db"),
            ("redis", server.url),
        ]:
            print(f"{name:8} C ABI {c_rates(binary, 'store', url, str(SECONDS))['store']:10.0f}")
        store = fastmcpauth.open_store(server.url, encryption_keys=[key])
        value = {"access_token": "0123456789abcdef0123456789abcdef", "expires_in": 3600, "token_type": "Bearer"}

        def ours_put_get():
            store.put("bench", "k", value, ttl=300)
            store.get("bench", "k")

        print(f"redis    python {rate(ours_put_get):9.0f}")

        async def pkv_rate():
            pkv = FernetEncryptionWrapper(RedisStore(url=server.url), fernet=CryptoFernet(key))
            count, start = 0, time.perf_counter()
            while time.perf_counter() - start < SECONDS:
                await pkv.put(key="k", value=value, collection="bench", ttl=300)
                await pkv.get(key="k", collection="bench")
                count += 1
            return count / (time.perf_counter() - start)

        print(f"redis    py-key-value-aio {asyncio.run(pkv_rate()):.0f}")
        out = subprocess.run(
            ["redis-benchmark", "-p", str(server.port), "-c", "1", "-n", "20000", "-t", "set,get", "-q"],
            capture_output=True,
            text=True,
        ).stdout
        print("redis-benchmark -c 1 (requests/s; one put+get is two round trips):")
        for line in out.replace("\r", "\n").splitlines():
            if "requests per second" in line:
                print("   ", line.strip())
    finally:
        server.close()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
    fernet_and_store(build_c_bench())
