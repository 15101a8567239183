"""Authenticated MCP requests per second, side by side in one run: fastmcpauth-host against the
same tool served by FastMCP with its own JWTVerifier under uvicorn (one worker each), loaded by
wrk on loopback with one RS256 bearer token. Reports errors and each server's memory after its run.

Run with `make bench` (it builds the host and both venvs first)."""

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jwt as pyjwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bindings" / "python" / "tests"))
from ports import free_port, wait_for_port  # noqa: E402

SECONDS = int(os.environ.get("BENCH_HOST_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_HOST_CONNECTIONS", "16"))
ISSUER, AUDIENCE, SCOPE = "https://bench.example", "bench-mcp", "mcp:tools"
# whoami: the identity tool, the one that reads the access token.
REQUEST = '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"whoami","arguments":{}}}'
WRK_SCRIPT = f"""
wrk.method = "POST"
wrk.body = '{REQUEST}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Accept"] = "application/json, text/event-stream"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BENCH_TOKEN")
"""


def memory_kib(pid):
    """(VmRSS, VmHWM) in KiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


def wrk(url, script, token):
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{SECONDS}s", "-s", script, url],
        env={**os.environ, "BENCH_TOKEN": token},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rate = float(next(line for line in out.splitlines() if line.startswith("Requests/sec:")).split()[1])
    errors = sum(
        int(line.split()[-1]) for line in out.splitlines() if line.strip().startswith("Non-2xx or 3xx responses:")
    )
    socket_errors = next((line.strip() for line in out.splitlines() if line.strip().startswith("Socket errors:")), "")
    return rate, errors, socket_errors


def check_once(url, token):
    """One request by hand, so a misconfigured server fails the benchmark instead of measuring 401s."""
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "POST",
            url,
            "-H",
            f"Authorization: Bearer {token}",
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json, text/event-stream",
            "-d",
            REQUEST,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if out != "200":
        raise SystemExit(f"{url} answered {out} to a valid token")


def run(name, command, env, port, script, token):
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, seconds=60, process=process)
        url = f"http://127.0.0.1:{port}/mcp"
        check_once(url, token)
        wrk(url, script, token)  # warm-up: JWKS/key caches, allocator, interpreter
        rate, errors, socket_errors = wrk(url, script, token)
        rss, peak = memory_kib(process.pid)
        return {
            "name": name,
            "rate": rate,
            "errors": errors,
            "socket_errors": socket_errors,
            "rss_mib": rss / 1024,
            "peak_mib": peak / 1024,
        }
    finally:
        process.terminate()
        process.wait(timeout=10)


def main():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    token = pyjwt.encode(
        {
            "sub": "bench",
            "client_id": "bench-client",
            "iss": ISSUER,
            "aud": AUDIENCE,
            "scope": SCOPE,
            "exp": int(time.time()) + 3600,
        },
        key,
        algorithm="RS256",
    )
    with tempfile.TemporaryDirectory() as directory:
        script = str(Path(directory) / "post.lua")
        Path(script).write_text(WRK_SCRIPT)
        host_port = free_port()
        host_env = {
            **os.environ,
            "FASTMCP_SERVER_AUTH": "jwt",
            "FASTMCP_SERVER_AUTH_JWT_PUBLIC_KEY": pem,
            "FASTMCP_SERVER_AUTH_JWT_ISSUER": ISSUER,
            "FASTMCP_SERVER_AUTH_JWT_AUDIENCE": AUDIENCE,
            "FASTMCP_SERVER_AUTH_JWT_ALGORITHM": "RS256",
            "FASTMCP_SERVER_AUTH_JWT_REQUIRED_SCOPES": SCOPE,
            "FASTMCP_PORT": str(host_port),
        }
        ours = run(
            "fastmcpauth-host",
            [str(REPO / ".build" / "release" / "fastmcpauth-host")],
            host_env,
            host_port,
            script,
            token,
        )
        fastmcp_port = free_port()
        config = {
            "auth": "fastmcp",
            "provider": "jwt",
            "public_key": pem,
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "algorithm": "RS256",
            "required_scopes": [SCOPE],
        }
        theirs = run(
            "FastMCP 4.0.11 + JWTVerifier (uvicorn)",
            [
                str(REPO / ".venv-fastmcp" / "bin" / "python"),
                str(REPO / "bindings" / "python" / "tests" / "fastmcp_server.py"),
                str(fastmcp_port),
                json.dumps(config),
            ],
            dict(os.environ),
            fastmcp_port,
            script,
            token,
        )
    print(f"Authenticated MCP tools/call (whoami), wrk -t1 -c{CONNECTIONS} -d{SECONDS}s, one RS256 token, loopback:")
    print(f"{'server':42} {'req/s':>10} {'errors':>7} {'RSS MiB':>8} {'peak MiB':>9}")
    for result in (ours, theirs):
        print(
            f"{result['name']:42} {result['rate']:>10,.0f} {result['errors']:>7} {result['rss_mib']:>8.1f}"
            f" {result['peak_mib']:>9.1f}" + (f"  ({result['socket_errors']})" if result["socket_errors"] else "")
        )
    print(f"ratio: {ours['rate'] / theirs['rate']:.1f}x FastMCP")


if __name__ == "__main__":
    main()
