"""The one lifecycle of every object that owns a native handle.

Each native call borrows the handle (a lock-protected count of running calls). ``close()`` marks
the object closed; the library's ``_free`` runs exactly once, when no call is running: at once
when the object is idle, else when the last running call returns. A call after ``close()``
raises InvalidArgument ("... is closed") instead of touching freed memory. ``with`` and
``__del__`` take the same path, and closing twice does nothing."""

import threading

from .errors import InvalidArgument


class NativeHandle:
    """Base of the classes that own a library handle. A subclass sets ``_free`` (the library's
    fma_*_free, as a staticmethod) and ``_kind`` (its name in the "is closed" message), and calls
    ``_own(handle)`` once the handle exists."""

    _free = None
    _kind = "object"

    def _own(self, handle) -> None:
        self._handle_lock = threading.Lock()
        self._handle = handle if handle else None  # a NULL c_void_p is false
        self._handle_calls = 0
        self._handle_closed = False

    def _borrow(self):
        """The handle, counted as in use until ``_give_back()``; InvalidArgument once closed."""
        lock = self.__dict__.get("_handle_lock")
        if lock is None:
            raise InvalidArgument("invalid_argument", f"the {self._kind} was never opened")
        with lock:
            if self._handle_closed or self._handle is None:
                raise InvalidArgument("invalid_argument", f"the {self._kind} is closed")
            self._handle_calls += 1
            return self._handle

    def _give_back(self) -> None:
        with self._handle_lock:
            self._handle_calls -= 1
            if not self._handle_closed or self._handle_calls:
                return
            handle, self._handle = self._handle, None
        if handle is not None:
            self._free(handle)

    def _call(self, function, *args):
        """``function(handle, *args)`` with the handle borrowed for the duration of the call."""
        handle = self._borrow()
        try:
            return function(handle, *args)
        finally:
            self._give_back()

    @property
    def closed(self) -> bool:
        return self.__dict__.get("_handle_closed", True)

    def close(self) -> None:
        """Releases the native object (at once, or when the calls running on it return). Later
        calls raise InvalidArgument. Closing again does nothing."""
        lock = self.__dict__.get("_handle_lock")
        if lock is None:
            return
        with lock:
            if self._handle_closed:
                return
            self._handle_closed = True
            if self._handle_calls:
                return  # the last running call frees it
            handle, self._handle = self._handle, None
        if handle is not None:
            self._free(handle)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()
