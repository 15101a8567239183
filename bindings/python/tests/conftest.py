import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(HERE.parent))
VECTORS = Path(os.environ.get("FASTMCPAUTH_VECTORS", REPO / "Tests" / "vectors"))
LIBRARY = REPO / ".build" / "release" / "libfastmcpauth.so"


@pytest.fixture(scope="session")
def oidc_provider():
    """A real OpenID provider (oidc-provider-mock) on a free loopback port: the upstream IdP."""
    from ports import free_port, wait_for_port

    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for_port(port, process=process)
    yield f"http://localhost:{port}"
    process.terminate()
    process.communicate(timeout=10)
