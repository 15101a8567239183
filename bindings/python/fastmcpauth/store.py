"""The encrypted token store: memory://, sqlite:///path.db, redis://host:port/db."""

import ctypes
import json
import math
from collections.abc import Iterable
from typing import Optional, Union

from . import _native
from ._handle import NativeHandle


def _name(text: str, what: str = "key") -> bytes:
    if not isinstance(text, str):
        raise TypeError("collection, key and lease names are str")
    return _native.c_str(text, what)


def _value(value: dict, what: str = "value") -> bytes:
    if not isinstance(value, dict):
        raise TypeError("values are dicts (JSON objects)")
    return _native.c_json(value, what)


def _ttl(ttl: Optional[float]):
    return None if ttl is None else ctypes.byref(ctypes.c_double(float(ttl)))


class Store(NativeHandle):
    """A store handle (thread-safe). Use ``open_store``; close with ``close()`` or ``with`` (calls
    running on it finish first; later calls raise InvalidArgument). Failures raise StoreError
    (StoreUnavailable, also an Unavailable, when the store cannot be reached)."""

    _free = staticmethod(_native.store_free)
    _kind = "store"

    def __init__(self, handle: ctypes.c_void_p, url: str):
        self._own(handle)
        self.url = url

    def _run(self, function, *args) -> None:
        self._call(function, *args, _native.Error())

    def _string_out(self, function, *args) -> Optional[str]:
        out = ctypes.c_void_p()
        self._run(function, *args, out)
        return _native.take_string(out) if out.value else None

    def put(self, collection: str, key: str, value: dict, ttl: Optional[float] = None) -> None:
        self._run(_native.store_put, _name(collection, "collection"), _name(key), _value(value), _ttl(ttl))

    def put_if_absent(self, collection: str, key: str, value: dict, ttl: Optional[float] = None) -> bool:
        stored = ctypes.c_int()
        self._run(
            _native.store_put_if_absent, _name(collection, "collection"), _name(key), _value(value), _ttl(ttl), stored
        )
        return bool(stored.value)

    def get(self, collection: str, key: str) -> Optional[dict]:
        text = self._string_out(_native.store_get, _name(collection, "collection"), _name(key))
        return None if text is None else json.loads(text)

    def take(self, collection: str, key: str) -> Optional[dict]:
        """Get and delete in one atomic step."""
        text = self._string_out(_native.store_take, _name(collection, "collection"), _name(key))
        return None if text is None else json.loads(text)

    def delete(self, collection: str, key: str) -> bool:
        deleted = ctypes.c_int()
        self._run(_native.store_delete, _name(collection, "collection"), _name(key), deleted)
        return bool(deleted.value)

    def compare_and_delete(self, collection: str, key: str, expected: dict) -> bool:
        deleted = ctypes.c_int()
        self._run(
            _native.store_compare_and_delete,
            _name(collection, "collection"),
            _name(key),
            _value(expected, "expected"),
            deleted,
        )
        return bool(deleted.value)

    def compare_and_swap(
        self, collection: str, key: str, expected: Optional[dict], new: dict, ttl: Optional[float] = None
    ) -> bool:
        """Replaces the entry with ``new`` only while it still holds ``expected`` (None: only while
        there is no live entry), in one atomic step. False: it changed; read it again and retry."""
        swapped = ctypes.c_int()
        expected_json = None if expected is None else _value(expected, "expected")
        self._run(
            _native.store_compare_and_swap,
            _name(collection, "collection"),
            _name(key),
            expected_json,
            _value(new, "new"),
            _ttl(ttl),
            swapped,
        )
        return bool(swapped.value)

    def increment(self, collection: str, key: str, delta: int = 1, ttl: Optional[float] = None) -> int:
        """Adds ``delta`` to a counter atomically and returns the new count. A missing or expired
        counter starts at ``delta`` and expires ``ttl`` seconds later; increments keep that expiry.
        Counters are stored unencrypted (``{"count": n}``): read one with ``delta=0``."""
        if not isinstance(delta, int) or isinstance(delta, bool) or not -(2**63) <= delta < 2**63:
            raise TypeError("delta is an int of 64 bits")
        value = ctypes.c_int64()
        self._run(
            _native.store_increment,
            _name(collection, "collection"),
            _name(key),
            ctypes.c_int64(delta),
            _ttl(ttl),
            value,
        )
        return value.value

    def ttl(self, collection: str, key: str) -> Optional[float]:
        """Seconds left; ``math.inf`` when the entry never expires; None when there is none."""
        found, seconds = ctypes.c_int(), ctypes.c_double()
        self._run(_native.store_ttl, _name(collection, "collection"), _name(key), found, seconds)
        if not found.value:
            return None
        return math.inf if seconds.value < 0 else seconds.value

    def keys(self, collection: str) -> list:
        return json.loads(self._string_out(_native.store_keys, _name(collection, "collection")))

    def delete_collection(self, collection: str) -> int:
        count = ctypes.c_size_t()
        self._run(_native.store_delete_collection, _name(collection, "collection"), count)
        return count.value

    def acquire_lease(self, name: str, ttl: float) -> Optional[str]:
        """The holder token, or None while another holder has the lease."""
        return self._string_out(_native.store_acquire_lease, _name(name, "name"), ctypes.c_double(float(ttl)))

    def release_lease(self, name: str, holder: str) -> bool:
        released = ctypes.c_int()
        self._run(_native.store_release_lease, _name(name, "name"), _name(holder, "holder"), released)
        return bool(released.value)


def open_store(
    url: str,
    encryption_keys: Optional[Iterable[Union[str, bytes]]] = None,
    on_plaintext: str = "error",
    on_undecryptable: str = "error",
    max_value_bytes: int = 1 << 20,
    **options,
) -> Store:
    """Opens a store. ``encryption_keys``: Fernet keys (first encrypts, any decrypts); further
    options: ``max_entries_per_collection`` (memory), ``timeout`` (seconds)."""
    config = {"on_plaintext": on_plaintext, "on_undecryptable": on_undecryptable, "max_value_bytes": max_value_bytes}
    if encryption_keys is not None:
        config["encryption_keys"] = [k.decode() if isinstance(k, bytes) else k for k in encryption_keys]
    config.update(options)
    handle = ctypes.c_void_p()
    _native.store_new(_native.c_str(url, "url"), _native.c_json(config, "options"), handle, _native.Error())
    return Store(handle, url)
