"""A test authorization server built on authlib (its ClientCredentialsGrant, and
JWTBearerClientAssertion as the private_key_jwt client authentication), with a protected MCP
resource beside it, on one free loopback port:

- ``/.well-known/oauth-authorization-server``: RFC 8414 metadata (issuer = the server's URL);
- ``/token``: client_credentials for the registered clients, each with its one method;
- ``/.well-known/oauth-protected-resource/mcp``: RFC 9728 metadata of ``/mcp``;
- ``/mcp``: 200 with a token this server issued, else 401 with ``WWW-Authenticate``.

Every token request is recorded (``requests``): the method authlib authenticated the client with,
whether an Authorization header came, the form, and a private_key_jwt assertion's header and
claims as sent."""

import base64
import json
import threading
import time

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import ClientMixin, grants
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from flask import Flask, jsonify, request
from joserfc.jwk import import_key
from werkzeug.serving import WSGIRequestHandler, make_server

SCOPE = "mcp:read"


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class Client(ClientMixin):
    def __init__(self, client_id, method, secret=None, public_jwk=None):
        self.client_id = client_id
        self.method = method
        self.secret = secret
        self.public_jwk = public_jwk

    def get_client_id(self):
        return self.client_id

    def check_client_secret(self, client_secret):
        return self.secret is not None and client_secret == self.secret

    def check_endpoint_auth_method(self, method, endpoint):
        return method == self.method

    def check_grant_type(self, grant_type):
        return grant_type == "client_credentials"

    def get_allowed_scope(self, scope):
        return " ".join(s for s in (scope or "").split() if s == SCOPE)


class ClientCredentials(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]


def _segment(text):
    return json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))


class AuthlibServer:
    """Start with ``start()`` (or ``with``), stop with ``stop()``. ``clients`` maps client ids to
    Client; ``auth_methods`` is the metadata's token_endpoint_auth_methods_supported."""

    def __init__(self, clients, auth_methods=("client_secret_basic", "client_secret_post", "private_key_jwt")):
        self.clients = {client.client_id: client for client in clients}
        self.auth_methods = list(auth_methods)
        self.requests = []
        self.tokens = {}
        self.jtis = set()
        self._lock = threading.Lock()
        self._http = make_server("127.0.0.1", 0, self._app(), threaded=True, request_handler=_QuietHandler)
        self.url = f"http://127.0.0.1:{self._http.server_port}"
        self.issuer = self.url
        self.resource = self.url + "/mcp"
        # When set, /mcp answers a request with a valid token by a 307 to this URL.
        self.redirect_mcp_to = None

    def start(self):
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return self

    def stop(self):
        self._http.shutdown()
        self._http.server_close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def token_requests(self):
        with self._lock:
            return list(self.requests)

    def _app(self):
        app = Flask(__name__)
        app.config["OAUTH2_TOKEN_EXPIRES_IN"] = {"client_credentials": 3600}
        app.config["OAUTH2_SCOPES_SUPPORTED"] = [SCOPE]
        owner = self

        def save_token(token, oauth_request):
            with owner._lock:
                owner.tokens[token["access_token"]] = {
                    "client_id": oauth_request.client.client_id,
                    "scope": token.get("scope"),
                    "expires_at": time.time() + token.get("expires_in", 3600),
                }

        class Server(AuthorizationServer):
            def authenticate_client(self, oauth_request, methods, endpoint="token"):
                client = super().authenticate_client(oauth_request, methods, endpoint)
                with owner._lock:
                    owner.requests[-1]["auth_method"] = oauth_request.auth_method
                return client

        class PrivateKeyJWT(JWTBearerClientAssertion):
            CLIENT_AUTH_METHOD = "private_key_jwt"

            def get_audiences(self):
                # RFC 7523 §3 lets a server accept its token endpoint too; this one demands its issuer.
                return [owner.issuer]

            def validate_jti(self, claims, jti):
                with owner._lock:
                    if jti in owner.jtis:
                        return False
                    owner.jtis.add(jti)
                    return True

            def resolve_client_public_key(self, client):
                return import_key(client.public_jwk)

        server = Server(app, query_client=self.clients.get, save_token=save_token)
        server.register_grant(ClientCredentials)
        server.register_client_auth_method("private_key_jwt", PrivateKeyJWT(leeway=0))

        @app.get("/.well-known/oauth-authorization-server")
        def metadata():
            return jsonify(
                issuer=self.issuer,
                token_endpoint=self.url + "/token",
                grant_types_supported=["client_credentials"],
                token_endpoint_auth_methods_supported=self.auth_methods,
                token_endpoint_auth_signing_alg_values_supported=["RS256", "ES256"],
                scopes_supported=[SCOPE],
            )

        @app.post("/token")
        def token():
            record = {
                "form": request.form.to_dict(),
                "authorization": request.headers.get("Authorization"),
                "auth_method": None,
            }
            assertion = record["form"].get("client_assertion")
            if assertion and assertion.count(".") == 2:
                header, claims, _ = assertion.split(".")
                record["assertion_header"] = _segment(header)
                record["assertion_claims"] = _segment(claims)
            with self._lock:
                self.requests.append(record)
            return server.create_token_response()

        @app.get("/.well-known/oauth-protected-resource/mcp")
        def resource_metadata():
            return jsonify(
                resource=self.resource,
                authorization_servers=[self.issuer],
                scopes_supported=[SCOPE],
                bearer_methods_supported=["header"],
            )

        @app.route("/mcp", methods=["GET", "POST"])
        def mcp():
            challenge = f'Bearer resource_metadata="{self.url}/.well-known/oauth-protected-resource/mcp"'
            header = request.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return jsonify(error="unauthorized"), 401, {"WWW-Authenticate": challenge}
            with self._lock:
                issued = self.tokens.get(header[len("Bearer ") :])
            if issued is None or issued["expires_at"] < time.time():
                return jsonify(error="invalid_token"), 401, {"WWW-Authenticate": challenge + ', error="invalid_token"'}
            if self.redirect_mcp_to:
                return "", 307, {"Location": self.redirect_mcp_to}
            return jsonify(client_id=issued["client_id"], scope=issued["scope"])

        return app
