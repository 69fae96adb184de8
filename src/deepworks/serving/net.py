"""The connections themselves: what uvicorn leaves open to a slow or greedy client.

uvicorn times out an idle keep-alive connection, but not one that trickles its request head a byte at a time (300
such "slow-loris" connections stayed open for 40 s, each a file descriptor), and it accepts any number of
connections. The protocol here adds both bounds: a request head must arrive in full within `header_timeout_s` of
the connection (or of the previous answer), else 408 and the connection is closed; past `max_connections` open
connections a new one is answered 503 and closed. Bytes that are not HTTP get uvicorn's 400, in the server's one
error shape. (A body's own deadline is checked where the app reads it:
app.capped.)
"""

from __future__ import annotations

import ipaddress
import json

from ..errors import ConfigError


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_exposure(host: str, token: str | None, insecure: bool) -> None:
    """Only this machine can reach a server on a loopback address; any other address needs a token (or --insecure)."""
    if not is_loopback(host) and token is None and not insecure:
        raise ConfigError(f"--host {host} lets other machines reach the server, so it needs --token TOKEN (clients "
                          f"then send 'Authorization: Bearer TOKEN'). Received: no token. Add --token, or --insecure "
                          f"if the network is yours alone.")


def check_token_length(token: str | None) -> None:
    if token is not None and len(token) < 8:
        raise ConfigError(f"--token must be at least 8 characters long. Received: {len(token)}.")


def raw_error(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 error answer in the server's one shape, written straight to a connection that the app has
    not reached (or never will)."""
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n\r\n")
    return head.encode() + body


OPEN_REQUESTS = "deepworks.open_requests"  # a request's scope: the requests this server has begun and not answered
                                          # (the batcher runs a request at once only when it is the only one)


class ConnectionGuard:
    """What GuardedProtocol adds to uvicorn's HTTP protocol class, which it precedes in the bases: the cap on open
    connections and the request-head deadline of `guard_limits` (a class attribute the subclass sets)."""

    guard_limits = None
    head_timer = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        app = self.app

        async def app_with_head_in(scope, receive, send):  # called once a request's head has arrived in full
            self.stop_head_timer()
            scope[OPEN_REQUESTS] = getattr(self, "tasks", ())  # uvicorn's set of every connection's request task
            return await app(scope, receive, send)

        self.app = app_with_head_in

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        limits = self.guard_limits
        if len(self.connections) > limits.max_connections:
            transport.write(raw_error(503, "Service Unavailable", f"Expected at most {limits.max_connections} "
                                      f"open connections (--max-connections). Received: one more; try again "
                                      f"when others have closed."))
            transport.close()
            return
        self.start_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self.start_head_timer()  # the next request's head (uvicorn's keep-alive timer covers silence)

    def connection_lost(self, exc) -> None:
        self.stop_head_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:  # a request that is not HTTP: in the one shape too
        self.stop_head_timer()
        self.transport.write(raw_error(400, "Bad Request", f"Expected an HTTP/1.1 request. Received: bytes that "
                                                           f"are not one ({msg})"))
        self.transport.close()

    def start_head_timer(self) -> None:
        self.stop_head_timer()
        self.head_timer = self.loop.call_later(self.guard_limits.header_timeout_s, self.head_timed_out)

    def stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def head_timed_out(self) -> None:
        self.head_timer = None
        if not self.transport.is_closing():
            self.transport.write(raw_error(408, "Request Timeout", f"Expected a request's line and headers "
                                           f"within {self.guard_limits.header_timeout_s:g} s (--header-timeout). "
                                           f"Received: part of them."))
            self.transport.close()


def guarded_protocol(limits):
    """uvicorn's HTTP protocol class (httptools when installed, else h11) with a request-head deadline and a cap
    on open connections, for uvicorn.Config(http=...)."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    class GuardedProtocol(ConnectionGuard, AutoHTTPProtocol):
        guard_limits = limits

    return GuardedProtocol


def make_server(app, host: str, port: int, limits, log_level: str = "warning", graceful_s: float = 30):
    """A uvicorn server of `app` with the guarded protocol; requests in flight at Ctrl-C or SIGTERM finish first
    (up to `graceful_s`)."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, http=guarded_protocol(limits),
                            timeout_graceful_shutdown=graceful_s)
    return uvicorn.Server(config)
