"""The simulated PBX with the trunk-line actions a real Asterisk 22 answers,
as the engine's tests need them: ``Getvar`` (a function evaluated on a dummy
channel, a global by name), ``DBGetTree`` and ``DBDel`` on AstDB, and what
the shipped ``[ivr-12345]`` does above ``IVR_LINES`` (record in AstDB, then
``UserEvent: IvrBlocked``). The answers follow what the real one said
(captured against Asterisk 22.10.1 with the shipped dialplan):

    Getvar GROUP_COUNT(trunk@ivr)  -> Response: Success, Variable, Value: 2
    Getvar IVR_LINES               -> Value: 2   (empty when not in [globals])
    DBGetTree Family: ivr_blocked  -> Success "Result will follow" (EventList: start),
        DBGetTreeResponse (Key: /ivr_blocked/<uid>, Val: <epoch>|<number>) ...,
        DBGetTreeComplete (EventList: Complete, ListItems: n)
    DBDel of a missing key         -> Response: Error, Message: Database entry could not be deleted
    UserEvent IvrBlocked           -> the channel's fields (Uniqueid, CallerIDNum...), then
        UserEvent: IvrBlocked, Number, At, InUse, Limit

(The lines-sim branch gives ``SimPbx`` its own ``Getvar``; this subclass
keeps these tests independent of it.)
"""

from __future__ import annotations

import itertools
import time

from ivr.rehearsal.sim.pbx import SimPbx


class LinesPbx(SimPbx):
    def __init__(self, *, limit: str | None = "30") -> None:
        super().__init__(time.time)
        self.globals: dict[str, str] = {} if limit is None else {"IVR_LINES": limit}
        self.in_use = 0
        self._ids = itertools.count(1)

    def _act_getvar(self, msg, aid):
        name = msg.get("Variable", "")
        if not name:
            return [[("Response", "Error"), ("ActionID", aid), ("Message", "No variable specified")]]
        if name.upper() == "GROUP_COUNT(TRUNK@IVR)":
            value = str(self.in_use)
        elif name.endswith(")"):
            value = ""
        else:
            value = self.globals.get(name, "")
        return [[("Response", "Success"), ("ActionID", aid), ("Variable", name), ("Value", value)]]

    def refuse(self, number: str, *, at: float | None = None, event: bool = True) -> str:
        """What ``[ivr-12345]``'s ``lines_full`` branch does for one caller:
        the AstDB record, then (``event``) the UserEvent. Returns the uniqueid."""
        at = time.time() if at is None else at
        uid = f"{int(at)}.{next(self._ids)}"
        self.astdb[f"/ivr_blocked/{uid}"] = f"{int(at)}|{number}"
        if event:
            self._emit([("Event", "UserEvent"), ("Privilege", "user,all"),
                        ("Channel", f"Local/{number}@test-citizen-0000;2"), ("ChannelState", "4"),
                        ("ChannelStateDesc", "Ring"), ("CallerIDNum", number), ("CallerIDName", "<unknown>"),
                        ("Context", "ivr-12345"), ("Exten", "12345"), ("Priority", "21"), ("Uniqueid", uid),
                        ("Linkedid", uid), ("UserEvent", "IvrBlocked"), ("Number", number), ("At", str(int(at))),
                        ("InUse", str(self.in_use)), ("Limit", self.globals.get("IVR_LINES", ""))])
        return uid


def lines_pbx(**kw) -> LinesPbx:
    """The queues and seats of asterisk/queues.conf (as ``shipped_pbx``), with lines."""
    pbx = LinesPbx(**kw)
    pbx.add_queue("general-q")
    pbx.add_queue("emergency-q", strategy="ringall", weight=10)
    for seat in ("101", "102"):
        pbx.add_member("general-q", f"Local/{seat}@ivr-seats/n", f"Seat{seat}", f"Custom:seat{seat}")
    pbx.add_member("general-q", "Local/109@ivr-seats/n", "Seat109", "Custom:seat109", penalty=10)
    pbx.add_member("emergency-q", "Local/109@ivr-seats/n", "Seat109", "Custom:seat109")
    return pbx
