"""Running the app on uvicorn with deadlines on what clients send.

uvicorn closes idle keep-alive connections, but a client that sends its request headers a
byte at a time resets that timer with every byte and holds the connection for ever (and a
first request has no timer at all). Here each request's headers must be complete within
``header_timeout`` seconds of the connection opening (or of the previous answer), or the
connection is closed; h11's limit on an incomplete header block bounds their size. The body
has its own deadline (``body_timeout``, in :class:`lookalike.web.app.UploadLimit`).
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

#: Largest request head (request line and headers) accepted, in bytes.
MAX_HEADER_BYTES = 16 * 1024


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, with a deadline on each request's headers."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm_header_deadline()

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a request's headers are all in
            self._cancel_header_deadline()

    def on_response_complete(self) -> None:
        self._arm_header_deadline()  # the next request on this connection gets its own
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_deadline()
        super().connection_lost(exc)

    def _arm_header_deadline(self) -> None:
        self._cancel_header_deadline()
        self._header_deadline = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _cancel_header_deadline(self) -> None:
        deadline = getattr(self, "_header_deadline", None)
        if deadline is not None:
            deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        handling = self.cycle is not None and not self.cycle.response_complete
        if not handling and not self.transport.is_closing():
            self.transport.close()


def protocol_with_deadline(header_timeout: float) -> type[DeadlineH11Protocol]:
    """The protocol class uvicorn should use, with this header deadline."""
    return type("ServeH11Protocol", (DeadlineH11Protocol,), {"header_timeout": header_timeout})


def uvicorn_options(header_timeout: float) -> dict[str, object]:
    """Keyword arguments for ``uvicorn.run``: the protocol with the header deadline, a short
    keep-alive and h11's header size limit."""
    return {
        "http": protocol_with_deadline(header_timeout),
        "timeout_keep_alive": 5,
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }


__all__ = ["MAX_HEADER_BYTES", "DeadlineH11Protocol", "protocol_with_deadline", "uvicorn_options"]
