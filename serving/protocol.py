"""The HTTP/1.1 connection layer under the app: uvicorn's h11 protocol with three guards a public
service needs and uvicorn leaves out.

- A connection must finish a request's headers within ``header_timeout_s`` of connecting (or of
  its previous response): one that sends nothing, or trickles its headers, is answered 408 and
  closed, so idle sockets cannot pile up (keep-alive idling between requests stays uvicorn's
  shorter ``timeout_keep_alive``).
- At most ``max_per_client`` connections per client address at once; the next is answered 503
  and closed before it can take anything else.
- A request that is not HTTP is answered with the service's JSON error shape, naming what h11
  found wrong, instead of uvicorn's plain-text "Invalid HTTP request received.".

A slow request BODY is the app's to bound (``--body-timeout``), and it holds no inference slot
while it arrives (:func:`serving.routes.operations.operate` admits a request once its body is in).
"""
from __future__ import annotations

import json

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_OPEN: dict[str, int] = {}  # client address -> connections open now (one server per process)


def guarded_protocol(header_timeout_s: float = 10.0, max_per_client: int = 256) -> type:
    """The protocol class for ``uvicorn.run(http=...)`` with these limits."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"header_timeout_s": float(header_timeout_s), "max_per_client": int(max_per_client)})


class GuardedH11Protocol(H11Protocol):
    header_timeout_s = 10.0
    max_per_client = 256

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._host = self.client[0] if self.client else ""
        _OPEN[self._host] = _OPEN.get(self._host, 0) + 1
        self._header_timer = None
        if _OPEN[self._host] > self.max_per_client:
            self._refuse(503, f"this client address has {self.max_per_client} connections open (the limit, "
                              "--max-connections-per-client); close some and retry")
            return
        self._arm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        if getattr(self, "_host", None) is not None:
            left = _OPEN.get(self._host, 1) - 1
            if left > 0:
                _OPEN[self._host] = left
            else:
                _OPEN.pop(self._host, None)
            self._host = None
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._header_timer is None and self.conn.their_state is h11.IDLE:
            self._arm()  # the first bytes of a next request on a kept-alive connection
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._disarm()  # the headers are in

    # -- the header clock ------------------------------------------------------------------------
    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _disarm(self) -> None:
        if getattr(self, "_header_timer", None) is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self._refuse(408, f"the request's headers did not arrive within {self.header_timeout_s:g} s of "
                              "connecting (--header-timeout); the connection is closed")

    # -- answers before the app ------------------------------------------------------------------
    def send_400_response(self, msg: str) -> None:
        self._refuse(400, "malformed HTTP request: not HTTP/1.1 (check the request line, the headers and "
                          "their line endings)")

    def _refuse(self, status: int, message: str) -> None:
        """Answer ``status`` with ``{"error": message}`` and close, whatever state h11 is in."""
        body = json.dumps({"error": message}).encode()
        head = (f"HTTP/1.1 {status} {h11_reason(status)}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode()
        if not self.transport.is_closing():
            self.transport.write(head + body)
            self.transport.close()


def h11_reason(status: int) -> str:
    return {400: "Bad Request", 408: "Request Timeout", 503: "Service Unavailable"}[status]
