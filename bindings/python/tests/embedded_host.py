"""fastmcpauth-host in its `make run` default (the OAuth proxy in front of the embedded development
identity provider) on a free loopback port, for the client tests, and an MCP request with a token."""

import contextlib
import os
import subprocess
import tempfile

import httpx2
from conftest import REPO
from ports import free_port, wait_for_port

HOST = REPO / ".build" / "release" / "fastmcpauth-host"


@contextlib.contextmanager
def embedded_host(logs=None):
    """Yields the host's base URL; on exit, stops it, checks that no token reached its log and
    appends the log to `logs` when given. The log goes to a file: a pipe read only at the end
    could fill up and stall the host."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FASTMCP_SERVER_AUTH")}
    env["FASTMCP_PORT"] = str(port)
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen([str(HOST)], env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, process=process)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=10)
            output.seek(0)
            log = output.read()
            if logs is not None:
                logs.append(log)
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
