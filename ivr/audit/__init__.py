"""The audit domain: keyed hash chains that prove nobody rewrote a record.

    chain.py        AuditLog: append (one Lua script), read, verify a chain
    signing.py      the audit key (HMAC) every host must share, and its check
    checkpoints.py  signed checkpoints kept outside Redis
"""
