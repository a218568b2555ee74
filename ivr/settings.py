"""Deployment settings: environment variables first, then ``config/ivr.toml``
(or the file named by ``IVR_CONFIG``), then defaults.

Every wrong setting is reported at once, by name, and start-up stops."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ivr import names
from ivr.errors import ConfigError

PACKAGE_HOME = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, slots=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class AmiTarget:
    host: str
    port: int
    username: str
    secret: str = field(repr=False)   # never in a repr, a log line or `ivr config`

    def __str__(self) -> str:
        return f"ami://{self.username}:***@{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class Settings:
    home: Path                 # the folder holding flows/, prompts/, queue/, callback/, asterisk/
    data_dir: Path
    redis_url: str | None      # None: start the embedded redis-server
    agi_listen: HostPort
    ami: AmiTarget | None
    http_listen: HostPort
    timezone: ZoneInfo
    prompt_prefix: str         # how Asterisk names prompts/ (sounds dir sub-folder)
    recordings_dir: str        # where Asterisk writes voice messages (as Asterisk sees it)
    drain_s: float             # how long `serve` lets calls finish after SIGTERM
    log_format: str            # json | console
    log_level: str
    transfer_dialstring: str   # "{number}" is replaced by the transfer target
    leader: bool = True        # may hold the AMI link and run supervisor, capture, scheduler
    contingency_mode: str | None = None   # a drill's override of the plan's mode (auto | propose)
    drill_lines: tuple[int, int, int] | None = None   # a drill's PBX: (lines, emergency reserve, offer below free)
    drill_unlimited_lines: bool = False   # a drill's PBX has no line limit (no line count for the engine)
    drill_admission: bool = True          # False: a drill's comparison runs the behaviour before admission
    audit_key_file: Path = Path("var/audit.key")                    # HMAC key of the audit logs (outside Redis)
    audit_checkpoint_file: Path = Path("var/audit-checkpoints.jsonl")  # signed heads (outside Redis)
    audit_checkpoint_s: float = 300.0  # how often the leader checkpoints the audit logs
    report_hours_s: float = 300.0      # how often the leader sums the report's hours that are over (0: never)
    console: bool = True       # `ivr serve` starts the console's process beside it (no: `ivr console` elsewhere)
    queue_log: Path | None = None      # Asterisk's queue_log on this host: the leader reconciles against it
    sounds_dir: Path | None = None     # this PBX host's sounds folder for prompts: the engine keeps it in sync
    pbx_name: str = "main"             # the PBX of this host, as its prompt sync reports it

    def __repr__(self) -> str:      # secrets masked (``shown``)
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in shown(self)) + ")"

    @property
    def flows_dir(self) -> Path:
        return self.home / "flows"

    @property
    def prompts_dir(self) -> Path:
        return self.home / "prompts"

    @property
    def queue_dir(self) -> Path:
        return self.home / "queue"

    @property
    def callback_dir(self) -> Path:
        return self.home / "callback"

    @property
    def asterisk_dir(self) -> Path:
        return self.home / "asterisk"


# name -> (default, help); the help text is what `ivr config` and the README show.
SETTINGS_HELP = {
    "IVR_HOME": (None, "project folder with flows/, prompts/, queue/ (default: the current folder if it has flows/, else the installed project)"),
    "IVR_DATA_DIR": (None, "engine data: embedded Redis files, voice messages (default: IVR_HOME/var)"),
    "IVR_REDIS_URL": (None, "redis://host:port/db of a Redis server, or redis+sentinel://h1:26379,h2:26379/mymaster/0 for Redis Sentinel; unset: an embedded redis-server is started"),
    "IVR_AGI_LISTEN": ("127.0.0.1:4573", "FastAGI listen address HOST:PORT"),
    "IVR_AMI_URL": (None, "ami://user:secret@host:5038 of Asterisk's manager interface; unset: no AMI"),
    "IVR_HTTP_LISTEN": ("127.0.0.1:8080", "console and HTTP API listen address HOST:PORT"),
    "IVR_TIMEZONE": ("Asia/Shanghai", "the hotline's local time zone (calling hours, branch times)"),
    "IVR_PROMPT_PREFIX": ("12345/", "prefix Asterisk needs to find prompts/ (e.g. a sounds sub-folder)"),
    "IVR_RECORDINGS_DIR": (None, "folder where Asterisk writes voice messages (default: IVR_DATA_DIR/messages)"),
    "IVR_CONTINGENCY_MODE": (None, "drills only: run the plan in this mode (auto | propose) instead of the one in queue/contingency.yaml"),
    "IVR_DRILL_LINES": (None, "drills only: the drill's PBX lines as LINES,RESERVE,OFFER_BELOW_FREE (queue/lines.yaml as "
                              "the profile states it), or 'unlimited'"),
    "IVR_DRILL_ADMISSION": ("on", "drills only: off runs the behaviour before admission (a drill's --compare)"),
    "IVR_LEADER": ("yes", "yes: this process may take the leader role (AMI link, contingency supervisor, "
                          "missed-call capture, callback scheduler; one process at a time holds it); "
                          "no: it only answers calls"),
    "IVR_DRAIN_S": ("30", "seconds `ivr serve` lets calls in progress finish after SIGTERM"),
    "IVR_LOG_FORMAT": (None, "json or console (default: console on a terminal, json otherwise)"),
    "IVR_LOG_LEVEL": ("info", "debug, info, warning or error"),
    "IVR_TRANSFER_DIALSTRING": ("Local/{number}@ivr-transfer", "Dial() target for transfer steps"),
    "IVR_AUDIT_KEY_FILE": (None, "HMAC key of the audit logs, kept outside Redis; created 0600 on first use; the "
                                 "same file on every process sharing a Redis (default: IVR_DATA_DIR/audit.key)"),
    "IVR_AUDIT_CHECKPOINT_FILE": (None, "append-only file of signed audit-log heads (default: "
                                        "IVR_DATA_DIR/audit-checkpoints.jsonl)"),
    "IVR_AUDIT_CHECKPOINT_S": ("300", "seconds between the leader's audit checkpoints"),
    "IVR_CALLS_KEPT": ("2000000", "call summaries the calls stream keeps (the oldest are trimmed; environment "
                                  "only, the same for every process); the auditors' figures of the hours "
                                  "summed before outlive them"),
    "IVR_REPORT_HOURS_S": ("300", "seconds between the leader's summing of the auditors' report's hours that are "
                                  "over (0: never; each report then reads them itself)"),
    "IVR_CONSOLE": ("yes", "yes: `ivr serve` starts the console and HTTP API beside the engine (IVR_HTTP_LISTEN); "
                           "no: it serves calls only, the console runs elsewhere (`ivr console`, same Redis)"),
    "IVR_QUEUE_LOG": (None, "Asterisk's queue_log file on this host (e.g. /var/log/asterisk/queue_log): the "
                            "leader reads it and reconciles the PBX's record against its own (docs/pbx-record.md); "
                            "unset: not read"),
    "IVR_SOUNDS_DIR": (None, "this PBX host's Asterisk sounds folder for prompts (e.g. /var/lib/asterisk/sounds/12345): "
                             "the engine on the PBX's host keeps it equal to the prompts in Redis every 30 s and sends "
                             "up the voice messages of IVR_RECORDINGS_DIR (docs/prompts.md); unset: not synced"),
    "IVR_PBX_NAME": ("main", "the name of this host's PBX in the prompt sync's report (IVR_SOUNDS_DIR)"),
}


SHIPPED_AMI_SECRET = "change-this-secret"   # asterisk/manager.conf as shipped


def mask_url(url: str | None) -> str | None:
    """``scheme://user:***@host...``: the password of a URL hidden."""
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    userinfo, at, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}{at}{host}"


def shown(settings: Settings) -> list[tuple[str, str]]:
    """What ``ivr config`` prints as in force: every field, secrets masked."""
    out = []
    for name in Settings.__dataclass_fields__:
        value = getattr(settings, name)
        if name == "redis_url":
            value = mask_url(value)
        out.append((name, str(value)))
    return out


def as_environment(settings: Settings) -> dict[str, str]:
    """The settings as the environment of a child process (the console), so it
    runs on exactly what this process runs on — whatever came from the file or
    was adjusted in code. The AMI link stays with the engine: the child gets none."""
    return {
        "IVR_HOME": str(settings.home), "IVR_DATA_DIR": str(settings.data_dir),
        "IVR_REDIS_URL": settings.redis_url or "", "IVR_AGI_LISTEN": str(settings.agi_listen),
        "IVR_AMI_URL": "", "IVR_HTTP_LISTEN": str(settings.http_listen), "IVR_TIMEZONE": settings.timezone.key,
        "IVR_PROMPT_PREFIX": settings.prompt_prefix, "IVR_RECORDINGS_DIR": settings.recordings_dir,
        "IVR_CONTINGENCY_MODE": settings.contingency_mode or "", "IVR_LEADER": "yes" if settings.leader else "no",
        "IVR_DRILL_LINES": drill_lines_text(settings), "IVR_DRILL_ADMISSION": "on" if settings.drill_admission else "off",
        "IVR_DRAIN_S": str(settings.drain_s), "IVR_LOG_FORMAT": settings.log_format,
        "IVR_LOG_LEVEL": settings.log_level, "IVR_TRANSFER_DIALSTRING": settings.transfer_dialstring,
        "IVR_AUDIT_KEY_FILE": str(settings.audit_key_file),
        "IVR_AUDIT_CHECKPOINT_FILE": str(settings.audit_checkpoint_file),
        "IVR_AUDIT_CHECKPOINT_S": str(settings.audit_checkpoint_s),
        "IVR_REPORT_HOURS_S": str(settings.report_hours_s),
        "IVR_CONSOLE": "yes" if settings.console else "no",
        "IVR_QUEUE_LOG": "",        # read by the leader only, like the AMI link
    }


def shipped_secret_in_use(settings: Settings) -> str | None:
    """"IVR_AMI_URL" when the engine logs in to AMI with the secret shipped in
    asterisk/manager.conf (so the PBX accepts that public secret), else None.
    Without AMI there is nothing to warn about: the engine does not log in."""
    if settings.ami is not None and settings.ami.secret == SHIPPED_AMI_SECRET:
        return "IVR_AMI_URL"
    return None


def _host_port(name: str, value: str, errors: list[str]) -> HostPort:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        errors.append(f"{name}={value!r}: expected HOST:PORT, e.g. 127.0.0.1:4573")
        return HostPort("127.0.0.1", 0)
    return HostPort(host.strip("[]"), int(port))


def _ami(name: str, value: str, errors: list[str]) -> AmiTarget | None:
    u = urlsplit(value)
    try:
        port = u.port or 5038
    except ValueError:
        port = -1
    if u.scheme != "ami" or not u.hostname or not u.username or u.password is None or port < 0:
        errors.append(f"{name}={value!r}: expected ami://USER:SECRET@HOST:PORT")
        return None
    return AmiTarget(u.hostname, port, u.username, u.password)


def _load_file(home: Path, env: dict[str, str], errors: list[str]) -> dict[str, str]:
    path = Path(env["IVR_CONFIG"]) if env.get("IVR_CONFIG") else home / "config" / "ivr.toml"
    if not path.exists():
        if env.get("IVR_CONFIG"):
            errors.append(f"IVR_CONFIG={str(path)!r}: no such file")
        return {}
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        errors.append(f"{path}: {exc}")
        return {}
    out = {}
    for key, value in raw.items():
        name = "IVR_" + key.upper()
        if name not in SETTINGS_HELP or name == "IVR_HOME":
            errors.append(f"{path}: unknown setting '{key}'")
            continue
        out[name] = str(value)
    return out


def _seconds(get: Callable[[str], str | None], name: str, lo: float, hi: float, default: float,
             errors: list[str]) -> float:
    """A number of seconds within [lo, hi]; a wrong value is named in ``errors``."""
    raw = get(name)
    try:
        value = float(raw) if raw is not None else float("nan")   # unset: named as wrong below
        if lo <= value <= hi:
            return value
    except (TypeError, ValueError):
        pass
    errors.append(f"{name}={raw!r}: expected seconds from {lo:g} to {hi:g}")
    return default


def _home(env: dict[str, str], errors: list[str]) -> Path:
    """IVR_HOME; else the working folder when it holds flows/ and queue/; else the package's own."""
    if env.get("IVR_HOME"):
        home = Path(env["IVR_HOME"]).resolve()
        if not (home / "flows").is_dir():
            errors.append(f"IVR_HOME={env['IVR_HOME']!r}: no flows/ folder there")
        return home
    if (Path.cwd() / "flows").is_dir() and (Path.cwd() / "queue").is_dir():
        return Path.cwd()
    return PACKAGE_HOME


def _check_redis_url(redis_url: str | None, errors: list[str]) -> None:
    if redis_url and redis_url.startswith("redis+sentinel://"):
        from ivr.redisdb.server import parse_sentinel_url
        try:
            parse_sentinel_url(redis_url)
        except ValueError as exc:
            errors.append(f"IVR_REDIS_URL: {exc}")
    elif redis_url and urlsplit(redis_url).scheme not in ("redis", "rediss", "unix"):
        errors.append(f"IVR_REDIS_URL={redis_url!r}: expected redis://HOST:PORT/DB, unix:///path or "
                      "redis+sentinel://HOST:26379,HOST:26379/SERVICE/DB")


def _timezone(name: str, value: str, errors: list[str]) -> ZoneInfo:
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        errors.append(f"{name}={value!r}: not a known time zone (e.g. Asia/Shanghai)")
        return ZoneInfo("UTC")


def _one_of(name: str, value: str | None, allowed: tuple[str | None, ...], expected: str, errors: list[str]) -> None:
    if value not in allowed:
        errors.append(f"{name}={value!r}: expected {expected}")


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if environ is None else environ)
    errors: list[str] = []
    home = _home(env, errors)
    merged = {**_load_file(home, env, errors), **{k: v for k, v in env.items() if k in SETTINGS_HELP}}

    def get(name: str) -> str | None:
        v = merged.get(name)
        return v if v not in (None, "") else SETTINGS_HELP[name][0]

    def get_or_default(name: str) -> str:
        """A setting that has a default in SETTINGS_HELP."""
        v = get(name)
        assert v is not None, f"{name} has no default"
        return v

    data_dir = Path(get("IVR_DATA_DIR") or home / "var").resolve()
    redis_url = get("IVR_REDIS_URL")
    _check_redis_url(redis_url, errors)
    agi = _host_port("IVR_AGI_LISTEN", get_or_default("IVR_AGI_LISTEN"), errors)
    http = _host_port("IVR_HTTP_LISTEN", get_or_default("IVR_HTTP_LISTEN"), errors)
    ami_url = get("IVR_AMI_URL")
    ami = _ami("IVR_AMI_URL", ami_url, errors) if ami_url else None
    tz = _timezone("IVR_TIMEZONE", get_or_default("IVR_TIMEZONE"), errors)
    drain_s = _seconds(get, "IVR_DRAIN_S", 0, 3600, 30.0, errors)
    log_format = get("IVR_LOG_FORMAT") or ("console" if os.isatty(2) else "json")
    _one_of("IVR_LOG_FORMAT", log_format, ("json", "console"), "json or console", errors)
    log_level = get_or_default("IVR_LOG_LEVEL").lower()
    _one_of("IVR_LOG_LEVEL", log_level, ("debug", "info", "warning", "error"), "debug, info, warning or error",
            errors)
    contingency_mode = get("IVR_CONTINGENCY_MODE") or None
    _one_of("IVR_CONTINGENCY_MODE", contingency_mode, (None, "auto", "propose"), "auto or propose", errors)
    drill_lines_raw = (get("IVR_DRILL_LINES") or "").strip().lower()
    drill_lines = _drill_lines(drill_lines_raw, errors)
    drill_admission = (get("IVR_DRILL_ADMISSION") or "on").lower()
    _one_of("IVR_DRILL_ADMISSION", drill_admission, ("on", "off"), "on or off", errors)
    leader = (get("IVR_LEADER") or "yes").lower()
    _one_of("IVR_LEADER", leader, ("yes", "no"), "yes or no", errors)
    dialstring = get_or_default("IVR_TRANSFER_DIALSTRING")
    if "{number}" not in dialstring:
        errors.append(f"IVR_TRANSFER_DIALSTRING={dialstring!r}: must contain {{number}}")
    checkpoint_s = _seconds(get, "IVR_AUDIT_CHECKPOINT_S", 1, 86400, 300.0, errors)
    report_hours_s = _seconds(get, "IVR_REPORT_HOURS_S", 0, 86400, 300.0, errors)
    try:
        calls_kept(env)
    except ValueError as e:
        errors.append(str(e))
    if (merged.get("IVR_CALLS_KEPT") or "") != (env.get("IVR_CALLS_KEPT") or ""):
        errors.append("IVR_CALLS_KEPT: 只能在环境变量中设置（每个进程须相同）— environment only, the same for every "
                      "process")
    console = (get("IVR_CONSOLE") or "yes").lower()
    _one_of("IVR_CONSOLE", console, ("yes", "no"), "yes or no", errors)
    pbx_name = get_or_default("IVR_PBX_NAME")
    if not names.PBX.ok(pbx_name):
        errors.append(f"IVR_PBX_NAME={pbx_name!r}: {names.PBX.what}")
    if errors:
        raise ConfigError("wrong settings:\n  " + "\n  ".join(errors))
    return Settings(
        home=home, data_dir=data_dir, redis_url=redis_url, agi_listen=agi, ami=ami,
        http_listen=http, timezone=tz, prompt_prefix=get("IVR_PROMPT_PREFIX") or "",
        recordings_dir=get("IVR_RECORDINGS_DIR") or str(data_dir / "messages"),
        drain_s=drain_s, log_format=log_format, log_level=log_level,
        transfer_dialstring=dialstring, leader=leader != "no", contingency_mode=contingency_mode,
        drill_lines=drill_lines, drill_unlimited_lines=drill_lines_raw == "unlimited",
        drill_admission=drill_admission != "off",
        audit_key_file=Path(get("IVR_AUDIT_KEY_FILE") or data_dir / "audit.key").resolve(),
        audit_checkpoint_file=Path(get("IVR_AUDIT_CHECKPOINT_FILE") or data_dir / "audit-checkpoints.jsonl").resolve(),
        audit_checkpoint_s=checkpoint_s, report_hours_s=report_hours_s, console=console != "no",
        queue_log=Path(q).resolve() if (q := get("IVR_QUEUE_LOG")) else None,
        sounds_dir=Path(d).resolve() if (d := get("IVR_SOUNDS_DIR")) else None, pbx_name=pbx_name,
    )


def calls_kept(environ: Mapping[str, str], strict: bool = True) -> int:
    """``IVR_CALLS_KEPT``: how many call summaries the calls stream keeps
    (``strict`` False: the default for a wrong value, which ``load_settings``
    reports)."""
    raw = (environ.get("IVR_CALLS_KEPT") or "2000000").strip()
    if not raw.isdigit() or not 1000 <= int(raw) <= 100_000_000:
        if not strict:
            return 2_000_000
        raise ValueError(f"IVR_CALLS_KEPT={raw!r}: 通话记录保留条数须为 1000 至 100000000 的整数 — "
                         "a whole number from 1000 to 100000000")
    return int(raw)


def drill_lines_text(settings: Settings) -> str:
    """``IVR_DRILL_LINES`` as ``load_settings`` reads it back."""
    if settings.drill_unlimited_lines:
        return "unlimited"
    return ",".join(map(str, settings.drill_lines)) if settings.drill_lines else ""


def _drill_lines(raw: str, errors: list[str]) -> tuple[int, int, int] | None:
    if raw in ("", "unlimited"):
        return None
    parts = raw.split(",")
    try:
        lines, reserve, below = (int(x) for x in parts)
    except ValueError:
        errors.append(f"IVR_DRILL_LINES={raw!r}: LINES,RESERVE,OFFER_BELOW_FREE (three whole numbers) or unlimited")
        return None
    if not 0 <= reserve < lines or not reserve <= below <= lines:
        errors.append(f"IVR_DRILL_LINES={raw!r}: needs 0 <= RESERVE < LINES and RESERVE <= OFFER_BELOW_FREE <= LINES")
        return None
    return lines, reserve, below
