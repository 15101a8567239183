"""One side of the two-process refresh race (run in a process of its own by multiprocessing): an
OAuthClient on the shared cache whose refresh margin covers the cached token's whole lifetime, so
its token() refreshes; started together with the other side by an event. It reports the token's
fingerprint (never the token) and the server's answer to it."""

import hashlib

MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
LIST_TOOLS = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


def fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def refresh_in_a_process(url, cache, margin, ready, start, results):
    import fastmcpauth
    import httpx2

    opened = []

    def no_browser(_url):
        opened.append(1)
        raise RuntimeError("a refresh must not need a browser")

    outcome, announced = {}, False
    try:
        with fastmcpauth.OAuthClient(url, browser=no_browser, refresh_margin=margin, **cache) as oauth:
            ready.put(True)
            announced = True
            start.wait(60)
            token = oauth.token()
        outcome["token"] = fingerprint(token)
        response = httpx2.post(url, headers={**MCP_HEADERS, "Authorization": f"Bearer {token}"}, content=LIST_TOOLS)
        outcome["status"] = response.status_code
    except Exception as exc:  # its code only: messages stay out of the parent's assertion output
        outcome["error"] = getattr(exc, "code", type(exc).__name__)
        if not announced:
            ready.put(False)
    outcome["opened"] = len(opened)
    results.put(outcome)
