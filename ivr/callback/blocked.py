"""Attempts the dialplan refused because the lines were full, recorded as
missed calls (a leader part).

The shipped ``[ivr-12345]`` answers busy above ``IVR_LINES`` lines in use,
but records the caller first, twice (``ivr.admission.lines``): in Asterisk's
own database (AstDB ``ivr_blocked/<uniqueid>`` = ``<epoch>|<number>``) and as
``UserEvent: IvrBlocked``. The event is recorded at once; the AstDB entries
are read on every login and every ``sweep_s`` (``DBGetTree``), so an attempt
refused while no engine held the AMI link (a leader changing hands, every
engine down) is recorded when one does. Each attempt becomes one call summary
on ``ivr:calls`` (outcome ``lines_full``), written once per uniqueid whichever
way it arrives (the same mark the engines and the reconciliation use); the
capture then records it as a missed call, merged with the citizen's other
attempts as usual. The AstDB entry is deleted only once the summary is in
Redis (and on a replica, when there is one).
"""

from __future__ import annotations

import asyncio
import time

import orjson
import redis.asyncio as aioredis

from ivr.admission.lines import BLOCKED_FAMILY, LINK_PBX, Blocked, blocked_from_astdb, blocked_from_event
from ivr.aio import cancelling
from ivr.ami.controller import AmiController
from ivr.ami.model import AmiEvent
from ivr.callback.policy import LINES_FULL
from ivr.calls.service import CALLS_STREAM_MAXLEN
from ivr.clock import Clock
from ivr.logs import Log, mask_number
from ivr.redisdb import keys
from ivr.redisdb.durable import Replication
from ivr.redisdb.report_hours import summary_written

OUTCOME = LINES_FULL            # the call summary's outcome, and the missed call's reason (policy.classify)
SWEEP_S = 30.0                  # wall seconds between reads of the PBX's own record
# the written-once mark of a refused attempt lives longer than a call's (a day):
# an AstDB entry that could not be deleted for days must not be recorded twice
MARK_TTL_S = 7 * 24 * 3600
ROUND_S = 0.2

# KEYS: summarised-mark calls-stream blocked-counter ; ARGV: summary-json ttl maxlen
_WRITE_ONCE = """
if redis.call('SET', KEYS[1], 'dialplan', 'NX', 'EX', ARGV[2]) then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'j', ARGV[1])
  redis.call('INCR', KEYS[3])
  return 1
end
return 0
"""
_GONE = ("could not be deleted", "not found")     # DBDel of a key that is not there (Asterisk 22)


def summary(b: Blocked, now: float) -> dict[str, str]:
    """The call summary (``ivr.calls.service.summary_fields``) of a refused
    attempt: wanted a person, reached nobody, no flow ran."""
    at = b.at if b.at is not None else now
    return {
        "uniqueid": b.uniqueid, "number": b.number if b.number.isdigit() else "", "flow": "", "version": "",
        "started": f"{at:.3f}", "ended": f"{at:.3f}", "outcome": OUTCOME, "last_step": "", "steps": "",
        "wanted_person": "1", "emergency": "0", "queue": "", "queue_status": "", "member": "", "hold_s": "",
        "message": "", "callback_accepted": "0", "sent_to_message": "0", "level": "", "digits": "",
        "failures": "", "source": "dialplan",
    }


class BlockedAttempts:
    def __init__(self, redis: aioredis.Redis, controller: AmiController, *, clock: Clock, log: Log,
                 pbx: str = LINK_PBX, sweep_s: float = SWEEP_S) -> None:
        self.redis = redis
        self.controller = controller
        self.clock = clock
        self.log = log
        self.pbx = pbx
        self.sweep_s = sweep_s
        self.pending: dict[str, Blocked] = {}       # uniqueid -> attempt, not yet in Redis
        self.undeleted: set[str] = set()            # in Redis; the PBX's AstDB entry still to delete
        self.recorded = 0
        self._write_once = redis.register_script(_WRITE_ONCE)
        self.replication = Replication(redis)
        self._swept_login = -1
        self._last_sweep = 0.0
        self._sweep_failing = self._delete_failing = False

    def on_event(self, event: AmiEvent) -> None:
        """Every AMI event (a controller listener): keeps ``IvrBlocked``."""
        b = blocked_from_event(event)
        if b is not None:
            self.pending.setdefault(b.uniqueid, b)

    async def run(self) -> None:
        while not cancelling():
            await self.run_once()
            await asyncio.sleep(ROUND_S)

    async def run_once(self) -> int:
        """Read the PBX's record when due, write what is pending, delete what
        is written from the PBX's record; returns how many were recorded."""
        ready = self.controller.ready.is_set()
        if ready and (self._swept_login != self.controller.logins
                      or time.monotonic() - self._last_sweep >= self.sweep_s):
            await self.sweep()
        wrote = await self._write_pending()
        if ready and self.undeleted:
            await self._delete()
        return wrote

    async def sweep(self) -> int:
        """``DBGetTree`` of the PBX's record: every attempt it still holds is
        pending (again: the write is once per uniqueid). Returns how many."""
        self._last_sweep = time.monotonic()
        res = await self.controller.ask({"Action": "DBGetTree", "Family": BLOCKED_FAMILY}, as_list=None,
                                        timeout_s=10.0)
        if not res.ok:
            if not self._sweep_failing:          # said once, not every round (a PBX without AstDB access)
                self.log.warning("blocked_attempts_unread", error=res.message)
            self._sweep_failing = True
            return 0
        self._sweep_failing = False
        self._swept_login = self.controller.logins
        found = 0
        for msg in res.response if isinstance(res.response, list) else []:
            if msg.get("Event") != "DBGetTreeResponse":
                continue
            b = blocked_from_astdb(str(msg.get("Key", "")), str(msg.get("Val", "")))
            if b is not None and b.uniqueid not in self.undeleted:
                self.pending.setdefault(b.uniqueid, b)
                found += 1
        return found

    async def _write_pending(self) -> int:
        wrote = 0
        for uid, b in list(self.pending.items()):
            s = summary(b, self.clock.now())
            ok = await self._write_once(keys=[keys.call_summarised(uid), keys.CALLS, keys.lines_blocked(self.pbx)],
                                        args=[orjson.dumps(s).decode(), MARK_TTL_S, CALLS_STREAM_MAXLEN])
            if ok:
                await summary_written(self.redis, s)
                wrote += 1
                self.log.info("missed_call_lines_full", call_id=uid, number=mask_number(b.number), pbx=self.pbx)
            del self.pending[uid]
            self.undeleted.add(uid)
        if wrote:
            self.recorded += wrote
            await self.replication.wait()       # the PBX's record goes only once a replica has ours
        return wrote

    async def _delete(self) -> None:
        for uid in list(self.undeleted):
            res = await self.controller.ask({"Action": "DBDel", "Family": BLOCKED_FAMILY, "Key": uid})
            if res.ok or any(g in res.message for g in _GONE):
                self.undeleted.discard(uid)
                continue
            if not self._delete_failing:
                self.log.warning("blocked_attempt_not_deleted", call_id=uid, error=res.message)
            self._delete_failing = True
            return                              # the next round tries again
        self._delete_failing = False
