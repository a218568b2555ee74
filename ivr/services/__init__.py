"""The operations staff, seat managers, auditors and administrators perform,
one module per domain, called by both the command line (``ivr.cli``) and the
console's API (``ivr.web``). Each takes Redis, the settings or the project's
home and who acts, returns plain results and raises the errors of
``ivr.errors``; the adapters only parse input and format output.

    flows.py        check, publish, choose and run a rollback, history
    prompts.py      list, upload (converted), draft from text, announcement sets
    contingency.py  the plan, the level (set, renew), the proposal (accept, reject)
    callbacks.py    the open line, one callback and its trail, cancel, report period
    audit.py        verify the chains, write and read checkpoints, chain heads
    users.py        console accounts: add, password, role, remove, tokens (all audited)
    files.py        atomic writes of staff-edited files
"""
