"""Every Redis key the engine uses, in one place."""

PREFIX = "ivr:"


def flow_versions(name: str) -> str:
    """Hash: version -> JSON {schema, version, source, sha256, by, at, note}."""
    return f"{PREFIX}flow:{name}:versions"


def flow_current(name: str) -> str:
    """String: the version new calls of this flow start on."""
    return f"{PREFIX}flow:{name}:current"


def flow_seq(name: str) -> str:
    """Counter: the last version number handed out."""
    return f"{PREFIX}flow:{name}:seq"


FLOW_NAMES = f"{PREFIX}flows"             # Set of published flow names
FLOW_AUDIT = f"{PREFIX}audit:publish"     # Stream, hash-chained: flow publish and rollback records
FLOW_AUDIT_LEGACY = f"{PREFIX}audit:flows"  # Stream (plain, read only): those records before the chained log
USERS_AUDIT = f"{PREFIX}audit:users"      # Stream, hash-chained: console users added, role or password changed
CALLS = f"{PREFIX}calls"                  # Stream: one summary per finished call
CONTINGENCY_LEVEL = f"{PREFIX}contingency:level"  # String: level in force (polled by every engine)
CONTINGENCY_STATE = f"{PREFIX}contingency:state"  # JSON: level, since, by, reason, how, expires_at
CONTINGENCY_PROPOSAL = f"{PREFIX}contingency:proposal"  # JSON: what the automatic rules propose
CONTINGENCY_APPLIED = f"{PREFIX}contingency:applied"    # JSON: level whose seat actions are done, failures
CONTINGENCY_AUDIT = f"{PREFIX}audit:contingency"        # Stream, hash-chained (ivr.audit)
CALLBACK_AUDIT = f"{PREFIX}audit:callbacks"             # Stream, hash-chained: every missed call's life
CONSOLE_AUDIT = f"{PREFIX}audit:console"                # Stream, hash-chained: sign-ins, uploads, edits
# the hash-chained logs `ivr audit verify` and the auditors' page check
AUDIT_LOGS = {"callbacks": CALLBACK_AUDIT, "contingency": CONTINGENCY_AUDIT, "console": CONSOLE_AUDIT,
              "flows": FLOW_AUDIT, "users": USERS_AUDIT}
LIVE = f"{PREFIX}live"                                  # JSON: the AMI live model's snapshot
AMI_LEADER = f"{PREFIX}ami:leader"                      # String: the process that holds the AMI link


def last_call(number: str) -> str:
    """String: epoch seconds of this number's latest call (expires after a week)."""
    return f"{PREFIX}caller:{number}:last"


def call_summarised(uniqueid: str) -> str:
    """String (1 day): this call's summary is in ``CALLS`` (written by its engine,
    or by the leader's reconciliation from AMI when the engine died)."""
    return f"{PREFIX}call:{uniqueid}:summarised"


CALL_SUMMARISED_TTL_S = 24 * 3600
CALLS_LIVE = f"{PREFIX}calls:live"                      # Hash: uniqueid -> "<engine token>|<started>|<number>" while a call runs


def engine_alive(token: str) -> str:
    """String (expires): an engine process that is serving calls, renewed every second."""
    return f"{PREFIX}engine:{token}:alive"


ENGINE_ALIVE_TTL_S = 10
LEADER_HEALTH = f"{PREFIX}leader:health"               # JSON (expires): the leader's parts and their health
