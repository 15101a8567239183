"""Fernet and MultiFernet with the method names of ``cryptography.fernet``, through libfastmcpauth."""

import ctypes
import time
from collections.abc import Iterable
from typing import Optional, Union

from . import _native
from ._handle import NativeHandle


def _text(value: Union[str, bytes], name: str) -> bytes:
    if isinstance(value, str):
        value = value.encode("ascii", "replace")
    elif not isinstance(value, (bytes, bytearray, memoryview)):
        raise TypeError("token and key must be bytes or str")
    return _native.c_str(value, name)


class MultiFernet(NativeHandle):
    """Fernet with several keys: the first encrypts, any decrypts (cryptography's MultiFernet).
    Keys are url-safe base64 of 32 bytes, as bytes or str. Thread-safe; ``close()`` (or ``with``)
    wipes the keys early. Rejected tokens raise InvalidToken, bad keys InvalidKey (a ValueError)."""

    _free = staticmethod(_native.fernet_free)
    _kind = "Fernet"

    def __init__(self, keys: Iterable[Union[str, bytes]]):
        keys = [_text(getattr(k, "_key_text", k), "key") for k in keys]
        if not keys:
            raise ValueError("MultiFernet requires at least one key")
        array = (ctypes.c_char_p * len(keys))(*keys)
        handle = ctypes.c_void_p()
        _native.fernet_new(array, len(keys), handle, _native.Error())
        self._own(handle)
        self._key_text = keys[0] if len(keys) == 1 else None

    @staticmethod
    def generate_key() -> bytes:
        out = ctypes.c_void_p()
        _native.fernet_generate_key(out, _native.Error())
        return _native.take_string(out).encode()

    def encrypt(self, data: bytes) -> bytes:
        return self.encrypt_at_time(data, int(time.time()))

    def encrypt_at_time(self, data: bytes, current_time: int) -> bytes:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes")
        data = bytes(data)
        out = ctypes.c_void_p()
        self._call(_native.fernet_encrypt, data, len(data), int(current_time), out, _native.Error())
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
        self._call(
            _native.fernet_decrypt,
            _text(token, "token"),
            _native.NO_TTL if ttl is None else int(ttl),
            now,
            ctypes.byref(data),
            ctypes.byref(length),
            _native.Error(),
        )
        try:
            return ctypes.string_at(data, length.value)
        finally:
            _native.bytes_free(data, length.value)

    def rotate(self, token: Union[str, bytes]) -> bytes:
        out = ctypes.c_void_p()
        self._call(_native.fernet_rotate, _text(token, "token"), out, _native.Error())
        return _native.take_string(out).encode()

    def extract_timestamp(self, token: Union[str, bytes]) -> int:
        stamp = ctypes.c_int64()
        self._call(_native.fernet_extract_timestamp, _text(token, "token"), ctypes.byref(stamp), _native.Error())
        return stamp.value


class Fernet(MultiFernet):
    """One-key Fernet (cryptography's Fernet): ``Fernet(key)`` with key as bytes or str."""

    def __init__(self, key: Union[str, bytes]):
        super().__init__([key])
