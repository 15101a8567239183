"""A real FastMCP server under uvicorn, run with .venv-fastmcp's Python by the tests and the
benchmark: `fastmcp_server.py PORT CONFIG_JSON`. CONFIG_JSON is {"auth": "ours" | "fastmcp",
"provider": "jwt" | "authkit" | "workos", "mcp_path": "/mcp", ...provider keyword arguments}:
"ours" builds the provider from fastmcpauth.integrations.fastmcp, "fastmcp" FastMCP's own class of
that name ("redis_url" gives FastMCP's WorkOSProvider an encrypted Redis store)."""

import json
import sys

import uvicorn
from fastmcp import FastMCP
from fastmcp.server.dependencies import get_access_token


def build_auth(config: dict):
    kind, provider = config.pop("auth"), config.pop("provider")
    if kind == "ours":
        from fastmcpauth.integrations import fastmcp as ours

        return {
            "jwt": ours.JWTVerifier,
            "authkit": ours.AuthKitProvider,
            "oidc_proxy": ours.OIDCProxy,
            "workos": ours.WorkOSProvider,
        }[provider](**config)
    from fastmcp.server.auth.providers.jwt import JWTVerifier
    from fastmcp.server.auth.providers.workos import AuthKitProvider, WorkOSProvider

    if "redis_url" in config:
        secret = config.get("client_secret") or config["upstream_client_secret"]
        config["client_storage"] = encrypted_redis(config.pop("redis_url"), secret)
    if provider == "oauth_proxy":
        # FastMCP's generic proxy, checking upstream tokens at WorkOS userinfo as WorkOSProvider
        # does, but with the upstream revocation endpoint WorkOSProvider does not take.
        from fastmcp.server.auth.oauth_proxy import OAuthProxy
        from fastmcp.server.auth.providers.workos import WorkOSTokenVerifier

        config["token_verifier"] = WorkOSTokenVerifier(authkit_domain=config.pop("workos_domain"))
        return OAuthProxy(**config)
    return {"jwt": JWTVerifier, "authkit": AuthKitProvider, "workos": WorkOSProvider}[provider](**config)


def encrypted_redis(url: str, upstream_secret: str):
    """A py-key-value RedisStore wrapped with the Fernet key FastMCP derives from the upstream
    secret (FastMCP encrypts only its default store, so a fleet wraps its own)."""
    from cryptography.fernet import Fernet
    from fastmcp.server.auth.jwt_issuer import derive_jwt_key
    from key_value.aio.stores.redis import RedisStore
    from key_value.aio.wrappers.encryption import FernetEncryptionWrapper

    signing_key = derive_jwt_key(high_entropy_material=upstream_secret, salt="fastmcp-jwt-signing-key")
    storage_key = derive_jwt_key(high_entropy_material=signing_key.decode(), salt="fastmcp-storage-encryption-key")
    return FernetEncryptionWrapper(key_value=RedisStore(url=url), fernet=Fernet(storage_key))


def main():
    port, config = int(sys.argv[1]), json.loads(sys.argv[2])
    mcp_path = config.pop("mcp_path", "/mcp")
    server = FastMCP("fastmcp-peer", auth=build_auth(config))

    @server.tool
    def whoami() -> dict:
        """The caller's identity, from the access token."""
        token = get_access_token()
        return {
            "subject": token.subject if token else None,
            "client_id": token.client_id if token else None,
            "scopes": list(token.scopes) if token else [],
            "claims": token.claims if token else {},
        }

    @server.tool
    def echo(text: str) -> str:
        return text

    app = server.http_app(path=mcp_path, json_response=True, stateless_http=True)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", workers=1)


if __name__ == "__main__":
    main()
