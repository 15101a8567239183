"""Loading libfastmcpauth and declaring its C functions (ctypes)."""

import ctypes
import json
import os
import re
from pathlib import Path
from typing import Optional

from .errors import STATUS_EXCEPTIONS, FastMCPAuthError, InvalidArgument, exception_for

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


# The restype of every function that returns an fma_status (declared as a C int); their last
# parameter is the fma_error the library fills in.
STATUS = object()


def _raise_for_status(status, function, arguments):
    """errcheck of every status-returning function: FMA_OK passes; any other status raises the
    one class errors.STATUS_EXCEPTIONS names for it, with the library's message."""
    if status == 0:
        return status
    err = arguments[-1]
    err = getattr(err, "_obj", err)  # ctypes.byref(err) or err itself
    message = err.message.decode("utf-8", "replace") if isinstance(err, Error) else ""
    message = message or status_string(status).decode()
    code = status_name(status).decode()
    if code not in STATUS_EXCEPTIONS:  # a status newer than this binding ("unknown_status")
        raise FastMCPAuthError(code, f"status {status}: {message}")
    raise exception_for(code)(code, message)


def _ffi(name, argtypes, restype):
    function = getattr(lib, name)
    function.argtypes = argtypes
    if restype is STATUS:
        if not argtypes or argtypes[-1] is not _err_p:
            raise TypeError(f"{name}: a status-returning function takes an fma_error last")
        function.restype = ctypes.c_int
        function.errcheck = _raise_for_status
    else:
        function.restype = restype
    return function


def c_str(value, name: str) -> Optional[bytes]:
    """A str or bytes argument for a `const char *` parameter (None stays NULL). The library
    reads up to the first NUL, so a NUL inside would silently cut the value ("a\\x00b" would be
    "a"): it is refused here, naming the parameter."""
    if value is None:
        return None
    if isinstance(value, str):
        data = value.encode()
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    else:
        raise TypeError(f"{name} must be str or bytes, not {type(value).__name__}")
    if b"\0" in data:
        raise InvalidArgument("invalid_argument", f"{name} contains a NUL byte")
    return data


# A \u0000 escape in JSON text (an even number of backslashes before it: not an escaped backslash).
_JSON_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def c_json(value, name: str) -> Optional[bytes]:
    """A JSON argument: JSON text (str or bytes) as it is, anything else encoded. Refused, naming
    the parameter, when a string in it holds a NUL (raw, or escaped as \\u0000)."""
    if value is None:
        return None
    text = value if isinstance(value, (str, bytes, bytearray, memoryview)) else json.dumps(value, separators=(",", ":"))
    data = c_str(text, name)
    if b"\\u0000" in data and _JSON_NUL.search(data.decode("utf-8", "replace")):
        raise InvalidArgument("invalid_argument", f"{name} contains a NUL character")
    return data


version_string = _ffi("fma_version_string", [], ctypes.c_char_p)
version_number = _ffi("fma_version_number", [], ctypes.c_uint)
status_name = _ffi("fma_status_name", [ctypes.c_int], ctypes.c_char_p)
status_string = _ffi("fma_status_string", [ctypes.c_int], ctypes.c_char_p)
string_free = _ffi("fma_string_free", [ctypes.c_void_p], None)

verifier_new = _ffi("fma_verifier_new", [ctypes.c_char_p, _handle_p, _err_p], STATUS)
verifier_free = _ffi("fma_verifier_free", [ctypes.c_void_p], None)
verifier_verify = _ffi(
    "fma_verifier_verify", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, _handle_p, _err_p], STATUS
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
    STATUS,
)
jwk_generate = _ffi("fma_jwk_generate", [ctypes.c_char_p, ctypes.c_char_p, _c_char_pp, _err_p], STATUS)
jwk_public = _ffi("fma_jwk_public", [ctypes.c_char_p, _c_char_pp, _err_p], STATUS)


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

fernet_new = _ffi("fma_fernet_new", [ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t, _handle_p, _err_p], STATUS)
fernet_free = _ffi("fma_fernet_free", [ctypes.c_void_p], None)
fernet_generate_key = _ffi("fma_fernet_generate_key", [_c_char_pp, _err_p], STATUS)
fernet_encrypt = _ffi(
    "fma_fernet_encrypt",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int64, _c_char_pp, _err_p],
    STATUS,
)
fernet_decrypt = _ffi(
    "fma_fernet_decrypt",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_int64, _bytes_pp, _size_p, _err_p],
    STATUS,
)
fernet_rotate = _ffi("fma_fernet_rotate", [ctypes.c_void_p, ctypes.c_char_p, _c_char_pp, _err_p], STATUS)
fernet_extract_timestamp = _ffi(
    "fma_fernet_extract_timestamp",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.POINTER(ctypes.c_int64), _err_p],
    STATUS,
)
bytes_free = _ffi("fma_bytes_free", [ctypes.POINTER(ctypes.c_uint8), ctypes.c_size_t], None)

store_new = _ffi("fma_store_new", [ctypes.c_char_p, ctypes.c_char_p, _handle_p, _err_p], STATUS)
store_free = _ffi("fma_store_free", [ctypes.c_void_p], None)
store_put = _ffi(
    "fma_store_put",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _double_p, _err_p],
    STATUS,
)
store_put_if_absent = _ffi(
    "fma_store_put_if_absent",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _double_p, _int_p, _err_p],
    STATUS,
)
store_get = _ffi("fma_store_get", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _c_char_pp, _err_p], STATUS)
store_take = _ffi("fma_store_take", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _c_char_pp, _err_p], STATUS)
store_delete = _ffi("fma_store_delete", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _int_p, _err_p], STATUS)
store_compare_and_delete = _ffi(
    "fma_store_compare_and_delete",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _int_p, _err_p],
    STATUS,
)
store_compare_and_swap = _ffi(
    "fma_store_compare_and_swap",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _double_p, _int_p, _err_p],
    STATUS,
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
    STATUS,
)
store_ttl = _ffi(
    "fma_store_ttl", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _int_p, _double_p, _err_p], STATUS
)
store_keys = _ffi("fma_store_keys", [ctypes.c_void_p, ctypes.c_char_p, _c_char_pp, _err_p], STATUS)
store_delete_collection = _ffi(
    "fma_store_delete_collection", [ctypes.c_void_p, ctypes.c_char_p, _size_p, _err_p], STATUS
)
store_acquire_lease = _ffi(
    "fma_store_acquire_lease", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_double, _c_char_pp, _err_p], STATUS
)
store_release_lease = _ffi(
    "fma_store_release_lease", [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, _int_p, _err_p], STATUS
)


auth_new = _ffi("fma_auth_new", [ctypes.c_char_p, _handle_p, _err_p], STATUS)
auth_new_from_env = _ffi("fma_auth_new_from_env", [ctypes.c_char_p, ctypes.c_char_p, _handle_p, _err_p], STATUS)
auth_free = _ffi("fma_auth_free", [ctypes.c_void_p], None)
auth_describe = _ffi("fma_auth_describe", [ctypes.c_void_p, _c_char_pp, _err_p], STATUS)
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
    STATUS,
)
auth_authenticate = _ffi(
    "fma_auth_authenticate",
    [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _handle_p, _handle_p, _err_p],
    STATUS,
)
response_status = _ffi("fma_response_status", [ctypes.c_void_p], ctypes.c_int)
response_header_count = _ffi("fma_response_header_count", [ctypes.c_void_p], ctypes.c_size_t)
response_header_name = _ffi("fma_response_header_name", [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_char_p)
response_header_value = _ffi("fma_response_header_value", [ctypes.c_void_p, ctypes.c_size_t], ctypes.c_char_p)
response_header = _ffi("fma_response_header", [ctypes.c_void_p, ctypes.c_char_p], ctypes.c_char_p)
response_body = _ffi("fma_response_body", [ctypes.c_void_p, _size_p], ctypes.c_void_p)
response_free = _ffi("fma_response_free", [ctypes.c_void_p], None)

# The OAuth client (MCP client side): fastmcpauth.client.OAuthClient.
OPEN_URL_FN = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_void_p)
oauth_client_new = _ffi("fma_oauth_client_new", [ctypes.c_char_p, _handle_p, _err_p], STATUS)
oauth_client_free = _ffi("fma_oauth_client_free", [ctypes.c_void_p], None)
oauth_client_set_browser = _ffi(
    "fma_oauth_client_set_browser", [ctypes.c_void_p, OPEN_URL_FN, ctypes.c_void_p, _err_p], STATUS
)
oauth_client_cancel = _ffi("fma_oauth_client_cancel", [ctypes.c_void_p], None)
oauth_client_token = _ffi("fma_oauth_client_token", [ctypes.c_void_p, _c_char_pp, _err_p], STATUS)
oauth_client_challenge = _ffi(
    "fma_oauth_client_challenge", [ctypes.c_void_p, ctypes.c_int, ctypes.c_char_p, _err_p], STATUS
)
oauth_client_logout = _ffi("fma_oauth_client_logout", [ctypes.c_void_p, _err_p], STATUS)
