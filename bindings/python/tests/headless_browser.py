#!/usr/bin/env python3
"""A headless browser for `$BROWSER`: `headless_browser.py URL` follows an OAuth authorization URL
through our consent page (approve, or deny) and the identity provider's sign-in form, and ends by
GETting the client's 127.0.0.1 redirect, as a person's browser would. Exits 0 once the redirect
was delivered and answered 200, non-zero on any failure (the OAuth client then reports
browser_unavailable).

Environment:
  HEADLESS_BROWSER_USER  the user name typed into the sign-in form (default "alice")
  HEADLESS_BROWSER_DENY  "1": press Deny on the consent page
  HEADLESS_BROWSER_LOG   a file to append one JSON line per run to: {"opened": true, "consent":
                         the consent page's visible text, "delivered": status of the redirect}
                         (never a code, a state or a token)

Importable too: `sign_in(url, user=..., deny=...)` does the same in-process and returns the record.
"""

import html
import json
import os
import re
import sys
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx2

MAX_STEPS = 20


class BrowserError(Exception):
    pass


def _form(page_text):
    """(action, {hidden fields}, the names of the other inputs) of the page's first form, or None."""
    match = re.search(r"<form\b[^>]*>(.*?)</form>", page_text, re.S | re.I)
    if not match:
        return None
    tag = re.match(r"<form\b[^>]*>", match.group(0), re.I).group(0)
    action = re.search(r'action="([^"]*)"', tag)
    hidden, visible = {}, []
    for attributes in re.findall(r"<input\b([^>]*)>", match.group(1), re.I):
        name = re.search(r'name="([^"]*)"', attributes)
        if not name:
            continue
        if re.search(r'type="hidden"', attributes, re.I):
            value = re.search(r'value="([^"]*)"', attributes)
            hidden[html.unescape(name.group(1))] = html.unescape(value.group(1)) if value else ""
        else:
            visible.append(html.unescape(name.group(1)))
    return (html.unescape(action.group(1)) if action else None), hidden, visible


def _visible_text(page_text):
    text = re.sub(r"<(script|style)\b.*?</\1>", " ", page_text, flags=re.S | re.I)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", html.unescape(text)).strip()


def _redirect_base(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def sign_in(url, user=None, deny=None):
    """Drives one sign-in from the authorization URL to the delivered redirect. Returns
    {"opened", "consent", "delivered"}; raises BrowserError when a step fails."""
    user = user if user is not None else os.environ.get("HEADLESS_BROWSER_USER", "alice")
    deny = deny if deny is not None else os.environ.get("HEADLESS_BROWSER_DENY") == "1"
    redirect_uris = parse_qs(urlsplit(url).query).get("redirect_uri")
    if not redirect_uris or not redirect_uris[0].startswith("http://127.0.0.1:"):
        raise BrowserError("the authorization URL has no 127.0.0.1 redirect_uri")
    target = _redirect_base(redirect_uris[0])
    record = {"opened": True, "consent": None, "delivered": None}
    with httpx2.Client(follow_redirects=False, timeout=15) as http:
        response = http.get(url)
        for _ in range(MAX_STEPS):
            if response.status_code in (301, 302, 303, 307, 308):
                location = urljoin(str(response.url), response.headers["location"])
                if _redirect_base(location) == target:
                    delivered = http.get(location)
                    record["delivered"] = delivered.status_code
                    if delivered.status_code != 200:
                        raise BrowserError(f"the client's redirect answered HTTP {delivered.status_code}")
                    return record
                response = http.get(location)
                continue
            if response.status_code != 200:
                path = urlsplit(str(response.url)).path
                raise BrowserError(f"{path} answered HTTP {response.status_code}")
            form = _form(response.text)
            if form is None:
                raise BrowserError(f"{urlsplit(str(response.url)).path} has no form to fill in")
            action, fields, visible = form
            # A form without an action posts to the page's own URL, query included (HTML).
            action = urljoin(str(response.url), action) if action else str(response.url)
            if "txn_id" in fields and "csrf_token" in fields:
                record["consent"] = _visible_text(response.text)
                fields["action"] = "deny" if deny else "approve"
            elif "username" in visible or "sub" in visible:
                fields["username" if "username" in visible else "sub"] = user
            else:
                raise BrowserError(f"{urlsplit(action).path}: an unknown form")
            response = http.post(action, data=fields)
    raise BrowserError(f"no redirect to the client after {MAX_STEPS} steps")


def main(argv):
    if len(argv) != 2:
        print("usage: headless_browser.py URL", file=sys.stderr)
        return 64
    log = os.environ.get("HEADLESS_BROWSER_LOG")
    try:
        record = sign_in(argv[1])
    except (BrowserError, httpx2.HTTPError) as exc:
        record = {"opened": True, "consent": None, "delivered": None, "error": type(exc).__name__}
        # An HTTP library error's text may hold a URL with a code in it: only its class is shown.
        print(f"headless_browser: {exc if isinstance(exc, BrowserError) else type(exc).__name__}", file=sys.stderr)
        status = 1
    else:
        status = 0
    if log:
        with open(log, "a") as file:
            file.write(json.dumps(record) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv))
