"""The host against slow and greedy clients, over real sockets: header, body and idle timeouts,
a connection cap, and request bodies over the cap (413)."""

import os
import socket
import subprocess
import time

import httpx2
import pytest
from ports import free_port, wait_for_port
from test_proxy_e2e import HOST


@pytest.fixture(scope="module")
def host():
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMCP_SERVER_AUTH")}
    env["FASTMCP_PORT"] = str(port)
    process = subprocess.Popen(
        [
            str(HOST),
            "--header-timeout",
            "1",
            "--body-timeout",
            "1.5",
            "--idle-timeout",
            "2",
            "--max-connections",
            "20",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for_port(port, process=process)
    yield port, process
    process.terminate()
    log = process.communicate(timeout=10)[0]
    assert "POST /register 413" in log, "a refused body is in the request log too"


def closed_within(sock, seconds):
    """Seconds until the peer closed the connection (reading and discarding), or None."""
    sock.settimeout(0.2)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - started
    return None


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def test_a_request_head_that_never_ends_is_cut_after_the_header_timeout(host):
    port, _ = host
    sock = connect(port)
    sock.sendall(b"GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
    elapsed = closed_within(sock, 6)
    assert elapsed is not None and 0.7 < elapsed < 2.5, elapsed


def test_a_body_that_never_ends_is_cut_after_the_body_timeout(host):
    port, _ = host
    sock = connect(port)
    sock.sendall(b'POST /register HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n{"redirect')
    elapsed = closed_within(sock, 6)
    assert elapsed is not None and 1.2 < elapsed < 3, elapsed


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(host):
    port, _ = host
    sock = connect(port)
    sock.sendall(b"GET /.well-known/oauth-authorization-server HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    # The header timeout (1 s) does not apply between requests: only the idle timeout (2 s).
    elapsed = closed_within(sock, 6)
    assert elapsed is not None and 1.5 < elapsed < 3.5, elapsed


def test_a_slow_but_steady_client_within_the_limits_is_served(host):
    port, _ = host
    sock = connect(port)
    for chunk in (b"GET /.well-known/oauth-authorization-server HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"\r\n"):
        sock.sendall(chunk)
        time.sleep(0.3)
    sock.settimeout(5)
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_connections_over_the_cap_are_closed_at_once(host):
    port, _ = host
    time.sleep(2.5)  # the earlier tests' connections have timed out
    held = [connect(port) for _ in range(20)]
    time.sleep(0.3)
    extra = connect(port)
    assert closed_within(extra, 1) is not None, "the 21st connection is closed"
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 5
    while True:  # room again once they are gone
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server").status_code == 200:
                break
        except httpx2.HTTPError:
            pass
        assert time.monotonic() < deadline, "no room after the held connections closed"
        time.sleep(0.1)


def test_a_body_over_the_cap_is_413_and_logged(host):
    port, process = host
    response = httpx2.post(f"http://127.0.0.1:{port}/register", content=b"x" * (2 << 20))
    assert response.status_code == 413 and response.json()["error"] == "invalid_request"
    assert httpx2.get(f"http://127.0.0.1:{port}/.well-known/oauth-authorization-server").status_code == 200


def test_metadata_documents_are_never_fetched_through_an_environment_proxy():
    """The host runs with every proxy variable pointing at a dead port: a client metadata
    document is still fetched (directly), so the consent page names its verified host."""
    import base64
    import hashlib
    import re
    import secrets
    from urllib.parse import urlencode

    from json_server import JSONServer

    documents = {}
    server = JSONServer({"/client.json": lambda: documents["client"]}, headers={"Cache-Control": "max-age=60"})
    client_id = server.url + "/client.json"
    documents["client"] = {"client_id": client_id, "client_name": "Doc", "redirect_uris": ["http://127.0.0.1:5/cb"]}
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMCP_SERVER_AUTH")}
    env["FASTMCP_PORT"] = str(port)
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env[name] = "http://127.0.0.1:9"
    process = subprocess.Popen(
        [str(HOST), "--testing"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        wait_for_port(port, process=process)
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": "http://127.0.0.1:5/cb",
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        browser = httpx2.Client(follow_redirects=False)
        authorize = browser.get(f"http://127.0.0.1:{port}/authorize?{query}")
        assert authorize.status_code == 302, authorize.text
        page = browser.get(authorize.headers["location"])
        assert page.status_code == 200
        assert re.search(r"Verified: its metadata document is published by <strong>127\.0\.0\.1</strong>", page.text)
    finally:
        process.terminate()
        process.communicate(timeout=10)
        server.close()
