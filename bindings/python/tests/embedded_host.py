"""fastmcpauth-host in its `make run` default (the OAuth proxy in front of the embedded development
identity provider) on a free loopback port, for the client tests, and an MCP request with a token."""

import contextlib
import os
import subprocess

import httpx2
from conftest import REPO
from ports import free_port, wait_for_port

HOST = REPO / ".build" / "release" / "fastmcpauth-host"


@contextlib.contextmanager
def embedded_host():
    """Yields the host's base URL; on exit, stops it and checks that no token reached its log."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMCP_SERVER_AUTH")}
    env["FASTMCP_PORT"] = str(port)
    process = subprocess.Popen([str(HOST)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, process=process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        log = process.communicate(timeout=10)[0]
        assert "eyJ" not in log


def post_tools_list(url, token):
    """tools/list on the MCP endpoint with `token` as the bearer token: the HTTP response."""
    return httpx2.post(
        url,
        headers={
            "Authorization": f"Bearer {token}",
            "Accept": "application/json, text/event-stream",
            "Content-Type": "application/json",
        },
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
    )
