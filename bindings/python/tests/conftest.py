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
def oidc_provider(tmp_path_factory):
    """A real OpenID provider (oidc-provider-mock) on a free loopback port: the upstream IdP. Its
    log goes to a file (a pipe nobody reads would stall it once full), shown if it fails to start."""
    from ports import free_port, wait_for_port

    port = free_port()
    log_path = tmp_path_factory.mktemp("oidc-provider") / "log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "oidc_provider_mock", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process=process)
    except RuntimeError as error:
        process.kill()
        raise RuntimeError(f"{error}; its log: {log_path.read_text()[-2000:]}") from None
    yield f"http://localhost:{port}"
    process.terminate()
    process.wait(timeout=10)
