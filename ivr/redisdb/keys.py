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


def config_versions(path: str) -> str:
    """Hash: version -> JSON {schema, file, version, text (null: removed), sha256, by, at, note, how}
    of one configuration file (``queue/contingency.yaml``...)."""
    return f"{PREFIX}config:versions:{path}"


CONFIG_IN_FORCE = f"{PREFIX}config:in-force"     # Hash: file -> version: the last good configuration set
CONFIG_GENERATION = f"{PREFIX}config:generation"  # Counter: one more per change of the set (the change guard)
CONFIG_LOCK = f"{PREFIX}config:lock"             # String (PX): one change checked and written at a time
CONFIG_AUDIT = f"{PREFIX}audit:config"           # Stream, hash-chained: every configuration file change
FLOW_NAMES = f"{PREFIX}flows"             # Set of published flow names
FLOW_AUDIT = f"{PREFIX}audit:publish"     # Stream, hash-chained: flow publish and rollback records
FLOW_AUDIT_LEGACY = f"{PREFIX}audit:flows"  # Stream (plain, read only): those records before the chained log
USERS_AUDIT = f"{PREFIX}audit:users"      # Stream, hash-chained: console users added, role or password changed
CALLS = f"{PREFIX}calls"                  # Stream: one summary per finished call
CONTINGENCY_LEVEL = f"{PREFIX}contingency:level"  # String: level in force (polled by every engine)
CONTINGENCY_STATE = f"{PREFIX}contingency:state"  # JSON: level, since, by, reason, how, expires_at
CONTINGENCY_PROPOSAL = f"{PREFIX}contingency:proposal"  # JSON: what the automatic rules propose
CONTINGENCY_APPLIED = f"{PREFIX}contingency:applied"    # JSON: level whose seat actions are done, failures
CONTINGENCY_AUDIT = f"{PREFIX}audit:contingency"        # Stream, hash-chained (ivr.audit.chain)
CALLBACK_AUDIT = f"{PREFIX}audit:callbacks"             # Stream, hash-chained: every missed call's life
CONSOLE_AUDIT = f"{PREFIX}audit:console"                # Stream, hash-chained: sign-ins, uploads, edits
# the hash-chained logs `ivr audit verify` and the auditors' page check
# JSON {schema, fingerprint, by, at}: the fingerprint (HMAC of a fixed label,
# never the key) of the audit key the logs are written with; SET NX by the
# first process to start, checked by every engine, console and audit-writing
# command (ivr.audit.keycheck), replaced only by `ivr audit key rotate`
AUDIT_KEY_FINGERPRINT = f"{PREFIX}audit-key:fingerprint"
KEYS_AUDIT = f"{PREFIX}audit:keys"                      # Stream, hash-chained: audit key rotations (old key signs)
AUDIT_LOGS = {"callbacks": CALLBACK_AUDIT, "contingency": CONTINGENCY_AUDIT, "console": CONSOLE_AUDIT,
              "flows": FLOW_AUDIT, "users": USERS_AUDIT, "config": CONFIG_AUDIT, "keys": KEYS_AUDIT}
LIVE = f"{PREFIX}live"                                  # JSON: the AMI live model's snapshot
# JSON, small (read by every engine with the level): Asterisk queue -> priority ->
# [callers ahead of a caller joining now, expected wait s, its spread s]; "lines_low": bool
OUTLOOK = f"{PREFIX}live:outlook"
AMI_LEADER = f"{PREFIX}ami:leader"                      # String: the process that holds the AMI link


# String: epoch seconds of a number's latest call (expires after a week). The
# arrival script (ivr.calls.arrival) builds it from these two parts.
LAST_CALL_PREFIX = f"{PREFIX}caller:"
LAST_CALL_SUFFIX = ":last"


def last_call(number: str) -> str:
    """String: epoch seconds of this number's latest call (expires after a week)."""
    return f"{LAST_CALL_PREFIX}{number}{LAST_CALL_SUFFIX}"


# The summary script (ivr.calls.service) builds call_summarised keys from these two parts.
CALL_SUMMARISED_PREFIX = f"{PREFIX}call:"
CALL_SUMMARISED_SUFFIX = ":summarised"


def call_summarised(uniqueid: str) -> str:
    """String (1 day): this call's summary is in ``CALLS`` (written by its engine,
    or by the leader's reconciliation from AMI when the engine died)."""
    return f"{CALL_SUMMARISED_PREFIX}{uniqueid}{CALL_SUMMARISED_SUFFIX}"


CALL_SUMMARISED_TTL_S = 24 * 3600


def lines_blocked(pbx: str) -> str:
    """Counter: attempts this PBX's dialplan answered busy (lines full) and the
    leader recorded as missed calls (``ivr.callback.blocked``), ever."""
    return f"{PREFIX}lines:{pbx}:blocked"
PBX_RECORD_PREFIX = f"{PREFIX}pbx:"
PBX_RECORD_NAMES = f"{PBX_RECORD_PREFIX}record:names"   # Set: PBXs whose queue_log was read (ivr.callback.pbx_record)


def pbx_log_position(pbx: str) -> str:
    """Hash: where the reading of this PBX's queue_log stands (inode, offset,
    lines, skipped, read_at, note): written with the state the lines led to."""
    return f"{PBX_RECORD_PREFIX}{pbx}:qlog"


def pbx_queue_calls(pbx: str) -> str:
    """Zset uniqueid -> when the caller entered a queue (the PBX's clock): every
    call of this PBX's queue_log in the retention window (reports by period)."""
    return f"{PBX_RECORD_PREFIX}{pbx}:qcalls"


def pbx_queue_call_prefix(pbx: str) -> str:
    """+ uniqueid: Hash (expires): one caller as the PBX's queue_log told it
    (number, queue, entered, outcome, left_at, wait_s, agent) and the
    reconciliation's verdict."""
    return f"{PBX_RECORD_PREFIX}{pbx}:qcall:"


def pbx_queue_pending(pbx: str) -> str:
    """Zset uniqueid -> when to settle: callers who left a queue, to reconcile
    against the engine's own record."""
    return f"{PBX_RECORD_PREFIX}{pbx}:qpending"


PBX_ANSWERED_PREFIX = f"{PREFIX}call:pbx-answered:"


def pbx_answered(uniqueid: str) -> str:
    """String (1 day): a PBX's queue_log says a seat answered this call. The
    reconciliation's sweep and the missed-call capture never record it as
    missed from what AMI alone told (``ivr.callback.reconcile``)."""
    return f"{PBX_ANSWERED_PREFIX}{uniqueid}"


CALLS_LIVE = f"{PREFIX}calls:live"                      # Hash: uniqueid -> "<engine token>|<started>|<number>" while a call runs


def engine_alive(token: str) -> str:
    """String (expires): an engine process that is serving calls, renewed every second."""
    return f"{PREFIX}engine:{token}:alive"


ENGINE_ALIVE_TTL_S = 10


def engine_status(token: str) -> str:
    """JSON (expires): an engine process's read-only status (``ivr.runtime.status``),
    renewed every half second, read by that engine's console process."""
    return f"{PREFIX}engine:{token}:status"


ENGINE_STATUS_TTL_S = 10
ENGINE_STATUS_MATCH = f"{PREFIX}engine:*:status"       # SCAN pattern: every engine's status record
LEADER_HEALTH = f"{PREFIX}leader:health"               # JSON (expires): the leader's parts and their health


# Missed calls and callbacks (ivr.callback.store). The scripts build per-number
# and per-id keys from these prefixes, passed as ARGV: standalone Redis only.
CALLBACK_PREFIX = f"{PREFIX}cb:"
CALLBACK_OPEN_PREFIX = f"{CALLBACK_PREFIX}n:"     # + number: Hash, the one open callback of a number
CALLBACK_CLOSED_PREFIX = f"{CALLBACK_PREFIX}id:"  # + id: Hash, a closed callback (renamed from the open one)
CALLBACK_PENDING = f"{CALLBACK_PREFIX}pending"    # Zset number -> when it may next be dialled
CALLBACK_READY = f"{CALLBACK_PREFIX}ready"        # Zset number -> rank (ivr.callback.policy.rank)
CALLBACK_CLAIMS = f"{CALLBACK_PREFIX}claims"      # Zset number -> lease expiry of the process dialling it
CALLBACK_CLOSED = f"{CALLBACK_PREFIX}closed"      # Zset id -> closed at (reports)
CALLBACK_SEQ = f"{CALLBACK_PREFIX}seq"            # Counter: the last callback id handed out
CALLBACK_IDS = f"{CALLBACK_PREFIX}ids"            # Hash id -> number of every OPEN callback (find by id)
# Zset number -> first call time of every OPEN callback, whatever its state
# (pending, ready, being dialled): the oldest is its first member
CALLBACK_OPEN_BY_FIRST = f"{CALLBACK_PREFIX}open-by-first"
# Zset id -> first call time of every CLOSED callback: the month report reads
# an hour's callbacks by it (ivr.callback.rollup); ``index_closed`` fills it for older data
CALLBACK_CLOSED_BY_FIRST = f"{CALLBACK_PREFIX}closed-by-first"
# + kind ("flow" | "closed") + ":" + epoch hour: Hash, one hour's part of the
# auditors' report (ivr.callback.rollup)
REPORT_PART_PREFIX = f"{PREFIX}report:part:"
# Hash epoch hour -> how many call summaries were written for calls that started in that
# hour: a kept part of the hour holds while the count is the one it was summed at
REPORT_WRITTEN = f"{PREFIX}report:written"
# + epoch hour: List of the summaries written for that hour by another hand than
# their engine (the PBX's record, the reconciler, a refused attempt), perhaps
# long after: an hour's read of the calls stream adds those it did not find
REPORT_LATE_PREFIX = f"{PREFIX}report:late:"
# + id: List of the stream ids of this callback's entries in CALLBACK_AUDIT,
# appended by the same script as the entries (ivr.audit.chain.AuditLog index)
CALLBACK_TRAIL_PREFIX = f"{CALLBACK_PREFIX}trail:"
# String: stream id of the first entry the trail index covers (older ones: scan)
CALLBACK_TRAIL_FROM = f"{CALLBACK_PREFIX}trail-from"


def callback_open(number: str) -> str:
    return CALLBACK_OPEN_PREFIX + number


def callback_closed(cid: str) -> str:
    return CALLBACK_CLOSED_PREFIX + cid


def callback_trail(cid: str) -> str:
    return CALLBACK_TRAIL_PREFIX + cid


# Follow-up calls, 智能回访 (ivr.callback.followup). The scripts build per-id
# keys from the prefixes, passed as ARGV: standalone Redis only. Their audit
# entries go to CALLBACK_AUDIT with ids "F<id>" (trail: callback_trail("F<id>")).
FOLLOWUP_PREFIX = f"{PREFIX}fu:"
FOLLOWUP_ITEM_PREFIX = f"{FOLLOWUP_PREFIX}id:"      # + id: Hash, one citizen to follow up
FOLLOWUP_BATCH_PREFIX = f"{FOLLOWUP_PREFIX}batch:"  # + batch id: Hash, who chose the sample, of what, when
FOLLOWUP_PENDING = f"{FOLLOWUP_PREFIX}pending"      # Zset id -> when it may next be dialled
FOLLOWUP_CLAIMS = f"{FOLLOWUP_PREFIX}claims"        # Zset id -> lease expiry of the process dialling it
FOLLOWUP_CLOSED = f"{FOLLOWUP_PREFIX}closed"        # Zset id -> closed at
FOLLOWUP_BATCHES = f"{FOLLOWUP_PREFIX}batches"      # Zset batch id -> created at
FOLLOWUP_SEQ = f"{FOLLOWUP_PREFIX}seq"              # Counter: the last follow-up id handed out
FOLLOWUP_BATCH_SEQ = f"{FOLLOWUP_PREFIX}batch-seq"  # Counter: the last batch id handed out


def followup_item(fid: str) -> str:
    return FOLLOWUP_ITEM_PREFIX + fid


def followup_batch(bid: str) -> str:
    return FOLLOWUP_BATCH_PREFIX + bid


def followup_batch_items(bid: str) -> str:
    """List: the follow-up ids of batch ``bid``, in order."""
    return f"{FOLLOWUP_BATCH_PREFIX}{bid}:items"


# Console accounts (ivr.accounts.store still spells these out itself: switch it
# to these names; they must stay byte-for-byte equal).
USERS = f"{PREFIX}users"                  # Hash user -> JSON {role, salt, hash, ...}
SESSION_PREFIX = f"{PREFIX}session:"      # + token: JSON {user, role, csrf} (expires when idle)
API_TOKEN_PREFIX = f"{PREFIX}apitoken:"   # + SHA-256 of the token: JSON {user, ...}
USER_SESSIONS_PREFIX = f"{PREFIX}user-sessions:"   # + user: Set of the SHA-256 of their session tokens
LOGIN_LIMIT_PREFIX = f"{PREFIX}login:"     # + account or address: failed sign-ins and the block (ivr.web.login_limit)
DRILL_PROBE = f"{PREFIX}drill:probe"      # String: a drill's write probe after a Redis failover


# Prompts and voice messages shared by every host (ivr.prompts.store, docs/prompts.md).
PROMPT_PREFIX = f"{PREFIX}prompt:"
PROMPTS_CURRENT = f"{PROMPT_PREFIX}current"     # Hash: prompt name -> sha256 of the version in force
PROMPTS_SEQ = f"{PROMPT_PREFIX}seq"             # Hash: prompt name -> the last version number handed out
PROMPT_SYNC_PBXS = f"{PROMPT_PREFIX}pbxs"       # Hash: PBX -> JSON {at, host, prompts, missing, errors, messages}: known PBXs


def prompt_blob(sha256: str) -> str:
    """String: the WAV bytes whose SHA-256 is ``sha256`` (content-addressed, written once)."""
    return f"{PROMPT_PREFIX}blob:{sha256}"


def prompt_versions(name: str) -> str:
    """Hash: version -> JSON {schema, name, version, sha256, bytes, by, at, source} of one prompt."""
    return f"{PROMPT_PREFIX}versions:{name}"


def pbx_prompts_held(pbx: str) -> str:
    """Set: the sha256 of every prompt version this PBX's sounds folder held at its last sync."""
    return f"{PROMPT_PREFIX}held:{pbx}"


def voice_message(name: str) -> str:
    """Hash (expires): one voice message recorded on a PBX: ``audio`` (the WAV bytes),
    ``pbx``, ``sha256``, ``bytes``, ``at`` (ivr.prompts.messages)."""
    return f"{PREFIX}message:{name}"
