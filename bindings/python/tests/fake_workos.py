"""A WorkOS-shaped upstream around a real OpenID provider (oidc-provider-mock): WorkOS's paths
(/oauth2/authorize, /oauth2/token, /oauth2/userinfo) forwarded to the provider, plus the
revocation endpoint oidc-provider-mock 0.3.4 lacks (/oauth2/revoke, recorded)."""

import urllib.request
from urllib.error import HTTPError

from json_server import LoopbackServer, QuietHandler


class FakeWorkOS(LoopbackServer):
    def __init__(self, provider_url):
        self.provider_url = provider_url
        self.revoked = []
        outer = self

        class Handler(QuietHandler):
            def forward(self, target, body=None):
                request = urllib.request.Request(outer.provider_url + target, data=body, method=self.command)
                for name in ("Authorization", "Content-Type", "Accept"):
                    if self.headers.get(name):
                        request.add_header(name, self.headers[name])
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        status, payload, kind = (
                            response.status,
                            response.read(),
                            response.headers.get("Content-Type", "application/json"),
                        )
                except HTTPError as error:
                    status, payload, kind = (
                        error.code,
                        error.read(),
                        error.headers.get("Content-Type", "application/json"),
                    )
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):
                path, _, query = self.path.partition("?")
                if path == "/oauth2/authorize":
                    self.send_response(302)
                    self.send_header("Location", outer.provider_url + "/oauth2/authorize?" + query)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif path == "/oauth2/userinfo":
                    self.forward("/userinfo")
                else:
                    self.send_error(404)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/oauth2/token":
                    self.forward("/oauth2/token", body)
                elif self.path == "/oauth2/revoke":
                    outer.revoked.append(body.decode())
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                else:
                    self.send_error(404)

        super().__init__(Handler)
