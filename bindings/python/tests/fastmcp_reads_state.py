"""Run with .venv-fastmcp's Python: FastMCP's own WorkOSProvider, on the same Redis and secrets as
our hosts, loads an access token our proxy issued (its JWT, our JTI mapping and upstream token
record, then WorkOS userinfo). Prints the access token FastMCP sees, or null. FastMCP encrypts
only its default store, so the Redis store is wrapped here with the key FastMCP would derive.
Usage: fastmcp_reads_state.py REDIS_URL AUTHKIT_DOMAIN BASE_URL TOKEN"""

import asyncio
import json
import sys

from cryptography.fernet import Fernet
from fastmcp.server.auth.jwt_issuer import derive_jwt_key
from fastmcp.server.auth.providers.workos import WorkOSProvider
from key_value.aio.stores.redis import RedisStore
from key_value.aio.wrappers.encryption import FernetEncryptionWrapper


async def main():
    redis_url, domain, base, token = sys.argv[1:]
    signing_key = derive_jwt_key(high_entropy_material="sk_test_proxy", salt="fastmcp-jwt-signing-key")
    storage_key = derive_jwt_key(high_entropy_material=signing_key.decode(), salt="fastmcp-storage-encryption-key")
    storage = FernetEncryptionWrapper(key_value=RedisStore(url=redis_url), fernet=Fernet(storage_key))
    provider = WorkOSProvider(
        client_id="client_proxy",
        client_secret="sk_test_proxy",
        authkit_domain=domain,
        base_url=base,
        client_storage=storage,
    )  # its WorkOS verifier wants scopes in userinfo; the provider's have none
    provider.set_mcp_path("/mcp")
    access = await provider.load_access_token(token)
    print(json.dumps(None if access is None else {"client_id": access.client_id, "scopes": access.scopes}))


asyncio.run(main())
