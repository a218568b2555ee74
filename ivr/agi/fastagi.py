"""FastAGI server on asyncio (a Protocol per connection).

Written here rather than taken from panoramisk: its header loop spins on a
half-open socket, it swallows handler exceptions, it uses ``asyncio.coroutine``
(gone in 3.11), and it takes the ``HANGUP`` notice for a command's response
(docs/agi.md). Every read has a deadline and an end-of-stream branch; every
connection task is tracked so ``stop`` can drain calls in progress."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

from ivr.agi.protocol import parse_header, split_header_lines
from ivr.errors import AgiClosed, AgiTimeout

if TYPE_CHECKING:
    from ivr.agi.channel import LineTransport
    from ivr.logs import Log

HEADER_TIMEOUT_S = 5.0   # read when a connection opens: tests shorten it
LINE_LIMIT = 64 * 1024


class AgiConnection(asyncio.Protocol):
    """One FastAGI connection, as an asyncio Protocol and the call's
    ``LineTransport``. A Protocol rather than StreamReader/Writer: the call path
    is a handful of short lines each way, and the streams' machinery plus an
    ``asyncio.timeout`` per read cost more CPU than the dialogue itself
    (docs/benchmarks.md). Each read waits on one future with one timer."""

    hangup_signalled = False  # FastAGI is told by a HANGUP line instead

    def __init__(self, server: FastAgiServer) -> None:
        self.server = server
        assert server.loop is not None  # start() set it before the first connection
        self.loop = server.loop
        self.transport: asyncio.Transport  # set by connection_made, before any other call
        self.buf = b""
        self.lines: list[str] = []    # rarely more than one: a list is 56 bytes, a deque 760
        self.waiter: asyncio.Future[None] | None = None
        self.closed = False
        self.header_done = False
        self.header_timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ---------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # a TCP server's transport (asyncio's or uvloop's)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.waiting_header.add(self)
        self.header_timer = self.loop.call_later(HEADER_TIMEOUT_S, self._header_late)

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.header_done:
            end = buf.find(b"\n\n")
            if end < 0:
                if len(buf) > LINE_LIMIT:
                    self._give_up("AGI header too long")
                else:
                    self.buf = buf
                return
            self._header(buf[:end])
            buf = buf[end + 2:]
        if b"\n" in buf:
            *complete, buf = buf.split(b"\n")
            self.lines.extend(c.decode("utf-8", "replace").rstrip("\r") for c in complete)
            self._wake()
        elif len(buf) > LINE_LIMIT:
            self.buf = b""
            self.transport.close()
            return
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.server.waiting_header.discard(self)
        self._wake()

    # -- the header -----------------------------------------------------------------

    def _header(self, block: bytes) -> None:
        self.header_done = True
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.server.waiting_header.discard(self)
        env, duplicates = parse_header(split_header_lines(block.decode("utf-8", "replace")))
        if duplicates:
            self.server.log.warning("agi_header_duplicate_keys", keys=sorted(set(duplicates)))
        self.task = self.loop.create_task(self.server._call(self, env))

    def _header_late(self) -> None:
        self._give_up("AGI header not complete in time")

    def _give_up(self, why: str) -> None:
        self.server.log.warning("agi_header_failed", error=why)
        self.transport.abort()

    # -- LineTransport ----------------------------------------------------------------

    def _wake(self) -> None:
        w = self.waiter
        if w is not None and not w.done():
            w.set_result(None)

    def write_line(self, line: str) -> None:
        if self.closed or self.transport.is_closing():
            raise AgiClosed("connection closed by the PBX")
        self.transport.write(line.encode("utf-8"))

    async def read_line(self, timeout_s: float) -> str:
        if self.lines:
            return self.lines.pop(0)
        if self.closed:
            raise AgiClosed("connection closed by the PBX")
        self.waiter = w = self.loop.create_future()
        timer = self.loop.call_later(timeout_s, _expire, w)
        try:
            await w
        finally:
            timer.cancel()
            self.waiter = None
        if self.lines:
            return self.lines.pop(0)
        if self.closed:
            raise AgiClosed("connection closed by the PBX")
        raise AgiTimeout(f"no answer within {timeout_s:g}s")

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _expire(w: asyncio.Future[None]) -> None:
    if not w.done():
        w.set_result(None)


CallHandler = Callable[[dict[str, str], "LineTransport"], Awaitable[object]]  # what it returns is not used


class FastAgiServer:
    def __init__(self, handler: CallHandler, host: str, port: int, log: Log) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.log = log
        self.server: asyncio.AbstractServer | None = None
        self.calls: set[asyncio.Task[Any]] = set()   # asyncio.current_task() of each call
        self.waiting_header: set[AgiConnection] = set()
        self.accepting = False
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.server = await self.loop.create_server(
            lambda: AgiConnection(self), self.host, self.port, backlog=4096, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        self.accepting = True
        self.log.info("fastagi_listening", host=self.host, port=self.port)

    async def _call(self, conn: AgiConnection, env: dict[str, str]) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.calls.add(task)
        try:
            if not self.accepting:
                # Draining: a call that arrives now gets no flow; ending the AGI
                # makes the dialplan continue (and queue the caller itself).
                conn.write_line('SET VARIABLE IVR_RESULT "FALLBACK"\n')
                return
            await self.handler(env, conn)
        except asyncio.CancelledError:
            raise
        except Exception:  # the handler logs its own failures; this is the last net
            self.log.exception("agi_connection_failed")
        finally:
            self.calls.discard(task)
            conn.close()

    async def stop(self, drain_s: float) -> int:
        """Stop accepting calls, let calls in progress finish for up to
        ``drain_s``, then cancel what remains. Returns how many were cancelled."""
        self.accepting = False
        if self.server is not None:
            self.server.close()
        for conn in list(self.waiting_header):
            conn.close()
        pending = set(self.calls)
        if pending and drain_s > 0:
            self.log.info("draining_calls", calls=len(pending), drain_s=drain_s)
            _, pending = await asyncio.wait(pending, timeout=drain_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()
        return len(pending)
