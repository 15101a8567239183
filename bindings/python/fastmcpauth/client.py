"""The client side: an MCP client signing in to a protected MCP server (OAuth, MCP authorization
spec), with Auth objects for httpx and httpx2 so the official ``mcp`` client works unchanged:

    import httpx2
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client
    from fastmcpauth import OAuthClient

    with OAuthClient("https://mcp.example.com/mcp", client_name="my tool") as oauth:
        http = httpx2.AsyncClient(auth=oauth.httpx2_auth())
        async with streamable_http_client("https://mcp.example.com/mcp", http_client=http) as streams:
            async with ClientSession(*streams[:2]) as session:
                await session.initialize()

Discovery, registration, the browser sign-in on a 127.0.0.1 redirect, the encrypted token cache
and refreshing (one at a time across processes sharing the cache) all run in the native core;
this module only carries the calls across. httpx and httpx2 are imported on demand.
"""

import ctypes
import functools
import re
import threading
import weakref
from collections.abc import Iterable
from typing import Any, Callable, Optional, Union
from urllib.parse import urlsplit

from . import _native
from ._handle import NativeHandle
from .errors import InvalidArgument, InvalidToken, OAuthClientError

__all__ = ["InsufficientScope", "OAuthClient"]

# A 403 that asks for more scope (RFC 6750 §3.1); any other 403 is about the request itself.
_INSUFFICIENT_SCOPE = re.compile(r'(?:^|[\s,])error\s*=\s*"?insufficient_scope"?(?:$|[\s,])', re.IGNORECASE)

# Rounds of one request through an Auth flow: the first send, one resend after a 401, and the
# step-ups the native client allows (two; a third 403 insufficient_scope is raised by token()).
_MAX_SENDS = 5


class InsufficientScope(OAuthClientError, InvalidToken):
    """insufficient_scope from ``token()``: the server still refused the token after two step-up
    sign-ins. Both an OAuthClientError (the client could not obtain a token that is enough) and
    an InvalidToken (the status's family elsewhere in the library)."""


def _resource_key(url: str):
    """(scheme, host, port, path) of a URL as the tokens are bound to it, or None."""
    try:
        parts = urlsplit(str(url))
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return (parts.scheme.lower(), parts.hostname.lower(), port, parts.path.rstrip("/"))


def _keys(value) -> list:
    if isinstance(value, (str, bytes)):
        value = [value]
    return [k.decode() if isinstance(k, (bytes, bytearray)) else k for k in value]


def _scopes(value):
    if isinstance(value, str):
        return value
    return list(value)


class OAuthClient(NativeHandle):
    """An MCP client's OAuth for one server (``server_url``, the MCP endpoint: https, or http on a
    loopback host). Thread-safe; sign-ins are serialised. Close with ``close()`` or ``with``.

    ``token()`` returns a valid access token: cached, refreshed before expiry (``refresh_margin``
    seconds, default 60), or after a browser sign-in (up to ``sign_in_timeout``, default 300 s).
    Options: ``client_name``; ``client_metadata_url`` (a Client ID Metadata Document, used when the
    server supports them); ``client_id`` with ``client_secret`` or ``private_key`` (a private JWK,
    a dict or its JSON text) and ``client_issuer`` for a pre-registered client;
    ``token_endpoint_auth_method`` (client_secret_basic, the default with a secret;
    client_secret_post; private_key_jwt, the default with a key; none); ``grant="client_credentials"``
    for machine to machine (no browser: the client asks the token endpoint with its secret or key;
    the configured ``scopes`` are the most it asks for); ``redirect_port`` (default ephemeral); ``scopes`` (a list or a
    space-separated string); ``no_browser`` (print the URL on the terminal instead); ``timeout``
    (HTTP, seconds); ``storage`` (a store URL such as ``sqlite:///path.db``) with
    ``encryption_keys`` (Fernet keys; required with ``storage``; without ``storage`` the tokens go
    to a private cache under ``$XDG_CACHE_HOME/fastmcpauth``). Options that are None are left out;
    further keyword arguments go into the native configuration as they are. ``browser``: a
    callable(url) that shows the sign-in URL (see ``set_browser``).

    Failures raise the library's exceptions: OAuthClientError (``.code`` authorization_denied,
    authorization_timeout, cancelled, browser_unavailable, discovery_failed,
    registration_failed), ConfigurationError for bad options, Unavailable when the token endpoint
    cannot be reached, InsufficientScope (an OAuthClientError and an InvalidToken, code
    ``insufficient_scope``) when the server still refuses after two step-up sign-ins. No message
    holds a token, a code or a secret."""

    _free = staticmethod(_native.oauth_client_free)
    _kind = "OAuth client"

    def __init__(
        self,
        server_url: str,
        *,
        client_name: Optional[str] = None,
        client_metadata_url: Optional[str] = None,
        client_id: Optional[str] = None,
        client_secret: Optional[str] = None,
        client_issuer: Optional[str] = None,
        redirect_port: Optional[int] = None,
        scopes: Union[str, Iterable[str], None] = None,
        no_browser: Optional[bool] = None,
        sign_in_timeout: Optional[float] = None,
        timeout: Optional[float] = None,
        refresh_margin: Optional[float] = None,
        storage: Optional[str] = None,
        encryption_keys: Union[str, bytes, Iterable[Union[str, bytes]], None] = None,
        browser: Optional[Callable[[str], Any]] = None,
        **extra: Any,
    ):
        config = {
            "server_url": server_url,
            "client_name": client_name,
            "client_metadata_url": client_metadata_url,
            "client_id": client_id,
            "client_secret": client_secret,
            "client_issuer": client_issuer,
            "redirect_port": redirect_port,
            "scopes": None if scopes is None else _scopes(scopes),
            "no_browser": no_browser,
            "sign_in_timeout": sign_in_timeout,
            "timeout": timeout,
            "refresh_margin": refresh_margin,
            "storage": storage,
            "encryption_keys": None if encryption_keys is None else _keys(encryption_keys),
        }
        config.update(extra)
        config = {key: value for key, value in config.items() if value is not None}
        self.server_url = server_url
        self._resource = _resource_key(server_url)
        # The browser callbacks handed to the library; each stays alive while the library may call it.
        self._browser_lock = threading.Lock()
        self._thunks = []
        self._browser_failure = None
        # One challenge and the token() that acts on it at a time (the native client keeps one
        # pending challenge), for the Auth flows.
        self._exchange_lock = threading.Lock()
        # token() calls running, and whether a cancel() is meant for them: the library's cancel
        # ends the calls already running, and new calls wait until those have returned (so a call
        # made right after cancel() is not mistaken for one of them).
        self._calls = threading.Condition()
        self._running = 0
        self._cancelling = False
        handle = ctypes.c_void_p()
        _native.oauth_client_new(_native.c_json(config, "config"), handle, _native.Error())
        self._own(handle)
        if browser is not None:
            self.set_browser(browser)

    def __repr__(self) -> str:
        return f"OAuthClient({self.server_url!r}{', closed' if self.closed else ''})"

    # ---- The operations -----------------------------------------------------------------------

    def token(self) -> str:
        """A valid access token: cached, refreshed, or after a sign-in (which waits for the browser,
        up to ``sign_in_timeout``; ``cancel()`` from another thread ends it). Blocks; the GIL is
        released meanwhile."""
        with self._calls:
            while self._cancelling:
                self._calls.wait()
            if not self._running:
                with self._browser_lock:
                    self._browser_failure = None
            self._running += 1
        out = ctypes.c_void_p()
        try:
            self._call(_native.oauth_client_token, out, _native.Error())
        except InvalidToken as exc:
            if exc.code == "insufficient_scope":
                raise InsufficientScope(exc.code, exc.message) from None
            raise
        except OAuthClientError as exc:
            with self._browser_lock:
                failure, self._browser_failure = self._browser_failure, None
            if exc.code == "cancelled" and failure is not None:
                raise OAuthClientError(
                    "browser_unavailable", f"the browser function raised {type(failure).__name__}"
                ) from failure
            raise
        finally:
            with self._calls:
                self._running -= 1
                if not self._running:
                    self._cancelling = False
                    self._calls.notify_all()
        return _native.take_string(out)

    def challenge(self, status: int, www_authenticate: Optional[str]) -> None:
        """Hands the client a 401 or 403 the server answered (``www_authenticate``: its header, or
        None); the next ``token()`` acts on it: a 401 refreshes (or signs in again), a 403
        ``insufficient_scope`` signs in again with the union of the scopes. Other statuses raise
        InvalidArgument."""
        if not isinstance(status, int) or isinstance(status, bool):
            raise TypeError("status must be an int")
        if not -(2**31) <= status < 2**31:
            raise InvalidArgument("invalid_argument", "status is out of range")
        self._call(
            _native.oauth_client_challenge,
            status,
            _native.c_str(www_authenticate, "www_authenticate"),
            _native.Error(),
        )

    def logout(self) -> None:
        """Forgets this server's cached tokens (the client registration is kept)."""
        self._call(_native.oauth_client_logout, _native.Error())

    def cancel(self) -> None:
        """Every ``token()`` call waiting for a sign-in (in any thread) raises OAuthClientError
        ``cancelled``; calls made meanwhile start once those have returned."""
        with self._calls:
            if self._running:
                self._cancelling = True
            self._call(_native.oauth_client_cancel)

    def set_browser(self, open_url: Optional[Callable[[str], Any]]) -> None:
        """Where sign-in URLs go: ``open_url(url)`` is called in a daemon thread of its own (so it
        may block, e.g. while it drives a browser); the sign-in then waits for the redirect. If it
        raises, the pending ``token()`` raises OAuthClientError ``browser_unavailable``. None
        restores the default: ``$BROWSER``, else ``xdg-open``, else the URL on stderr."""
        if open_url is None:
            self._call(_native.oauth_client_set_browser, _native.OPEN_URL_FN(), None, _native.Error())
            self._forget_old_thunks(keep=None)
            return
        if not callable(open_url):
            raise TypeError("open_url must be callable or None")
        thunk = _native.OPEN_URL_FN(_browser_thunk(weakref.ref(self), open_url))
        with self._browser_lock:
            self._thunks.append(thunk)
        self._call(_native.oauth_client_set_browser, thunk, None, _native.Error())
        self._forget_old_thunks(keep=thunk)

    def _forget_old_thunks(self, keep) -> None:
        # A token() that was running may still hold a callback it read before the replacement:
        # earlier callbacks are dropped only while no call runs.
        with self._handle_lock:
            idle = self._handle_calls == 0
        if idle:
            with self._browser_lock:
                self._thunks = [keep] if keep is not None else []

    def _browser_failed(self, failure: BaseException) -> None:
        with self._browser_lock:
            self._browser_failure = failure
        try:
            self.cancel()
        except Exception:  # noqa: S110 - closed meanwhile: nothing waits for the sign-in
            pass

    def close(self) -> None:
        """Cancels a pending sign-in and releases the native client (when the calls running on it
        have returned). Later calls raise InvalidArgument; closing again does nothing."""
        lock = self.__dict__.get("_handle_lock")
        if lock is not None:
            with lock:
                busy = not self._handle_closed and self._handle_calls > 0
            if busy:
                try:
                    self.cancel()
                except Exception:  # noqa: S110 - closed by another thread meanwhile
                    pass
        super().close()

    # ---- The Auth flows ------------------------------------------------------------------------

    def _is_for_server(self, url) -> bool:
        key = _resource_key(str(url))
        return key is not None and key == self._resource

    def _flow_token(self) -> str:
        with self._exchange_lock:
            return self.token()

    def _answer(self, status: int, www_authenticate: Optional[str], sent: str) -> str:
        """The token to resend with after the server refused ``sent``."""
        with self._exchange_lock:
            if status == 401:
                # Another request may have renewed the token meanwhile: then resend with that one
                # instead of refusing it too.
                current = self.token()
                if current != sent:
                    return current
            self.challenge(status, www_authenticate)
            return self.token()

    @staticmethod
    def _retry_status(response, unauthorized_retried: bool) -> Optional[int]:
        """The status to hand to challenge() before resending, or None to return the response."""
        status = response.status_code
        if status == 401 and not unauthorized_retried:
            return 401
        if status == 403:
            header = response.headers.get("WWW-Authenticate")
            if header and _INSUFFICIENT_SCOPE.search(header):
                return 403
        return None

    def httpx_auth(self):
        """An ``httpx.Auth`` for ``httpx.Client`` and ``httpx.AsyncClient``: each request carries
        ``Authorization: Bearer <token>``; a 401, or a 403 ``insufficient_scope``, is handed to
        ``challenge()`` and the request is sent again with the new token (once after a 401, at
        most two step-ups). The async flow runs the native calls in a worker thread."""
        import httpx

        return _auth_class(httpx)(self)

    def httpx2_auth(self):
        """The same as ``httpx_auth()`` for httpx2 (the pinned ``mcp`` client's HTTP library):
        ``streamable_http_client(url, http_client=httpx2.AsyncClient(auth=client.httpx2_auth()))``."""
        import httpx2

        return _auth_class(httpx2)(self)


def _browser_thunk(client_ref, open_url):
    """The C callback: hands the URL to ``open_url`` in a daemon thread and returns at once."""

    def run(url: str) -> None:
        try:
            open_url(url)
        except BaseException as exc:
            client = client_ref()
            if client is not None:
                client._browser_failed(exc)

    def thunk(url_pointer, _context) -> None:
        try:
            url = url_pointer.decode("utf-8", "replace") if url_pointer else ""
            threading.Thread(target=run, args=(url,), name="fastmcpauth-browser", daemon=True).start()
        except BaseException as exc:  # never raise into the library's thread
            client = client_ref()
            if client is not None:
                client._browser_failed(exc)

    return thunk


@functools.cache
def _anyio_abandons() -> bool:
    """Whether anyio's run_sync takes abandon_on_cancel (anyio 4.1 and later; before: cancellable)."""
    try:
        import inspect

        import anyio.to_thread

        return "abandon_on_cancel" in inspect.signature(anyio.to_thread.run_sync).parameters
    except (ImportError, TypeError, ValueError):
        return False


async def _in_thread(client: OAuthClient, function, *args):
    """``function(*args)`` in a worker thread; when the awaiting task is cancelled, the native
    sign-in it may be waiting for is cancelled too (the thread then returns promptly)."""
    try:
        import anyio
        import anyio.to_thread
    except ImportError:  # pragma: no cover - httpx and httpx2 both depend on anyio
        import asyncio

        try:
            return await asyncio.to_thread(function, *args)
        except asyncio.CancelledError:
            client.cancel()
            raise
    try:
        if _anyio_abandons():
            return await anyio.to_thread.run_sync(function, *args, abandon_on_cancel=True)
        return await anyio.to_thread.run_sync(function, *args, cancellable=True)  # anyio < 4.1
    except anyio.get_cancelled_exc_class():
        try:
            client.cancel()
        except Exception:  # noqa: S110 - closed meanwhile
            pass
        raise


_AUTH_CLASSES = {}
_AUTH_CLASSES_LOCK = threading.Lock()


def _auth_class(module):
    """The Auth subclass for httpx or httpx2 (same interface), made once per module."""
    with _AUTH_CLASSES_LOCK:
        cls = _AUTH_CLASSES.get(module.__name__)
        if cls is not None:
            return cls

        class OAuthClientAuth(module.Auth):
            """Bearer tokens from an OAuthClient, with its challenges handled (see
            OAuthClient.httpx_auth). Bodies are read first so that a request can be sent again."""

            requires_request_body = True

            def __init__(self, client: OAuthClient):
                self.client = client

            def __repr__(self) -> str:
                return f"{type(self).__name__}({self.client!r})"

            def sync_auth_flow(self, request):
                # The token is for this server only: another URL (a redirect to elsewhere, another
                # use of the same httpx client) gets no token, and its challenges are not acted on.
                if not self.client._is_for_server(request.url):
                    yield request
                    return
                request.read()
                token = self.client._flow_token()
                unauthorized_retried = False
                for sends in range(1, _MAX_SENDS + 1):
                    request.headers["Authorization"] = f"Bearer {token}"
                    response = yield request
                    status = OAuthClient._retry_status(response, unauthorized_retried)
                    if status is None or sends == _MAX_SENDS:
                        return
                    unauthorized_retried = unauthorized_retried or status == 401
                    token = self.client._answer(status, response.headers.get("WWW-Authenticate"), token)

            async def async_auth_flow(self, request):
                if not self.client._is_for_server(request.url):
                    yield request
                    return
                await request.aread()
                client = self.client
                token = await _in_thread(client, client._flow_token)
                unauthorized_retried = False
                for sends in range(1, _MAX_SENDS + 1):
                    request.headers["Authorization"] = f"Bearer {token}"
                    response = yield request
                    status = OAuthClient._retry_status(response, unauthorized_retried)
                    if status is None or sends == _MAX_SENDS:
                        return
                    unauthorized_retried = unauthorized_retried or status == 401
                    header = response.headers.get("WWW-Authenticate")
                    token = await _in_thread(client, client._answer, status, header, token)

        OAuthClientAuth.__qualname__ = OAuthClientAuth.__name__
        OAuthClientAuth.__module__ = __name__
        _AUTH_CLASSES[module.__name__] = OAuthClientAuth
        return OAuthClientAuth
