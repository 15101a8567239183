"""fastmcpauth: the Python binding of libfastmcpauth (authentication for MCP servers)."""

from . import _native
from .errors import ConfigurationError, FastMCPAuthError, InvalidKey, InvalidToken, StoreError
from .fernet import Fernet, MultiFernet
from .jwt import AccessToken, JWTVerifier, generate_key, public_jwk, sign_jwt
from .store import Store, open_store

__version__ = "0.1.0"


def library_version() -> str:
    """The version of the loaded libfastmcpauth."""
    return _native.version_string().decode()


__all__ = [
    "AccessToken", "ConfigurationError", "FastMCPAuthError", "Fernet", "InvalidKey", "InvalidToken", "JWTVerifier",
    "MultiFernet", "Store", "StoreError", "generate_key", "library_version", "open_store", "public_jwk", "sign_jwt",
]
