"""A local stand-in for WorkOS AuthKit: a real HTTP server with the JWKS at /oauth2/jwks and the
authorization-server metadata; tokens signed with joserfc (RS256), as AuthKit issues them."""

import time

from joserfc import jwt as joserfc_jwt
from joserfc.jwk import RSAKey
from json_server import JSONServer


class FakeAuthKit(JSONServer):
    def __init__(self):
        self.key = RSAKey.generate_key(2048, parameters={"kid": "authkit-1"})
        super().__init__(
            {
                "/oauth2/jwks": lambda: {"keys": [self.key.as_dict(private=False)]},
                "/.well-known/oauth-authorization-server": lambda: {
                    "issuer": self.url,
                    "authorization_endpoint": self.url + "/oauth2/authorize",
                    "token_endpoint": self.url + "/oauth2/token",
                },
            }
        )

    @property
    def metadata_requests(self):
        return self.requests.count("/.well-known/oauth-authorization-server")

    def token(self, audience, **claims):
        """A token for `audience`; a claim given as None is left out."""
        base = {
            "iss": self.url,
            "aud": audience,
            "sub": "user_42",
            "client_id": "client_7",
            "exp": int(time.time()) + 300,
            "scope": "openid mcp:tools",
        }
        base.update(claims)
        return joserfc_jwt.encode(
            {"alg": "RS256", "kid": "authkit-1"}, {k: v for k, v in base.items() if v is not None}, self.key
        )
