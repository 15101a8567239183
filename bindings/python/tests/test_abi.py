"""The boundary between the header and the Python package: every ctypes declaration matches the
header's prototype, the one version agrees everywhere, and the README documents every status."""

import ctypes
import re

import fastmcpauth
import fastmcpauth._native as native
import pytest
from conftest import REPO

HEADER = REPO / "include" / "fastmcpauth.h"
VERSION = (REPO / "VERSION").read_text().strip()


def prototypes():
    """{name: (return type, [parameter types])} parsed from the header, comments removed."""
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    text = re.sub(r"^\s*#.*$", "", text, flags=re.M).replace("FMA_WARN_UNUSED_RESULT", "")
    found = {}
    for match in re.finditer(r"([A-Za-z_][\w\s\*]*?)\b(fma_\w+)\s*\(([^)]*)\)\s*;", text):
        returns, name, params = match.groups()
        parameters = []
        if params.strip() != "void":
            for param in params.split(","):
                tokens = re.findall(r"\w+|\*", param)
                # Every parameter in the header is named: the last token is the name.
                assert len(tokens) >= 2 and tokens[-1] != "*", f"{name}: unnamed parameter {param!r}"
                parameters.append(spelled(tokens[:-1]))
        found[name] = (spelled(re.findall(r"\w+|\*", returns)), parameters)
    return found


def spelled(tokens):
    """A C type in one spelling: words separated by spaces, stars attached ("const char* const*")."""
    text = ""
    for token in tokens:
        text += token if token == "*" else (" " if text else "") + token
    return text


# The ctypes each C type may be declared as (a handle is any `fma_x *`).
HANDLE = object()
ACCEPTED = {
    "void": {None},
    "int": {ctypes.c_int},
    "unsigned int": {ctypes.c_uint},
    "size_t": {ctypes.c_size_t},
    "double": {ctypes.c_double},
    "int64_t": {ctypes.c_int64},
    "fma_status": {ctypes.c_int},
    "const char*": {ctypes.c_char_p},
    "char*": {ctypes.c_void_p},
    "char**": {ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_char_p)},
    "const char* const*": {ctypes.POINTER(ctypes.c_char_p)},
    "const uint8_t*": {ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_uint8)},
    "uint8_t*": {ctypes.POINTER(ctypes.c_uint8), ctypes.c_void_p},
    "uint8_t**": {ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8))},
    "int*": {ctypes.POINTER(ctypes.c_int)},
    "int64_t*": {ctypes.POINTER(ctypes.c_int64)},
    "size_t*": {ctypes.POINTER(ctypes.c_size_t)},
    "double*": {ctypes.POINTER(ctypes.c_double)},
    "const double*": {ctypes.POINTER(ctypes.c_double)},
    "fma_error*": {ctypes.POINTER(native.Error)},
    "void*": {ctypes.c_void_p},
    "fma_open_url_fn": {native.OPEN_URL_FN},
}


def accepted(c_type):
    if c_type in ACCEPTED:
        return ACCEPTED[c_type]
    if re.fullmatch(r"(const )?fma_\w+\*", c_type):
        return {ctypes.c_void_p}
    if re.fullmatch(r"fma_\w+\*\*", c_type):
        return {ctypes.POINTER(ctypes.c_void_p)}
    raise AssertionError(f"the test does not know the C type {c_type!r}")


def declared_functions():
    return {
        name: function
        for name in dir(native)
        if isinstance(function := getattr(native, name), ctypes._CFuncPtr) and function.__name__.startswith("fma_")
    }


def test_the_parser_reads_every_prototype():
    names = set(prototypes())
    text = re.sub(r"/\*.*?\*/", "", HEADER.read_text(), flags=re.S)
    assert names == set(re.findall(r"\b(fma_[a-z0-9_]+)\s*\(", text))
    assert prototypes()["fma_store_put"] == (
        "fma_status",
        ["fma_store*", "const char*", "const char*", "const char*", "const double*", "fma_error*"],
    )


def test_every_header_function_is_declared_in_python():
    declared = {function.__name__ for function in declared_functions().values()}
    assert set(prototypes()) - declared == set()


@pytest.mark.parametrize("name", sorted(prototypes()))
def test_ctypes_declaration_matches_the_header(name):
    returns, parameters = prototypes()[name]
    functions = [f for f in declared_functions().values() if f.__name__ == name]
    assert functions, f"{name} is not declared in fastmcpauth._native"
    function = functions[0]
    assert function.restype in accepted(returns), f"{name}: restype {function.restype} for C {returns}"
    argtypes = list(function.argtypes or [])
    assert len(argtypes) == len(parameters), f"{name}: {len(argtypes)} argtypes for {len(parameters)} parameters"
    for index, (ctype, c_type) in enumerate(zip(argtypes, parameters)):
        assert ctype in accepted(c_type), f"{name}: argument {index} is {ctype}, the header says {c_type}"


def test_error_struct_layout_matches_the_header():
    text = HEADER.read_text()
    size = int(re.search(r"#define FMA_ERROR_MESSAGE_SIZE (\d+)", text).group(1))
    assert native.ERROR_MESSAGE_SIZE == size
    assert native.Error.status.offset == 0 and native.Error.status.size == 4
    assert native.Error.message.offset == 4 and ctypes.sizeof(native.Error) == 4 + size


def test_one_version_everywhere():
    text = HEADER.read_text()
    major, minor, patch = (
        int(re.search(rf"#define FMA_VERSION_{n} (\d+)", text).group(1)) for n in ("MAJOR", "MINOR", "PATCH")
    )
    assert f"{major}.{minor}.{patch}" == VERSION
    assert re.search(r'#define FMA_VERSION_STRING "([^"]+)"', text).group(1) == VERSION
    assert fastmcpauth.library_version() == VERSION
    assert fastmcpauth.library_version_number() == (major << 16) | (minor << 8) | patch
    assert fastmcpauth.__version__ == VERSION
    makefile = (REPO / "Makefile").read_text()
    assert (
        "VERSION := $(shell cat VERSION)" in makefile
        and "@VERSION@" in (REPO / "pkgconfig" / "fastmcpauth.pc.in").read_text()
    )


def test_status_names_match_the_header_enum():
    text = HEADER.read_text()
    entries = re.findall(r"(FMA_(?:OK|E_[A-Z0-9_]+)) = (\d+),?\s*(?:/\*\s*([a-z0-9_]+))?", text)
    enum = text.split("typedef enum fma_status {", 1)[1].split("} fma_status;", 1)[0]
    assert len(entries) == enum.count(" = ")
    for name, number, code in entries:
        expected = "ok" if name == "FMA_OK" else code
        assert native.status_name(int(number)).decode() == expected, name


def test_readme_error_table_lists_every_status():
    text = HEADER.read_text()
    names = [code for _, code in re.findall(r"FMA_E_[A-Z0-9_]+ = (\d+),?\s*/\*\s*([a-z0-9_]+)", text)]
    readme = (REPO / "README.md").read_text()
    table = readme.split("## Error codes", 1)[1].split("\n## ", 1)[0]
    missing = [name for name in names if f"`{name}`" not in table]
    assert missing == []
