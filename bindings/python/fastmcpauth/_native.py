"""Loading libfastmcpauth and declaring its C functions (ctypes)."""

import ctypes
import os
from pathlib import Path

_SONAME = "libfastmcpauth.so.0"


def _load():
    tried = []
    explicit = os.environ.get("FASTMCPAUTH_LIB")
    if explicit:
        try:
            return ctypes.CDLL(explicit)
        except OSError as exc:
            raise ImportError(f"FASTMCPAUTH_LIB={explicit!r} could not be loaded: {exc}") from exc
    try:
        return ctypes.CDLL(_SONAME)
    except OSError as exc:
        tried.append(f"{_SONAME} through the system loader ({exc})")
    repo = Path(__file__).resolve().parents[3]
    for candidate in (repo / ".build" / "release" / "libfastmcpauth.so",
                      repo / ".build" / "debug" / "libfastmcpauth.so"):
        if candidate.exists():
            return ctypes.CDLL(str(candidate))
        tried.append(f"{candidate} (not found)")
    raise ImportError("libfastmcpauth could not be loaded; set FASTMCPAUTH_LIB to its path. Tried: " + "; ".join(tried))


lib = _load()

ERROR_MESSAGE_SIZE = 256


class Error(ctypes.Structure):
    """fma_error: caller-allocated status and message."""

    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * ERROR_MESSAGE_SIZE)]


_c_char_pp = ctypes.POINTER(ctypes.c_void_p)
_handle_p = ctypes.POINTER(ctypes.c_void_p)
_err_p = ctypes.POINTER(Error)


def _ffi(name, argtypes, restype):
    function = getattr(lib, name)
    function.argtypes = argtypes
    function.restype = restype
    return function


version_string = _ffi("fma_version_string", [], ctypes.c_char_p)
status_name = _ffi("fma_status_name", [ctypes.c_int], ctypes.c_char_p)
status_string = _ffi("fma_status_string", [ctypes.c_int], ctypes.c_char_p)
string_free = _ffi("fma_string_free", [ctypes.c_void_p], None)

verifier_new = _ffi("fma_verifier_new", [ctypes.c_char_p, _handle_p, _err_p], ctypes.c_int)
verifier_free = _ffi("fma_verifier_free", [ctypes.c_void_p], None)
verifier_verify = _ffi("fma_verifier_verify", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, _handle_p, _err_p], ctypes.c_int)

access_token_token = _ffi("fma_access_token_token", [ctypes.c_void_p], ctypes.c_char_p)
access_token_client_id = _ffi("fma_access_token_client_id", [ctypes.c_void_p], ctypes.c_char_p)
access_token_subject = _ffi("fma_access_token_subject", [ctypes.c_void_p], ctypes.c_char_p)
access_token_expires_at = _ffi("fma_access_token_expires_at", [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)], ctypes.c_int)
access_token_scope_count = _ffi("fma_access_token_scope_count", [ctypes.c_void_p], ctypes.c_size_t)
access_token_scope = _ffi("fma_access_token_scope", [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_char_p)
access_token_claims_json = _ffi("fma_access_token_claims_json", [ctypes.c_void_p], ctypes.c_char_p)
access_token_free = _ffi("fma_access_token_free", [ctypes.c_void_p], None)

jwt_sign = _ffi("fma_jwt_sign", [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _c_char_pp, _err_p], ctypes.c_int)
jwk_generate = _ffi("fma_jwk_generate", [ctypes.c_char_p, ctypes.c_char_p, _c_char_pp, _err_p], ctypes.c_int)
jwk_public = _ffi("fma_jwk_public", [ctypes.c_char_p, _c_char_pp, _err_p], ctypes.c_int)


def take_string(pointer: ctypes.c_void_p) -> str:
    """Copies a library-owned returned string and releases it with fma_string_free."""
    try:
        return ctypes.string_at(pointer.value).decode("utf-8")
    finally:
        string_free(pointer)
