"""The shared library is self-contained: no Swift runtime to load, only the header's symbols."""

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import LIBRARY, REPO

HEADER = REPO / "include" / "fastmcpauth.h"


def header_functions():
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    return set(re.findall(r"\b(fma_[a-z0-9_]+)\s*\(", text))


def test_ldd_names_no_swift_library():
    out = subprocess.run(["ldd", str(LIBRARY)], capture_output=True, text=True, check=True).stdout
    assert "swift" not in out.lower() and "foundation" not in out.lower() and "dispatch" not in out.lower(), out
    assert "not found" not in out


def test_exports_exactly_the_header_functions():
    out = subprocess.run(
        ["nm", "-D", "--defined-only", str(LIBRARY)], capture_output=True, text=True, check=True
    ).stdout
    exported = {line.split()[-1] for line in out.splitlines() if line.strip()}
    assert exported == header_functions()


def test_soname_and_link():
    out = subprocess.run(["readelf", "-d", str(LIBRARY)], capture_output=True, text=True, check=True).stdout
    assert "Library soname: [libfastmcpauth.so.0]" in out
    link = LIBRARY.parent / "libfastmcpauth.so.0"
    assert link.is_symlink() and link.resolve() == LIBRARY.resolve()


def _clean_environment():
    env = {}
    for name, value in os.environ.items():
        parts = [p for p in value.split(os.pathsep) if "/opt/swift" not in p]
        env[name] = os.pathsep.join(parts)
    env["LD_LIBRARY_PATH"] = ""
    assert not any("/opt/swift" in v for v in env.values())
    return env


SCRIPT = """
import fastmcpauth, time
k = fastmcpauth.generate_key("EdDSA")
t = fastmcpauth.sign_jwt({"sub": "ok", "exp": int(time.time()) + 60}, k, "EdDSA")
print(fastmcpauth.JWTVerifier(jwks={"keys": [fastmcpauth.public_jwk(k)]}, algorithm="EdDSA").verify(t).subject)
"""


@pytest.mark.parametrize("explicit", [True, False])
def test_python_loads_without_swift_on_any_path(explicit):
    env = _clean_environment()
    env["PYTHONPATH"] = str(REPO / "bindings" / "python")
    if explicit:
        env["FASTMCPAUTH_LIB"] = str(LIBRARY)
    else:
        env.pop("FASTMCPAUTH_LIB", None)
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_import_error_names_what_it_tried(tmp_path):
    env = _clean_environment()
    env["PYTHONPATH"] = str(REPO / "bindings" / "python")
    env["FASTMCPAUTH_LIB"] = str(tmp_path / "missing.so")
    result = subprocess.run([sys.executable, "-c", "import fastmcpauth"], capture_output=True, text=True, env=env)
    assert result.returncode != 0
    assert "ImportError" in result.stderr and "missing.so" in result.stderr


def test_pip_installs_the_package_with_its_integrations(tmp_path):
    # The venv's own setuptools builds it (no index needed) from a copy, so the checkout stays
    # clean; the wheel must carry every module.
    source_copy = tmp_path / "src"
    shutil.copytree(
        REPO / "bindings" / "python",
        source_copy,
        ignore=shutil.ignore_patterns("tests", "build", "*.egg-info", "__pycache__"),
    )
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(source_copy),
        ],
        check=True,
        capture_output=True,
    )
    installed = {p.relative_to(target).as_posix() for p in (target / "fastmcpauth").rglob("*.py")}
    source = {
        p.relative_to(REPO / "bindings" / "python").as_posix()
        for p in (REPO / "bindings" / "python" / "fastmcpauth").rglob("*.py")
    }
    assert installed == source and "fastmcpauth/integrations/fastmcp.py" in installed
    env = {**os.environ, "FASTMCPAUTH_LIB": str(LIBRARY), "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", "import fastmcpauth; print(fastmcpauth.library_version())"],
        env=env,
        cwd=target,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    version = (REPO / "VERSION").read_text().strip()
    assert out.strip() == version
    # The wheel's metadata: the one version, the licence by its SPDX name, the licence text.
    (dist_info,) = target.glob("fastmcpauth-*.dist-info")
    metadata = (dist_info / "METADATA").read_text()
    assert f"Version: {version}\n" in metadata and "License-Expression: Apache-2.0\n" in metadata
    assert (dist_info / "licenses" / "LICENSE").read_text() == (REPO / "LICENSE").read_text()
