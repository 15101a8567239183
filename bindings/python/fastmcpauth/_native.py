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
    for candidate in (
        repo / ".build" / "release" / "libfastmcpauth.so",
        repo / ".build" / "debug" / "libfastmcpauth.so",
    ):
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
version_number = _ffi("fma_version_number", [], ctypes.c_uint)
status_name = _ffi("fma_status_name", [ctypes.c_int], ctypes.c_char_p)
status_string = _ffi("fma_status_string", [ctypes.c_int], ctypes.c_char_p)
string_free = _ffi("fma_string_free", [ctypes.c_void_p], None)

verifier_new = _ffi("fma_verifier_new", [ctypes.c_char_p, _handle_p, _err_p], ctypes.c_int)
verifier_free = _ffi("fma_verifier_free", [ctypes.c_void_p], None)
verifier_verify = _ffi(
    "fma_verifier_verify", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, _handle_p, _err_p], ctypes.c_int
)

access_token_token = _ffi("fma_access_token_token", [ctypes.c_void_p], ctypes.c_char_p)
access_token_client_id = _ffi("fma_access_token_client_id", [ctypes.c_void_p], ctypes.c_char_p)
access_token_subject = _ffi("fma_access_token_subject", [ctypes.c_void_p], ctypes.c_char_p)
access_token_expires_at = _ffi(
    "fma_access_token_expires_at", [ctypes.c_void_p, ctypes.POINTER(ctypes.c_int64)], ctypes.c_int
)
access_token_scope_count = _ffi("fma_access_token_scope_count", [ctypes.c_void_p], ctypes.c_size_t)
access_token_scope = _ffi("fma_access_token_scope", [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_char_p)
access_token_claims_json = _ffi("fma_access_token_claims_json", [ctypes.c_void_p], ctypes.c_char_p)
access_token_free = _ffi("fma_access_token_free", [ctypes.c_void_p], None)

jwt_sign = _ffi(
    "fma_jwt_sign",
    [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _c_char_pp, _err_p],
    ctypes.c_int,
)
jwk_generate = _ffi("fma_jwk_generate", [ctypes.c_char_p, ctypes.c_char_p, _c_char_pp, _err_p], ctypes.c_int)
jwk_public = _ffi("fma_jwk_public", [ctypes.c_char_p, _c_char_pp, _err_p], ctypes.c_int)


def take_string(pointer: ctypes.c_void_p) -> str:
    """Copies a library-owned returned string and releases it with fma_string_free."""
    try:
        return ctypes.string_at(pointer.value).decode("utf-8")
    finally:
        string_free(pointer)


_size_p = ctypes.POINTER(ctypes.c_size_t)
_int_p = ctypes.POINTER(ctypes.c_int)
_double_p = ctypes.POINTER(ctypes.c_double)
_bytes_pp = ctypes.POINTER(ctypes.POINTER(ctypes.c_uint8))

TIME_NOW = -(2**63)
NO_TTL = -1

fernet_new = _ffi("fma_fernet_new", [ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t, _handle_p, _err_p], ctypes.c_int)
fernet_free = _ffi("fma_fernet_free", [ctypes.c_void_p], None)
fernet_generate_key = _ffi("fma_fernet_generate_key", [_c_char_pp, _err_p], ctypes.c_int)
fernet_encrypt = _ffi(
    "fma_fernet_encrypt",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int64, _c_char_pp, _err_p],
    ctypes.c_int,
)
fernet_decrypt = _ffi(
    "fma_fernet_decrypt",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64, _bytes_pp, _size_p, _err_p],
    ctypes.c_int,
)
fernet_rotate = _ffi("fma_fernet_rotate", [ctypes.c_void_p, ctypes.c_char_p, _c_char_pp, _err_p], ctypes.c_int)
fernet_extract_timestamp = _ffi(
    "fma_fernet_extract_timestamp",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64), _err_p],
    ctypes.c_int,
)
bytes_free = _ffi("fma_bytes_free", [ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t], None)

store_new = _ffi("fma_store_new", [ctypes.c_char_p, ctypes.c_char_p, _handle_p, _err_p], ctypes.c_int)
store_free = _ffi("fma_store_free", [ctypes.c_void_p], None)
store_put = _ffi(
    "fma_store_put",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _double_p, _err_p],
    ctypes.c_int,
)
store_put_if_absent = _ffi(
    "fma_store_put_if_absent",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _double_p, _int_p, _err_p],
    ctypes.c_int,
)
store_get = _ffi("fma_store_get", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _c_char_pp, _err_p], ctypes.c_int)
store_take = _ffi(
    "fma_store_take", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _c_char_pp, _err_p], ctypes.c_int
)
store_delete = _ffi(
    "fma_store_delete", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _int_p, _err_p], ctypes.c_int
)
store_compare_and_delete = _ffi(
    "fma_store_compare_and_delete",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _int_p, _err_p],
    ctypes.c_int,
)
store_compare_and_swap = _ffi(
    "fma_store_compare_and_swap",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _double_p, _int_p, _err_p],
    ctypes.c_int,
)
store_increment = _ffi(
    "fma_store_increment",
    [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_int64,
        _double_p,
        ctypes.POINTER(ctypes.c_int64),
        _err_p,
    ],
    ctypes.c_int,
)
store_ttl = _ffi(
    "fma_store_ttl", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _int_p, _double_p, _err_p], ctypes.c_int
)
store_keys = _ffi("fma_store_keys", [ctypes.c_void_p, ctypes.c_char_p, _c_char_pp, _err_p], ctypes.c_int)
store_delete_collection = _ffi(
    "fma_store_delete_collection", [ctypes.c_void_p, ctypes.c_char_p, _size_p, _err_p], ctypes.c_int
)
store_acquire_lease = _ffi(
    "fma_store_acquire_lease", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_double, _c_char_pp, _err_p], ctypes.c_int
)
store_release_lease = _ffi(
    "fma_store_release_lease", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _int_p, _err_p], ctypes.c_int
)


def raise_for(status: int, err: Error, kind):
    """Raises `kind(code, message)` for a failed call."""
    raise kind(status_name(status).decode(), err.message.decode("utf-8", "replace"))


auth_new = _ffi("fma_auth_new", [ctypes.c_char_p, _handle_p, _err_p], ctypes.c_int)
auth_new_from_env = _ffi("fma_auth_new_from_env", [ctypes.c_char_p, ctypes.c_char_p, _handle_p, _err_p], ctypes.c_int)
auth_free = _ffi("fma_auth_free", [ctypes.c_void_p], None)
auth_describe = _ffi("fma_auth_describe", [ctypes.c_void_p, _c_char_pp, _err_p], ctypes.c_int)
auth_handle = _ffi(
    "fma_auth_handle",
    [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        _handle_p,
        _err_p,
    ],
    ctypes.c_int,
)
auth_authenticate = _ffi(
    "fma_auth_authenticate",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _handle_p, _handle_p, _err_p],
    ctypes.c_int,
)
response_status = _ffi("fma_response_status", [ctypes.c_void_p], ctypes.c_int)
response_header_count = _ffi("fma_response_header_count", [ctypes.c_void_p], ctypes.c_size_t)
response_header_name = _ffi("fma_response_header_name", [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_char_p)
response_header_value = _ffi("fma_response_header_value", [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_char_p)
response_header = _ffi("fma_response_header", [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_char_p)
response_body = _ffi("fma_response_body", [ctypes.c_void_p, _size_p], ctypes.c_void_p)
response_free = _ffi("fma_response_free", [ctypes.c_void_p], None)
