"""Servers under test for `ivr bench agi`, each in its own process so its CPU
time can be read from /proc: the engine, or a bare asyncio FastAGI responder
that sends the same command lines and does nothing else."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile


async def bare(port: int, commands: list[str]) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await reader.readline()) not in (b"\n", b""):
                pass
            for cmd in commands:
                writer.write(cmd.encode())
                if not await reader.readline():
                    break
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def engine(port: int) -> None:
    from ivr import logs
    from ivr.runtime.engine import serve
    from ivr.settings import load_settings

    data = tempfile.mkdtemp(prefix="ivr-bench-")
    settings = load_settings({**os.environ, "IVR_AGI_LISTEN": f"127.0.0.1:{port}", "IVR_DATA_DIR": data,
                              "IVR_LOG_FORMAT": "json",
                              "IVR_LEADER": "no",   # measure the call path, not the leader's work
                              "IVR_HTTP_LISTEN": os.environ.get("IVR_BENCH_HTTP_LISTEN", "127.0.0.1:0")})
    logs.configure(settings.log_level, "json", stream=open(os.devnull, "w"))
    ready = asyncio.Event()

    async def announce():
        await ready.wait()
        print("ready", flush=True)

    announcer = asyncio.get_running_loop().create_task(announce())
    try:
        await serve(settings, ready=ready)
    finally:
        announcer.cancel()


def main() -> None:
    kind, port, loop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    coro = bare(port, json.loads(sys.argv[4])) if kind == "bare" else engine(port)
    if loop == "uvloop":
        import uvloop
        uvloop.run(coro)
    else:
        asyncio.run(coro)


if __name__ == "__main__":
    main()
