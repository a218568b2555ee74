"""Accounts, sessions and API tokens in Redis.

Passwords are hashed with scrypt (the standard library's: no dependency for
something this small), each with its own salt. scrypt costs ~50 ms of CPU and
16 MB: it runs in one worker thread at the lowest CPU priority (OpenSSL's scrypt
releases the GIL), never on the event loop that serves calls. Sessions are
random tokens in a cookie, expiring after ``SESSION_IDLE_S`` without use; each
carries a CSRF token the console sends back in a header on every change. Both
sessions and API tokens (for automation) are stored only as the SHA-256 of the
token: whoever reads Redis (a dump, a replica, MONITOR) cannot sign in with
them. Each user's sessions are listed in a set, so a password change ends them
all without scanning.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import redis.asyncio as aioredis

from ivr import names
from ivr.accounts.changes import record_user_change
from ivr.errors import IvrError
from ivr.redisdb import keys
from ivr.redisdb.replies import fields, text_or_none, text_set

USERS = keys.USERS
SESSION = keys.SESSION_PREFIX             # + sha256(token)
USER_SESSIONS = keys.USER_SESSIONS_PREFIX  # + user: set of sha256(token)
TOKEN = keys.API_TOKEN_PREFIX
ROLES = ("operations", "seat_manager", "auditor", "admin")
ROLE_NAMES = {"operations": "运营人员 operations", "seat_manager": "值班长 seat manager",
              "auditor": "审计员 auditor", "admin": "管理员 administrator"}
SESSION_IDLE_S = 8 * 3600
NAME_RE = names.USER   # full match (ivr/names.py): "ops\n" is refused
MIN_PASSWORD = 10


@dataclass(frozen=True, slots=True)
class Principal:
    user: str
    role: str
    via: str            # session | token
    csrf: str = ""


class UserRecord(TypedDict):
    """An account as stored in the USERS hash (JSON)."""
    role: str
    salt: str           # hex
    hash: str           # hex scrypt of the password
    created: NotRequired[float]
    changed: NotRequired[float]


# who is checked when the user does not exist: the same scrypt, never a match
_NO_USER: UserRecord = {"role": "", "salt": "00" * 16, "hash": ""}


def _hash(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1, dklen=32).hex()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _idle_thread() -> None:
    """The hashing thread runs on CPU time the calls leave (Linux: SCHED_IDLE
    applies to this thread only)."""
    try:
        os.sched_setscheduler(threading.get_native_id(), os.SCHED_IDLE, os.sched_param(0))
    except (AttributeError, OSError):
        pass


# one thread: however many sign-ins arrive, hashing never takes more than one core from the calls
_HASHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scrypt", initializer=_idle_thread)


async def _hash_off_loop(password: str, salt: bytes) -> str:
    """scrypt off the event loop (OpenSSL's scrypt releases the GIL)."""
    return await asyncio.get_running_loop().run_in_executor(_HASHER, _hash, password, salt)


class Accounts:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def add(self, user: str, role: str, password: str, *, by: str | None = None) -> None:
        if not NAME_RE.match(user):
            raise IvrError(f"用户名 '{user}' 应为 2 到 32 个字母、数字、'.'、'_' 或 '-' — user name: 2 to 32 letters, digits, "
                           "'.', '_' or '-'")
        self._check_role(role)
        self._check_password(password)
        salt = secrets.token_bytes(16)
        rec: UserRecord = {"role": role, "salt": salt.hex(), "hash": await _hash_off_loop(password, salt),
                           "created": time.time()}
        if not await self.redis.hsetnx(USERS, user, json.dumps(rec)):
            raise IvrError(f"用户 '{user}' 已存在（改密码用 ivr users passwd） — user exists already "
                           "(ivr users passwd changes a password)")
        await record_user_change(self.redis, "user_added", user, by=by, role=role)   # the chained audit log

    @staticmethod
    def _check_role(role: str) -> None:
        if role not in ROLES:
            raise IvrError(f"角色 '{role}' 应为 {', '.join(ROLES)} 之一 — role: one of {', '.join(ROLES)}")

    async def _record(self, user: str) -> UserRecord:
        raw = text_or_none(await self.redis.hget(USERS, user))
        if raw is None:
            raise IvrError(f"没有用户 '{user}' — no user '{user}'")
        rec: UserRecord = json.loads(raw)
        return rec

    async def set_role(self, user: str, role: str, *, by: str | None = None) -> None:
        """A new role; the user's sessions end (each carries the role it was
        opened with), API tokens follow the account's role."""
        self._check_role(role)
        rec = await self._record(user)
        rec["role"], rec["changed"] = role, time.time()
        await self.redis.hset(USERS, user, json.dumps(rec))
        await record_user_change(self.redis, "role_changed", user, by=by, role=role)   # the chained audit log
        await self.end_sessions(user)

    async def remove(self, user: str, *, by: str | None = None) -> None:
        """The account goes; its sessions end and its API tokens stop working."""
        if not await self.redis.hdel(USERS, user):
            raise IvrError(f"没有用户 '{user}' — no user '{user}'")
        await record_user_change(self.redis, "user_removed", user, by=by)   # the chained audit log
        await self.end_sessions(user)

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise IvrError(f"密码至少需要 {MIN_PASSWORD} 个字符 — the password needs at least {MIN_PASSWORD} characters")

    async def passwd(self, user: str, password: str, *, by: str | None = None) -> None:
        rec = await self._record(user)
        self._check_password(password)
        salt = secrets.token_bytes(16)
        rec["salt"], rec["hash"], rec["changed"] = salt.hex(), await _hash_off_loop(password, salt), time.time()
        await self.redis.hset(USERS, user, json.dumps(rec))
        await record_user_change(self.redis, "password_changed", user, by=by)   # the chained audit log
        await self.end_sessions(user)

    async def end_sessions(self, user: str) -> None:
        """Every session of that user ends: a changed password must lock out whoever had the old one."""
        digests = text_set(await self.redis.smembers(USER_SESSIONS + user))
        if digests:
            await self.redis.delete(*[SESSION + d for d in digests])
        await self.redis.delete(USER_SESSIONS + user)

    async def list(self) -> list[tuple[str, str]]:
        return sorted((u, json.loads(r)["role"]) for u, r in fields(await self.redis.hgetall(USERS)).items())

    async def check(self, user: str, password: str) -> str | None:
        """The user's role if the password is right, else None (same time either way)."""
        raw = text_or_none(await self.redis.hget(USERS, user))
        rec: UserRecord = json.loads(raw) if raw else _NO_USER
        ok = hmac.compare_digest(await _hash_off_loop(password, bytes.fromhex(rec["salt"])), rec["hash"])
        return rec["role"] if ok and raw else None

    async def open_session(self, user: str, role: str) -> tuple[str, str]:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        digest = _digest(token)
        # the user's set has no expiry (a session in use lives on past any fixed time): the
        # entries of sessions that expired idle are dropped here, at the next sign-in
        known = list(text_set(await self.redis.smembers(USER_SESSIONS + user)))
        if known:
            pipe = self.redis.pipeline(transaction=False)
            for d in known:
                pipe.exists(SESSION + d)
            dead = [d for d, alive in zip(known, await pipe.execute(), strict=True) if not alive]
            if dead:
                await self.redis.srem(USER_SESSIONS + user, *dead)
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(SESSION + digest, json.dumps({"user": user, "role": role, "csrf": csrf}), ex=SESSION_IDLE_S)
        pipe.sadd(USER_SESSIONS + user, digest)
        await pipe.execute()
        return token, csrf

    async def session(self, token: str) -> Principal | None:
        if not token:
            return None
        raw = await self.redis.getex(SESSION + _digest(token), ex=SESSION_IDLE_S)
        if not raw:
            return None
        s = json.loads(raw)
        return Principal(s["user"], s["role"], "session", s["csrf"])

    async def session_alive(self, token: str) -> bool:
        """For long streams: is the session still open (without extending it)?"""
        return bool(token) and bool(await self.redis.exists(SESSION + _digest(token)))

    async def close_session(self, token: str) -> None:
        if token:
            await self.redis.delete(SESSION + _digest(token))

    async def new_token(self, user: str, label: str, *, by: str | None = None) -> str:
        rec = await self._record(user)
        token = "ivr_" + secrets.token_urlsafe(32)
        await self.redis.set(TOKEN + _digest(token),
                             json.dumps({"user": user, "role": rec["role"], "label": label,
                                         "created": time.time()}))
        await record_user_change(self.redis, "token_issued", user, by=by, label=label)   # the chained audit log
        return token

    async def token(self, token: str) -> Principal | None:
        raw = await self.redis.get(TOKEN + _digest(token))
        if not raw:
            return None
        t = json.loads(raw)
        account = await self.redis.hget(USERS, t["user"])
        if account is None:
            return None          # the account was removed: its tokens die with it
        return Principal(t["user"], json.loads(account)["role"], "token")   # the account's role now
