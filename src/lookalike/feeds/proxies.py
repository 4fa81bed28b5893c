"""What the environment says about reaching a host: the proxy (``http_proxy``, ``https_proxy``,
``no_proxy``) and the ``.netrc`` credentials, read once per fetch and remembered per host.

aiohttp's ``trust_env`` reads both again for every request, through two thread hops and a
``.netrc`` parse each; at hundreds of requests a second that is CPU the decoders need."""

from __future__ import annotations

import netrc
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL


@dataclass(frozen=True)
class HostRoute:
    """How to reach one host: through ``proxy`` (or directly), with these credentials."""

    proxy: URL | None
    proxy_auth: aiohttp.BasicAuth | None
    auth: aiohttp.BasicAuth | None


class EnvironmentRoutes:
    """The environment's proxies and ``.netrc``, read when made; ``route`` per (scheme, host)."""

    def __init__(self) -> None:
        self._proxies = {
            scheme: url
            for scheme, url in urllib.request.getproxies().items()
            if scheme in ("http", "https")
        }
        self._netrc = _read_netrc()
        self._routes: dict[tuple[str, str], HostRoute] = {}

    def route(self, scheme: str, host: str) -> HostRoute:
        key = (scheme, host)
        known = self._routes.get(key)
        if known is None:
            known = self._routes[key] = self._find(scheme, host)
        return known

    def _find(self, scheme: str, host: str) -> HostRoute:
        import aiohttp
        from yarl import URL

        auth = self._credentials(host)
        proxy_text = self._proxies.get(scheme)
        if proxy_text is None or urllib.request.proxy_bypass(host):
            return HostRoute(None, None, auth)
        proxy = URL(proxy_text)
        if proxy.scheme not in ("http", ""):  # aiohttp speaks to HTTP proxies only
            return HostRoute(None, None, auth)
        proxy_auth = None
        if proxy.user is not None:
            proxy_auth = aiohttp.BasicAuth(proxy.user, proxy.password or "")
        elif proxy.host is not None:
            proxy_auth = self._credentials(proxy.host)
        return HostRoute(proxy.with_user(None), proxy_auth, auth)

    def _credentials(self, host: str) -> aiohttp.BasicAuth | None:
        import aiohttp

        found = self._netrc.authenticators(host) if self._netrc is not None else None
        if found is None:
            return None
        login, _, password = found
        return aiohttp.BasicAuth(login or "", password or "")


def _read_netrc() -> netrc.netrc | None:
    """The user's ``.netrc`` (or ``$NETRC``), or None where there is none or it is unreadable
    (as aiohttp's ``trust_env`` treats it)."""
    path = os.environ.get("NETRC")
    try:
        return netrc.netrc(path or str(Path.home() / ".netrc"))
    except (OSError, RuntimeError, netrc.NetrcParseError):
        return None


__all__ = ["EnvironmentRoutes", "HostRoute"]
