"""FastAGI server on asyncio streams.

Written here rather than taken from panoramisk: its header loop spins on a
half-open socket, it swallows handler exceptions, it uses ``asyncio.coroutine``
(gone in 3.11), and it takes the ``HANGUP`` notice for a command's response
(docs/agi.md). Every read has a deadline and an end-of-stream branch; every
connection task is tracked so ``stop`` can drain calls in progress."""

from __future__ import annotations

import asyncio
import socket
from typing import Awaitable, Callable

from ivr.agi.protocol import parse_env_line
from ivr.errors import AgiClosed, AgiTimeout

HEADER_TIMEOUT_S = 5.0
MAX_HEADER_LINES = 200
LINE_LIMIT = 64 * 1024


class StreamTransport:
    __slots__ = ("reader", "writer")
    hangup_signalled = False  # FastAGI is told by a HANGUP line instead

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def write_line(self, line: str) -> None:
        if self.writer.is_closing():
            raise AgiClosed("connection closed by the PBX")
        self.writer.write(line.encode("utf-8"))

    async def read_line(self, timeout_s: float) -> str:
        try:
            async with asyncio.timeout(timeout_s):
                data = await self.reader.readline()
        except TimeoutError as exc:
            raise AgiTimeout(f"no answer within {timeout_s:g}s") from exc
        except (ConnectionError, ValueError) as exc:  # ValueError: line over the limit
            raise AgiClosed(str(exc) or type(exc).__name__) from exc
        if not data.endswith(b"\n"):
            raise AgiClosed("connection closed by the PBX")
        return data[:-1].decode("utf-8", "replace").rstrip("\r")


async def read_env(transport: StreamTransport, timeout_s: float | None = None) -> dict[str, str]:
    """The ``agi_*`` block up to its blank line, read in one go under one
    deadline (a timer per header line would cost more CPU than the whole
    dialogue). AgiTimeout/AgiClosed on a peer that stalls or leaves half-way."""
    try:
        async with asyncio.timeout(timeout_s or HEADER_TIMEOUT_S):
            block = await transport.reader.readuntil(b"\n\n")
    except TimeoutError as exc:
        raise AgiTimeout("AGI header not complete in time") from exc
    except asyncio.IncompleteReadError as exc:
        raise AgiClosed("connection closed during the AGI header") from exc
    except (asyncio.LimitOverrunError, ConnectionError) as exc:
        raise AgiClosed(f"bad AGI header: {exc}") from exc
    env: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").splitlines()[:MAX_HEADER_LINES]:
        kv = parse_env_line(line.rstrip("\r"))
        if kv:
            env[kv[0]] = kv[1]
    return env


CallHandler = Callable[[dict[str, str], StreamTransport], Awaitable[None]]


class FastAgiServer:
    def __init__(self, handler: CallHandler, host: str, port: int, log) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.log = log
        self.server: asyncio.AbstractServer | None = None
        self.calls: set[asyncio.Task] = set()
        self.accepting = False

    async def start(self) -> None:
        self.server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=LINE_LIMIT, backlog=4096, reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]
        self.accepting = True
        self.log.info("fastagi_listening", host=self.host, port=self.port)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        self.calls.add(task)
        try:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = StreamTransport(reader, writer)
            try:
                env = await read_env(transport)
            except (AgiTimeout, AgiClosed) as exc:
                self.log.warning("agi_header_failed", error=str(exc))
                return
            if not self.accepting:
                # Draining: a call that arrives now gets no flow; ending the AGI
                # makes the dialplan continue (and queue the caller itself).
                transport.write_line('SET VARIABLE IVR_RESULT "FALLBACK"\n')
                return
            await self.handler(env, transport)
        except asyncio.CancelledError:
            raise
        except Exception:  # the handler logs its own failures; this is the last net
            self.log.exception("agi_connection_failed")
        finally:
            self.calls.discard(task)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    async def stop(self, drain_s: float) -> int:
        """Stop accepting calls, let calls in progress finish for up to
        ``drain_s``, then cancel what remains. Returns how many were cancelled."""
        self.accepting = False
        if self.server is not None:
            self.server.close()
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
