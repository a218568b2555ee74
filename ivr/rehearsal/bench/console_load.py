"""A load-generator process for `ivr bench agi --console-load`: the console under
attack and in heavy use while calls run.

- ``flood`` clients post wrong passwords as fast as answers come back (made-up
  and real user names, from one address: the rate limits answer most with 429);
- ``wallboards`` seat managers' wallboards hold the event stream open;
- one operations user uploads a one-minute recording every few seconds;
- one auditor asks for the month's callback report again and again (over the
  backlog the bench seeded).

Runs until a line arrives on stdin, then prints one JSON line of what it did."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

UPLOAD_EVERY_S = 5.0       # a busy afternoon's announcements, not a denial of service


def make_upload(seconds: int = 60) -> bytes:
    """A minute of speech-band noise as MP3, the size of a real announcement."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "a.mp3"
        subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", f"anoisesrc=d={seconds}:c=pink:r=44100",
                        "-ac", "2", "-b:a", "128k", str(out)], check=True, timeout=120)
        return out.read_bytes()


async def _signed_in(base: str, user: str, password: str) -> tuple[aiohttp.ClientSession, str]:
    s = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))    # cookies from 127.0.0.1
    async with s.post(f"{base}/api/login", json={"user": user, "password": password}) as r:
        if r.status != 200:
            raise RuntimeError(f"sign-in of {user} failed: {r.status} {await r.text()}")
        return s, (await r.json())["csrf"]


async def run(port: int, users: dict, wallboards: int, flood: int, stop: asyncio.Event) -> dict:
    base = f"http://127.0.0.1:{port}"
    load = _Load(base, stop)
    upload = await asyncio.to_thread(make_upload)
    boards = [await _signed_in(base, users["seat_manager"][0], users["seat_manager"][1]) for _ in range(wallboards)]
    ops = await _signed_in(base, *users["operations"])
    audit = await _signed_in(base, *users["auditor"])

    tasks = [asyncio.create_task(load.wallboard(s)) for s, _ in boards]
    tasks += [asyncio.create_task(load.flooder(i, users["seat_manager"][0])) for i in range(flood)]
    skip = os.environ.get("IVR_BENCH_SKIP", "").split(",")      # to find which part costs what
    parts = (("upload", partial(load.uploader, ops, upload)), ("report", partial(load.reporter, audit)))
    tasks += [asyncio.create_task(f()) for name, f in parts if name not in skip]
    await asyncio.sleep(1.0)            # the wallboards are connected
    load.started.set()
    print(json.dumps({"started": True}), flush=True)
    await stop.wait()
    await asyncio.sleep(0)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for s, _ in [*boards, ops, audit]:
        await s.close()
    return load.summary()


class _Load:
    """The console's users during one run, one method each, and what they saw.
    Each waits for ``started`` (the wallboards connected) and runs until ``stop``."""

    def __init__(self, base: str, stop: asyncio.Event) -> None:
        self.base = base
        self.stop = stop
        self.started = asyncio.Event()
        self.stats: dict[str, Any] = {"flood": collections.Counter(), "wallboard_events": 0, "uploads": [],
                                      "reports": [], "errors": collections.Counter()}

    async def wallboard(self, s: aiohttp.ClientSession) -> None:
        async with s.get(f"{self.base}/api/events", timeout=aiohttp.ClientTimeout(total=None)) as r:
            while not self.stop.is_set():
                line = await r.content.readline()
                if not line:
                    self.stats["errors"]["wallboard_closed"] += 1
                    return
                if line.startswith(b"event: board"):
                    self.stats["wallboard_events"] += 1

    async def flooder(self, i: int, real_user: str) -> None:
        """Wrong passwords, for made-up user names and a real one in turn."""
        async with aiohttp.ClientSession() as s:
            n = 0
            await self.started.wait()
            while not self.stop.is_set():
                user = real_user if n % 2 else f"guess{i}-{n}"
                async with s.post(f"{self.base}/api/login", json={"user": user, "password": f"wrong-{n}"}) as r:
                    await r.read()
                    self.stats["flood"][str(r.status)] += 1
                n += 1

    async def uploader(self, ops: tuple[aiohttp.ClientSession, str], upload: bytes) -> None:
        s, csrf = ops
        await self.started.wait()
        while not self.stop.is_set():
            form = aiohttp.FormData()
            form.add_field("name", "bench/console-load")
            form.add_field("file", upload, filename="announcement.mp3")
            t = time.perf_counter()
            async with s.post(f"{self.base}/api/prompts", data=form, headers={"X-CSRF-Token": csrf}) as r:
                await r.read()
                if r.status == 200:
                    self.stats["uploads"].append(time.perf_counter() - t)
                else:
                    self.stats["errors"][f"upload_{r.status}"] += 1
            await asyncio.sleep(UPLOAD_EVERY_S)

    async def reporter(self, audit: tuple[aiohttp.ClientSession, str]) -> None:
        s, _ = audit
        today = dt.date.today()
        q = f"from={(today - dt.timedelta(days=30)).isoformat()}&to={today.isoformat()}"
        await self.started.wait()
        while not self.stop.is_set():
            t = time.perf_counter()
            async with s.get(f"{self.base}/api/callbacks/report?{q}") as r:
                body = await r.json()
                if r.status == 200:
                    self.stats["reports"].append(time.perf_counter() - t)
                    self.stats["report_callbacks"] = body.get("callbacks")
                else:
                    self.stats["errors"][f"report_{r.status}"] += 1

    def summary(self) -> dict[str, Any]:
        stats = self.stats
        return {"flood": dict(stats["flood"]), "wallboard_events": stats["wallboard_events"],
                "uploads": len(stats["uploads"]), "upload_s_max": max(stats["uploads"], default=0),
                "reports": len(stats["reports"]), "report_s_max": max(stats["reports"], default=0),
                "report_callbacks": stats.get("report_callbacks"), "errors": dict(stats["errors"])}


async def _main(port: int, users: dict, wallboards: int, flood: int) -> dict:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.run_in_executor(None, lambda: (sys.stdin.readline(), loop.call_soon_threadsafe(stop.set)))
    return await run(port, users, wallboards, flood, stop)


def main() -> None:
    users = json.loads(os.environ["IVR_BENCH_USERS"])      # throwaway accounts of this bench run
    port, wallboards, flood = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    print(json.dumps(asyncio.run(_main(port, users, wallboards, flood))), flush=True)


if __name__ == "__main__":
    main()
