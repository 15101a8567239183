"""A soak of fastmcpauth-host: two wrk loads at once for BENCH_SOAK_SECONDS (default 120), one with a
valid RS256 token (every answer must be 200) and one with invalid tokens (forged signature, expired,
garbage: every answer must be 401), printing the host's RSS every 10 s. Expected: a flat RSS after
warm-up and zero errors (unexpected statuses plus socket errors). Exits non-zero on any error.

Run with `make bench` (it builds the host and the venvs first)."""

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bindings" / "python" / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_host import AUDIENCE, ISSUER, REQUEST, SCOPE, memory_kib  # noqa: E402
from ports import free_port, wait_for_port  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SOAK_SECONDS", "120"))
CONNECTIONS = int(os.environ.get("BENCH_SOAK_CONNECTIONS", "8"))

# Each thread counts answers whose status is not the expected one; done() sums them.
WRK_SCRIPT = f"""
local tokens = {{}}
for token in string.gmatch(os.getenv("SOAK_TOKENS"), "[^ ]+") do tokens[#tokens + 1] = token end
local expected = tonumber(os.getenv("SOAK_EXPECT"))
local threads = {{}}
function setup(thread) threads[#threads + 1] = thread end
function init(args) unexpected = 0; counter = 0 end
function request()
  counter = counter + 1
  local headers = {{}}
  headers["Content-Type"] = "application/json"
  headers["Accept"] = "application/json, text/event-stream"
  headers["Authorization"] = "Bearer " .. tokens[(counter % #tokens) + 1]
  return wrk.format("POST", nil, headers, '{REQUEST}')
end
function response(status, headers, body)
  if status ~= expected then unexpected = unexpected + 1 end
end
function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do total = total + thread:get("unexpected") end
  local e = summary.errors
  io.write(string.format("SOAK requests=%d unexpected=%d connect=%d read=%d write=%d timeout=%d\\n",
    summary.requests, total, e.connect, e.read, e.write, e.timeout))
end
"""


def main():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    claims = {"sub": "bench", "iss": ISSUER, "aud": AUDIENCE, "scope": SCOPE, "exp": int(time.time()) + 3600}
    valid = pyjwt.encode(claims, key, algorithm="RS256")
    invalid = [
        pyjwt.encode(claims, stranger, algorithm="RS256"),  # forged signature
        pyjwt.encode({**claims, "exp": int(time.time()) - 60}, key, algorithm="RS256"),  # expired
        pyjwt.encode({**claims, "aud": "someone-else"}, key, algorithm="RS256"),  # wrong audience
        "not.a.token",
        valid[:-8] + "AAAAAAAA",  # damaged signature
    ]
    port = free_port()
    env = {
        **os.environ,
        "FASTMCP_SERVER_AUTH": "jwt",
        "FASTMCP_SERVER_AUTH_JWT_PUBLIC_KEY": pem,
        "FASTMCP_SERVER_AUTH_JWT_ISSUER": ISSUER,
        "FASTMCP_SERVER_AUTH_JWT_AUDIENCE": AUDIENCE,
        "FASTMCP_SERVER_AUTH_JWT_ALGORITHM": "RS256",
        "FASTMCP_SERVER_AUTH_JWT_REQUIRED_SCOPES": SCOPE,
        "FASTMCP_PORT": str(port),
    }
    host = subprocess.Popen(
        [str(REPO / ".build" / "release" / "fastmcpauth-host")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    failures = []
    try:
        wait_for_port(port, seconds=60, process=host)
        url = f"http://127.0.0.1:{port}/mcp"
        with tempfile.TemporaryDirectory() as directory:
            script = Path(directory) / "soak.lua"
            script.write_text(WRK_SCRIPT)
            loads = {}
            for name, tokens, expect in (("valid", [valid], 200), ("invalid", invalid, 401)):
                loads[name] = subprocess.Popen(
                    ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "--timeout", "10s", "-s", str(script), url],
                    env={**os.environ, "SOAK_TOKENS": " ".join(tokens), "SOAK_EXPECT": str(expect)},
                    stdout=subprocess.PIPE,
                    text=True,
                )
            samples = []
            stop = threading.Event()

            def sample():
                start = time.monotonic()
                while not stop.wait(10):
                    samples.append((time.monotonic() - start, memory_kib(host.pid)[0]))
                    print(f"  t={samples[-1][0]:5.0f}s  RSS {samples[-1][1] / 1024:7.1f} MiB", flush=True)

            print(f"Soak: fastmcpauth-host, {SECONDS} s, valid and invalid tokens, {CONNECTIONS} connections each")
            sampler = threading.Thread(target=sample)
            sampler.start()
            outputs = {name: load.communicate(timeout=SECONDS + 60)[0] for name, load in loads.items()}
            stop.set()
            sampler.join()
        for name, out in outputs.items():
            line = next((line for line in out.splitlines() if line.startswith("SOAK ")), None)
            if line is None:
                failures.append(f"{name}: wrk printed no summary")
                continue
            fields = dict(item.split("=") for item in line.split()[1:])
            errors = sum(int(fields[k]) for k in ("unexpected", "connect", "read", "write", "timeout"))
            print(f"  {name:8} {int(fields['requests']):>10,} requests, {errors} errors ({line[5:]})")
            if errors:
                failures.append(f"{name}: {errors} errors")
        if host.poll() is not None:
            failures.append(f"the host exited with {host.returncode}")
        # Flat: after the first third (warm-up), RSS grows less than 10 % between first and last sample.
        steady = [rss for t, rss in samples if t > SECONDS / 3]
        if len(steady) >= 2:
            growth = (steady[-1] - steady[0]) / steady[0]
            print(f"  RSS after warm-up: {steady[0] / 1024:.1f} -> {steady[-1] / 1024:.1f} MiB ({growth:+.1%})")
            if growth > 0.10:
                failures.append(f"RSS grew {growth:+.1%} after warm-up")
    finally:
        host.terminate()
        host.wait(timeout=10)
    if failures:
        raise SystemExit("soak failed: " + "; ".join(failures))
    print("soak: zero errors, flat RSS")


if __name__ == "__main__":
    main()
