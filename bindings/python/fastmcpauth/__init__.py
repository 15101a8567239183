"""fastmcpauth: the Python binding of libfastmcpauth (authentication for MCP servers)."""

from . import _native
from .auth import (
    AuthKitProvider,
    AuthProvider,
    OAuthProxy,
    OIDCProxy,
    RemoteAuthProvider,
    Response,
    StaticTokenProvider,
    WorkOSProvider,
    auth_from_env,
)
from .client import OAuthClient
from .errors import (
    AuthChallenge,
    ConfigurationError,
    FastMCPAuthError,
    InvalidArgument,
    InvalidKey,
    InvalidToken,
    KeyTypeMismatch,
    OAuthClientError,
    StoreError,
    StoreUnavailable,
    TooLarge,
    Unavailable,
    WeakKey,
)
from .fernet import Fernet, MultiFernet
from .jwt import AccessToken, JWTVerifier, generate_key, public_jwk, sign_jwt
from .store import Store, open_store

__version__ = "0.1.0"


def library_version() -> str:
    """The version of the loaded libfastmcpauth."""
    return _native.version_string().decode()


def library_version_number() -> int:
    """The version of the loaded libfastmcpauth as 0xMMmmpp (FMA_VERSION_NUM)."""
    return _native.version_number()


__all__ = [
    "AuthChallenge",
    "AuthKitProvider",
    "AuthProvider",
    "OAuthProxy",
    "OIDCProxy",
    "RemoteAuthProvider",
    "WorkOSProvider",
    "Response",
    "StaticTokenProvider",
    "auth_from_env",
    "AccessToken",
    "ConfigurationError",
    "FastMCPAuthError",
    "Fernet",
    "InvalidArgument",
    "InvalidKey",
    "InvalidToken",
    "JWTVerifier",
    "KeyTypeMismatch",
    "MultiFernet",
    "OAuthClient",
    "OAuthClientError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "TooLarge",
    "Unavailable",
    "WeakKey",
    "generate_key",
    "library_version",
    "library_version_number",
    "open_store",
    "public_jwk",
    "sign_jwt",
]
