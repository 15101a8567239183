"""Fernet and MultiFernet with the method names of ``cryptography.fernet``, through libfastmcpauth."""

import ctypes
import time
from collections.abc import Iterable
from typing import Optional, Union

from . import _native
from .errors import FastMCPAuthError, InvalidKey, InvalidToken

# Statuses that mean "this token is not acceptable" (cryptography raises InvalidToken for all).
_TOKEN_STATUSES = {
    "malformed_base64",
    "malformed_token",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "decryption_failed",
    "too_large",
}


def _text(value: Union[str, bytes]) -> bytes:
    if isinstance(value, str):
        return value.encode("ascii", "replace")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise TypeError("token and key must be bytes or str")


def _check(status: int, err: _native.Error):
    if status == 0:
        return
    code = _native.status_name(status).decode()
    message = err.message.decode("utf-8", "replace")
    if code in _TOKEN_STATUSES:
        raise InvalidToken(code, message)
    if code == "invalid_key":
        raise InvalidKey(code, message)
    raise FastMCPAuthError(code, message)


class MultiFernet:
    """Fernet with several keys: the first encrypts, any decrypts (cryptography's MultiFernet).
    Keys are url-safe base64 of 32 bytes, as bytes or str. Thread-safe."""

    def __init__(self, keys: Iterable[Union[str, bytes]]):
        keys = [_text(getattr(k, "_key_text", k)) for k in keys]
        if not keys:
            raise ValueError("MultiFernet requires at least one key")
        array = (ctypes.c_char_p * len(keys))(*keys)
        handle = ctypes.c_void_p()
        err = _native.Error()
        status = _native.fernet_new(array, len(keys), handle, err)
        if status != 0:
            raise ValueError(f"{_native.status_name(status).decode()}: {err.message.decode()}")
        self._handle = handle
        self._key_text = keys[0] if len(keys) == 1 else None

    @staticmethod
    def generate_key() -> bytes:
        out = ctypes.c_void_p()
        err = _native.Error()
        _check(_native.fernet_generate_key(out, err), err)
        return _native.take_string(out).encode()

    def encrypt(self, data: bytes) -> bytes:
        return self.encrypt_at_time(data, int(time.time()))

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes")
        data = bytes(data)
        out = ctypes.c_void_p()
        err = _native.Error()
        _check(_native.fernet_encrypt(self._handle, data, len(data), int(current_time), out, err), err)
        return _native.take_string(out).encode()

    def decrypt(self, token: Union[str, bytes], ttl: Optional[int] = None) -> bytes:
        return self._decrypt(token, ttl, _native.TIME_NOW)

    def decrypt_at_time(self, token: Union[str, bytes], ttl: int, current_time: int) -> bytes:
        if ttl is None:
            raise ValueError("decrypt_at_time() can only be used with a non-None ttl")
        return self._decrypt(token, ttl, int(current_time))

    def _decrypt(self, token, ttl, now) -> bytes:
        data = ctypes.POINTER(ctypes.c_uint8)()
        length = ctypes.c_size_t()
        err = _native.Error()
        status = _native.fernet_decrypt(
            self._handle,
            _text(token),
            _native.NO_TTL if ttl is None else int(ttl),
            now,
            ctypes.byref(data),
            ctypes.byref(length),
            err,
        )
        _check(status, err)
        try:
            return ctypes.string_at(data, length.value)
        finally:
            _native.bytes_free(data, length.value)

    def rotate(self, token: Union[str, bytes]) -> bytes:
        out = ctypes.c_void_p()
        err = _native.Error()
        _check(_native.fernet_rotate(self._handle, _text(token), out, err), err)
        return _native.take_string(out).encode()

    def extract_timestamp(self, token: Union[str, bytes]) -> int:
        stamp = ctypes.c_int64()
        err = _native.Error()
        _check(_native.fernet_extract_timestamp(self._handle, _text(token), ctypes.byref(stamp), err), err)
        return stamp.value

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None:
            _native.fernet_free(handle)


class Fernet(MultiFernet):
    """One-key Fernet (cryptography's Fernet): ``Fernet(key)`` with key as bytes or str."""

    def __init__(self, key: Union[str, bytes]):
        super().__init__([key])
