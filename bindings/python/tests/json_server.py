"""A real HTTP server on a free loopback port answering GETs with JSON documents, for tests."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


class LoopbackServer:
    """A threading HTTP server on a free loopback port serving `handler_class`."""

    def __init__(self, handler_class):
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class JSONServer(LoopbackServer):
    """`routes` maps a path to a function returning the document (or None for 404)."""

    def __init__(self, routes, headers=None):
        self.routes = routes
        self.requests = []
        outer = self

        class Handler(QuietHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                route = outer.routes.get(self.path)
                document = route() if route else None
                if document is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps(document).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)
