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
FLOW_AUDIT = f"{PREFIX}audit:flows"       # Stream: publish and rollback records
CALLS = f"{PREFIX}calls"                  # Stream: one summary per finished call
CONTINGENCY_LEVEL = f"{PREFIX}contingency:level"  # String: level in force


def last_call(number: str) -> str:
    """String: epoch seconds of this number's latest call (expires after a week)."""
    return f"{PREFIX}caller:{number}:last"
