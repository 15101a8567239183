"""Request bodies for the routes the integrations serve: read as a stream, never past the cap the
library applies (1 MiB), so an oversized body is refused without being held in memory."""

from typing import Optional

from starlette.requests import Request
from starlette.responses import Response

MAX_BODY_BYTES = 1 << 20

TOO_LARGE_BODY = b'{"error":"invalid_request","error_description":"The request body is too large."}'


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> Optional[bytes]:
    """The request body, or None as soon as more than ``limit`` bytes have arrived (a declared
    Content-Length over the limit: before reading any). Holds at most ``limit`` bytes."""
    declared = request.headers.get("content-length", "").strip()
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    stream = request.stream()
    try:
        async for chunk in stream:
            if len(body) + len(chunk) > limit:
                return None
            body += chunk
    finally:
        await stream.aclose()
    return bytes(body)


def too_large() -> Response:
    """413 with an OAuth-style error body; the connection is closed rather than drained."""
    return Response(
        content=TOO_LARGE_BODY,
        status_code=413,
        headers={"Content-Type": "application/json", "Cache-Control": "no-store", "Connection": "close"},
    )
