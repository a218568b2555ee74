"""A callback scheduler in its own process, for the crash test (killed with SIGKILL)."""

import asyncio
import datetime as dt
import sys
from zoneinfo import ZoneInfo

from ivr import logs
from ivr.ami.controller import AmiController
from ivr.ami.model import LiveModel
from ivr.callback.policy import Policy
from ivr.callback.scheduler import CallbackScheduler
from ivr.callback.store import CallbackStore
from ivr.redisdb.server import connect

POLICY = Policy(calling_hours=(dt.time(0), dt.time(23, 59, 59)), keep_idle=0, claim_lease_s=2.0)


def scheduler(redis, controller, owner):
    return CallbackScheduler(store=CallbackStore(redis), controller=controller, policy=POLICY,
                             tz=ZoneInfo("Asia/Shanghai"), queues={"general": "general-q"}, log=logs.get("proc"),
                             owner=owner)


async def main(url: str, port: int, owner: str) -> None:
    logs.configure("error", "json", stream=sys.stderr)
    redis = connect(url)
    model = LiveModel(emergency_queues=["emergency-q"], reserved_interfaces=["Local/109@ivr-seats/n"])
    ctl = AmiController(host="127.0.0.1", port=port, username="ivr", secret="ivrsecret", model=model, redis=None,
                        log=logs.get("proc"))
    await ctl.start()
    await ctl.ready.wait()
    sched = scheduler(redis, ctl, owner)
    print("ready", flush=True)
    while True:
        await sched.tick()
        await asyncio.sleep(0.1)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3]))
