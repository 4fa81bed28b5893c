"""Who may talk to the server, and what browsers are told about its answers.

- Host allow-list: a request whose ``Host`` is not a loopback name, the bound host or an
  ``--allow-host`` name gets 400. A web page on another site that rebinds its DNS name to
  127.0.0.1 (DNS rebinding) still sends its own name as ``Host``, so it cannot read the API.
- Origin check: a state-changing request (POST, PUT, PATCH, DELETE) that carries an ``Origin``
  other than the server's own (an allowed host on the server's port) gets 403, so another site
  cannot make a visitor's browser upload or delete. Requests without ``Origin`` (curl, scripts)
  are not browsers' cross-site requests and pass.
- Every answer carries a Content-Security-Policy (same origin only, no framing), nosniff,
  ``X-Frame-Options: DENY`` and ``Referrer-Policy: no-referrer``.
"""

from __future__ import annotations

import hashlib
import re
from base64 import b64encode
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})

#: The page and the API: everything from this origin only, images also from blob: (the page's
#: preview of the chosen file) and data:, nothing may frame the page.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("x-content-type-options", "nosniff"),
    ("x-frame-options", "DENY"),
    ("referrer-policy", "no-referrer"),
)
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_policy(html: str) -> str:
    """The CSP of the Swagger UI page: its own inline start-up script allowed by hash, and the
    inline styles Swagger UI sets; still nothing from another origin."""
    hashes = " ".join(
        f"'sha256-{b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )


def allowed_host_names(extra: Iterable[str] = ()) -> frozenset[str]:
    """Loopback names and ``extra`` (the bound host, --allow-host names); wildcard addresses
    (0.0.0.0, ::) name no host and are left out."""
    names = {_bare(name) for name in extra} - {"0.0.0.0", "::", ""}
    return frozenset({*LOOPBACK_HOSTS, *names})


def _bare(host: str) -> str:
    return host.strip().lower().removeprefix("[").removesuffix("]")


def split_host(value: str, default_port: int) -> tuple[str, int] | None:
    """``Host`` header -> (lower-case name without brackets, port), or None if malformed."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    name = parts.hostname
    if not name or parts.username is not None or parts.path or parts.query:
        return None
    return name, port if port is not None else default_port


class HostAndOriginGuard:
    """ASGI middleware: the Host allow-list, the Origin check and the security headers."""

    def __init__(self, app: ASGIApp, allowed_hosts: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self._refusal(scope)
        secured = _with_security_headers(send)
        if refusal is not None:
            await refusal(scope, receive, secured)
            return
        await self.app(scope, receive, secured)

    def _refusal(self, scope: Scope) -> JSONResponse | None:
        headers = _headers(scope)
        scheme = str(scope.get("scheme", "http"))
        default_port = 443 if scheme == "https" else 80
        host = split_host(headers.get("host", ""), default_port)
        if host is None or host[0] not in self.allowed:
            return _refuse(
                "BadHost",
                "this server does not answer to that host name; start it with "
                "--allow-host NAME to allow another",
                400,
            )
        origin = headers.get("origin")
        changes_state = scope["method"] in STATE_CHANGING
        if changes_state and origin is not None and not self._same_site(origin, host[1]):
            return _refuse("CrossOrigin", f"requests from origin {origin[:200]!r} are refused", 403)
        return None

    def _same_site(self, origin: str, port: int) -> bool:
        try:
            parts = urlsplit(origin)
            origin_port = parts.port
        except ValueError:
            return False
        if parts.scheme not in ("http", "https") or parts.hostname not in self.allowed:
            return False
        default = 443 if parts.scheme == "https" else 80
        return (origin_port if origin_port is not None else default) == port


def _headers(scope: Scope) -> dict[str, str]:
    found: dict[str, str] = {}
    for key, value in scope["headers"]:
        name = key.decode("latin-1").lower()
        if name in found:  # a repeated Host or Origin is malformed: keep an impossible value
            found[name] = "\x00"
        else:
            found[name] = value.decode("latin-1")
    return found


def _refuse(kind: str, detail: str, status: int) -> JSONResponse:
    return JSONResponse({"error": kind, "detail": detail}, status_code=status)


def _with_security_headers(send: Send) -> Send:
    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = MutableHeaders(scope=message)
            if "content-security-policy" not in headers:
                headers["content-security-policy"] = CONTENT_SECURITY_POLICY
            for name, value in SECURITY_HEADERS:
                headers[name] = value
        await send(message)

    return secured


__all__ = [
    "CONTENT_SECURITY_POLICY",
    "LOOPBACK_HOSTS",
    "HostAndOriginGuard",
    "allowed_host_names",
    "docs_policy",
    "split_host",
]
