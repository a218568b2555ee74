"""The simulated Asterisk's manager interface: an AMI server over TCP.

Banner, login, responses and events as a real Asterisk 22 writes them (``\\r\\n``
line ends, an empty line after each message, ``ActionID`` echoed, list actions
answered with a response, events, then a ``...Complete`` event). Behaviour
comes from ``SimPbx``; this module only owns the sockets.

A PBX that is still starting (``booting``) answers as a real Asterisk 22 does
(fixture ``ami/session-booting.json``): the manager takes logins long before
app_queue has loaded and the dialplan is fully booted, so ``QueueStatus`` and
the other queue actions are unknown commands, ``Originate`` finds no
extension, and ``FullyBooted`` comes only once ``boot()`` is called, to every
client then logged in, instead of right after the login.
"""

from __future__ import annotations

import asyncio
import contextlib

from ivr.rehearsal.sim.pbx import Message, SimPbx, render

BANNER = b"Asterisk Call Manager/11.0.0\r\n"
FULLY_BOOTED: Message = [("Event", "FullyBooted"), ("Privilege", "system,all"), ("Uptime", "1"),
                         ("LastReload", "1"), ("Status", "Fully Booted")]


class SimAmiServer:
    def __init__(self, pbx: SimPbx, *, username: str = "ivr", secret: str = "ivrsecret",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.pbx = pbx
        self.username, self.secret = username, secret
        self.host, self.port = host, port
        self.server: asyncio.base_events.Server | None = None
        self.clients: set[asyncio.StreamWriter] = set()
        self.actions: list[dict[str, str]] = []      # every action received, for tests
        self.fail_actions: dict[str, int] = {}       # action name (lower) -> how many to refuse
        self.ignore_actions: dict[str, int] = {}     # action name (lower) -> how many to leave unanswered (too busy)
        self._tasks: set[asyncio.Task] = set()
        self.logins = 0                              # successful logins so far (a new leader logs in)
        self.booting = False                         # still starting: see the module's docstring

    def boot(self) -> None:
        """The PBX finishes starting: every client logged in hears FullyBooted."""
        self.booting = False
        for w in list(self.clients):
            w.write(render(FULLY_BOOTED))

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._client, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        """Like an Asterisk restart: every manager connection drops."""
        if self.server is not None:
            self.server.close()
        for w in list(self.clients):
            w.close()
        self.clients.clear()
        for t in list(self._tasks):
            t.cancel()
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.server.wait_closed()
        self.server = None

    def drop_clients(self) -> int:
        """The AMI link breaks (a network fault): every manager connection is
        cut, the server keeps listening. Returns how many were cut."""
        cut = list(self.clients)
        self.clients.clear()
        for w in cut:
            w.transport.abort()
        return len(cut)

    def flush(self) -> int:
        """Send every event the PBX emitted since the last flush to every
        logged-in client; returns how many messages went out."""
        events = self.pbx.drain()
        for w in list(self.clients):
            for msg in events:
                w.write(render(msg))
        return len(events)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        writer.write(BANNER)
        try:
            while True:
                msg = await _read_message(reader)
                if msg is None:
                    break
                self.actions.append(msg)
                name = msg.get("Action", "").lower()
                if self.ignore_actions.get(name, 0) > 0:
                    self.ignore_actions[name] -= 1
                    continue
                for out in self._answer(msg, writer):
                    writer.write(render(out))
                if msg.get("Action", "").lower() != "login":
                    self.flush()
                await writer.drain()
                if msg.get("Action", "").lower() == "logoff":
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self.clients.discard(writer)
            self._tasks.discard(task)
            writer.close()

    def _answer(self, msg: dict[str, str], writer: asyncio.StreamWriter) -> list[Message]:
        name = msg.get("Action", "").lower()
        aid = msg.get("ActionID", "")
        if name == "login":
            if msg.get("Username") == self.username and msg.get("Secret") == self.secret:
                self.clients.add(writer)
                self.logins += 1
                accepted: Message = [("Response", "Success"), ("ActionID", aid), ("Message", "Authentication accepted")]
                return [accepted] if self.booting else [accepted, FULLY_BOOTED]
            return [[("Response", "Error"), ("ActionID", aid), ("Message", "Authentication failed")]]
        if writer not in self.clients:
            return [[("Response", "Error"), ("ActionID", aid), ("Message", "Permission denied")]]
        if name == "logoff":
            return [[("Response", "Goodbye"), ("ActionID", aid), ("Message", "Thanks for all the fish.")]]
        if self.booting and (name.startswith("queue") or name == "originate"):
            message = "Extension does not exist." if name == "originate" else \
                f"Invalid/unknown command: {msg.get('Action')}. Use Action: ListCommands to show available commands."
            return [[("Response", "Error"), ("ActionID", aid), ("Message", message)]]
        if self.fail_actions.get(name, 0) > 0:
            self.fail_actions[name] -= 1
            return [[("Response", "Error"), ("ActionID", aid), ("Message", "Simulated failure")]]
        return self.pbx.action(msg)


async def _read_message(reader: asyncio.StreamReader) -> dict[str, str] | None:
    msg: dict[str, str] = {}
    while True:
        line = await reader.readline()
        if not line:
            return None
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        if not text:
            if msg:
                return msg
            continue
        k, _, v = text.partition(":")
        msg[k.strip()] = v.strip()
