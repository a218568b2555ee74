"""The engine's error tree.

    IvrError
    ├── ConfigError          a setting is wrong; the message names it
    │   ├── AudioRefused     (ivr.prompts.audio) an uploaded prompt that cannot be used
    │   └── AuditKeyMismatch (ivr.audit.keycheck) this process's audit key is not the one the
    │                        logs in Redis were written with: it refuses to start
    ├── FlowInvalid          a flow failed validation; carries every problem at once
    ├── ConfigInvalid        a configuration change that would break the set (a plan naming a
    │                        removed announcement set...): every problem, nothing written
    ├── InvalidInput         a value staff gave is wrong (a level, a date, an empty
    │                        reason, a prompt name); the message says which
    ├── RequestInvalid       an HTTP request that does not match the API's document
    │                        (ivr.web.schemas): refused before any service runs
    ├── NotFound             what was asked for does not exist (a callback, a prompt)
    │   └── FlowNotFound     no published flow of that name (or no such version)
    ├── Conflict             the state no longer allows it (no proposal to answer,
    │                        a callback being dialled right now)
    ├── PublishError         publish/rollback refused (bad version, nothing to roll back)
    ├── LevelInvalid         a contingency level that is not a whole number 0..99 (a bool, text, -1)
    ├── RedisUnavailable     the Redis server cannot be started or reached
    ├── HostUnavailable      (ivr.rehearsal.bench.console_host) the console's stand-in host (a network
    │                        namespace with its own CPUs) cannot be made here: not root, no ip/taskset
    ├── NotReplicated        (ivr.redisdb.durable) no replica acknowledged a write in time: the work is kept and retried
    ├── StaleState           (ivr.audit.chain) an audit append whose expected state changed: re-read and retry
    ├── AuditContended       (ivr.audit.chain) an audit append lost to other writers 50 times in a row
    ├── StepBudgetExceeded   a flow ran more than max_steps steps
    ├── MenuExhausted        no valid menu choice after the last attempt
    ├── PromptMissing        a prompt the PBX could not play (a step failure: the caller goes to the fallback)
    ├── QueueLogLineInvalid  (ivr.pbxlog.queue_log; also a ValueError) a line of Asterisk's queue_log
    │                        not in its format: skipped and counted
    └── AgiError             the AGI peer broke the protocol
        ├── AgiTimeout       no answer within the command's deadline
        ├── AgiClosed        the socket or pipe ended mid-dialogue
        ├── AgiCommandFailed 510/520 answers: the command itself is wrong
        └── AgiParseError    (also a ValueError) an answer line that is not AGI

    CallerHungUp             not an IvrError: a caller hanging up is an outcome,
                             raised to unwind a flow, logged at info level.
    UnsafeCommand            (a ValueError) an AGI command or
                             argument with a line break: refused, a step failure.
    YamlRefused              (ivr.yamldoc.bounded; a yaml.MarkedYAMLError) a YAML file with
                             anchors, too deep or too large: reported like a syntax error.
    OffloadError             (a RuntimeError) a console worker process failed.

A step failure (any exception from a flow step but the hang-up and a lost AGI
link) sends the caller to the flow's fallback. Exceptions whose name starts with
an underscore (``_CallEnded``, ``_FallbackNeeded``) are private control flow.

Low-level errors (OSError, asyncio.TimeoutError, redis errors) are mapped to these
at the adapter boundary with ``raise X(...) from exc``. The services
(``ivr.services``) raise these; the CLI prints the message as one line, the web
answers RequestInvalid with 400 (the request does not match the API's
document), InvalidInput/FlowInvalid/LevelInvalid with 422 (a well-formed
request whose content is refused), NotFound with 404, Conflict/PublishError
with 409 (``ivr.web.context.error_of``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from ivr.yamldoc.problems import Problem


class IvrError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(IvrError):
    """A setting is missing or malformed."""


class AuditKeyMismatch(ConfigError):
    """This process's audit key is not the one whose fingerprint Redis holds
    (or the logs in Redis do not verify under it): it must not start, or every
    entry it wrote would never verify. The message names both fingerprints'
    short forms and what to do."""


class FlowInvalid(IvrError):
    """A flow (or set of flows) did not validate. ``problems`` lists them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class ConfigInvalid(IvrError):
    """A configuration change refused: the whole set it would make has errors.
    ``problems`` lists every one (``file:line:col``)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems if not p.warning))


class InvalidInput(IvrError):
    """A value given by staff (CLI argument or request field) is wrong."""


class RequestInvalid(IvrError):
    """An HTTP request that does not match the route's schemas (the ones the
    OpenAPI document states); the message names the field."""


class NotFound(IvrError):
    """What was asked for does not exist."""


class FlowNotFound(NotFound):
    pass


class Conflict(IvrError):
    """The request does not fit the state in Redis (any more)."""


class PublishError(IvrError):
    pass


class LevelInvalid(IvrError):
    """A contingency level that is not a whole number (``True`` is refused even
    though Python counts it as 1): refused when written and when read back."""


class RedisUnavailable(IvrError):
    pass


class HostUnavailable(IvrError):
    pass


class AgiError(IvrError):
    pass


class AgiTimeout(AgiError):
    pass


class AgiClosed(AgiError):
    pass


class AgiCommandFailed(AgiError):
    def __init__(self, command: str, code: int, text: str) -> None:
        self.command = command
        self.code = code
        self.text = text
        super().__init__(f"{command!r} answered {code} {text}")


class CallerHungUp(Exception):
    """The caller's channel is gone. Control flow, not a fault."""


class PromptMissing(IvrError):
    def __init__(self, prompt: str) -> None:
        self.prompt = prompt
        super().__init__(f"prompt {prompt!r} could not be played (missing on the PBX?)")


class AudioRefused(ConfigError):
    """The upload is not audio we accept; the message is for the uploader (Chinese first)."""


class NotReplicated(IvrError):
    """The write reached the master but no replica within ``WAIT_MS`` (``ivr.redisdb.durable``)."""


class StaleState(IvrError):
    """``AuditLog.append(expect=...)``: a guarded key changed since the caller
    read it; nothing was written. Re-read the state and try again."""


class AuditContended(IvrError):
    """Other writers moved the audit log's head 50 times in a row while this append retried."""


class StepBudgetExceeded(IvrError):
    """A flow ran more steps than ``max_steps`` (a loop): the caller goes to the fallback."""


class MenuExhausted(IvrError):
    """No valid menu choice after the last attempt."""


class AgiParseError(AgiError, ValueError):
    """The peer sent an answer line that is not AGI (a ValueError too, as it was)."""


class QueueLogLineInvalid(IvrError, ValueError):
    """A line of Asterisk's queue_log that is not in its format (ivr.pbxlog.queue_log)."""


class UnsafeCommand(ValueError):
    """An AGI command (or one of its arguments) would carry a line break:
    refused, never sent, never silently altered."""


class YamlRefused(yaml.MarkedYAMLError):
    """Valid YAML we do not accept (an anchor, an alias, too deep, too large),
    reported like a syntax error: ``problem`` is the message, ``problem_mark``
    where it is."""


class OffloadError(RuntimeError):
    """A console worker process (a report, an upload's conversion) failed."""
