"""Where a feed says an image is: an http(s) URL (percent-encoded the way servers expect) or a
local file (a path or a ``file://`` URL). Anything else is refused before any request."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit, urlunsplit

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*):")
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
# RFC 3986 characters left as they are in a path or a query ('%' starts an escape kept as is).
_PATH_SAFE = "/%:@!$&'()*+,;=-._~"
_QUERY_SAFE = _PATH_SAFE + "?"


class BadLocationError(ValueError):
    """A location that names neither an http(s) URL nor a local file; the message says why."""


@dataclass(frozen=True)
class Location:
    """One parsed location: exactly one of ``url`` (normalised http(s)) and ``path`` is set."""

    url: str | None = None
    path: Path | None = None

    @property
    def host(self) -> str:
        """``host:port`` of a URL (the unit of per-host politeness); empty for a local file."""
        if self.url is None:
            return ""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return f"{parts.hostname}:{port}"


def _quote(text: str, safe: str) -> str:
    text = _LONE_PERCENT.sub("%25", text)
    out = []
    for char in text:
        if char.isascii() and (char.isalnum() or char in safe):
            out.append(char)
        else:
            # surrogate escapes are raw bytes of a header that was not UTF-8: sent as they came
            try:
                raw = char.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError as exc:
                raise BadLocationError(f"the URL holds an invalid character {char!r}") from exc
            out.extend(f"%{byte:02X}" for byte in raw)
    return "".join(out)


def _ascii_host(host: str) -> str:
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise BadLocationError(f"the host name {host!r} is not a valid domain name") from exc


def normalise_url(url: str) -> str:
    """An http(s) URL as sent on the wire: spaces and non-ASCII characters of the path and
    query percent-encoded as UTF-8 (existing escapes kept), an internationalised host name in
    IDNA form, the fragment dropped. Raises BadLocationError when it is not a usable URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise BadLocationError(f"{exc}") from exc
    if parts.scheme.lower() not in ("http", "https"):
        raise BadLocationError(f"scheme {parts.scheme!r} is not http or https")
    if not parts.hostname:
        raise BadLocationError("the URL has no host")
    host = _ascii_host(parts.hostname)
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host if port is None else f"{host}:{port}"
    if parts.username is not None:
        userinfo = parts.netloc.rpartition("@")[0]
        netloc = f"{_quote(userinfo, '%:!$&()*+,;=-._~')}@{netloc}"
    return urlunsplit(
        (
            parts.scheme.lower(),
            netloc,
            _quote(parts.path or "/", _PATH_SAFE),
            _quote(parts.query, _QUERY_SAFE),
            "",
        )
    )


def resolve_redirect(base: str, location: str) -> str:
    """The normalised absolute URL a redirect's ``Location`` header points to."""
    return normalise_url(urljoin(base, location.strip()))


def parse_location(text: str) -> Location:
    """A feed's image reference as a Location: http(s) URLs normalised (``//host/...`` read
    as https), ``file://`` URLs and plain paths as local files (a relative path is relative
    to the working folder; callers resolve it against the feed's folder first). Raises
    BadLocationError for anything else (empty text, ftp:, data:, javascript:, ...)."""
    text = text.strip()
    if not text:
        raise BadLocationError("the location is empty")
    if text.startswith("//"):  # protocol-relative, as web pages write CDN URLs: https
        return Location(url=normalise_url(f"https:{text}"))
    match = _SCHEME.match(text)
    if match is None:
        return Location(path=Path(text).expanduser())
    scheme = match.group(1).lower()
    if scheme in ("http", "https"):
        return Location(url=normalise_url(text))
    if scheme == "file":
        parts = urlsplit(text)
        if parts.netloc not in ("", "localhost"):
            raise BadLocationError(f"file URL on another host {parts.netloc!r}")
        return Location(path=Path(unquote(parts.path)))
    if len(scheme) == 1 and text[2:3] in ("\\", "/"):  # a Windows drive letter, C:\...
        return Location(path=Path(text))
    raise BadLocationError(f"scheme {scheme!r} is not http, https or file")


__all__ = ["BadLocationError", "Location", "normalise_url", "parse_location", "resolve_redirect"]
