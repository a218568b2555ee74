"""Accounts, sessions and API tokens in Redis.

Passwords are hashed with scrypt (the standard library's: no dependency for
something this small), each with its own salt. Sessions are random tokens in a
cookie, expiring after ``SESSION_IDLE_S`` without use; each carries a CSRF token
the console sends back in a header on every change. API tokens (for
automation) are stored only as their SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from ivr import names
from ivr.errors import IvrError
from ivr.users_audit import record_user_change

USERS = "ivr:users"
SESSION = "ivr:session:"
TOKEN = "ivr:apitoken:"
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


def _hash(password: str, salt: bytes) -> str:
    return hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1, dklen=32).hex()


class Accounts:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def add(self, user: str, role: str, password: str) -> None:
        if not NAME_RE.match(user):
            raise IvrError(f"user name '{user}': 2 to 32 letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise IvrError(f"role '{role}': one of {', '.join(ROLES)}")
        self._check_password(password)
        salt = secrets.token_bytes(16)
        rec = {"role": role, "salt": salt.hex(), "hash": _hash(password, salt), "created": time.time()}
        if not await self.redis.hsetnx(USERS, user, json.dumps(rec)):
            raise IvrError(f"user '{user}' exists already (ivr users passwd changes a password)")
        await record_user_change(self.redis, "user_added", user, role=role)   # the chained audit log

    @staticmethod
    def _check_password(password: str) -> None:
        if len(password) < MIN_PASSWORD:
            raise IvrError(f"the password needs at least {MIN_PASSWORD} characters")

    async def passwd(self, user: str, password: str) -> None:
        raw = await self.redis.hget(USERS, user)
        if raw is None:
            raise IvrError(f"no user '{user}'")
        self._check_password(password)
        rec = json.loads(raw)
        salt = secrets.token_bytes(16)
        rec.update(salt=salt.hex(), hash=_hash(password, salt), changed=time.time())
        await self.redis.hset(USERS, user, json.dumps(rec))
        await record_user_change(self.redis, "password_changed", user)   # the chained audit log
        # every session of that user ends: a changed password must lock out whoever had the old one
        async for key in self.redis.scan_iter(match=SESSION + "*", count=500):
            raw_s = await self.redis.get(key)
            if raw_s and json.loads(raw_s).get("user") == user:
                await self.redis.delete(key)

    async def list(self) -> list[tuple[str, str]]:
        return sorted((u, json.loads(r)["role"]) for u, r in (await self.redis.hgetall(USERS)).items())

    async def check(self, user: str, password: str) -> str | None:
        """The user's role if the password is right, else None (same time either way)."""
        raw = await self.redis.hget(USERS, user)
        rec = json.loads(raw) if raw else {"salt": "00" * 16, "hash": "", "role": None}
        ok = hmac.compare_digest(_hash(password, bytes.fromhex(rec["salt"])), rec["hash"])
        return rec["role"] if ok and raw else None

    async def open_session(self, user: str, role: str) -> tuple[str, str]:
        token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        await self.redis.set(SESSION + token, json.dumps({"user": user, "role": role, "csrf": csrf}),
                             ex=SESSION_IDLE_S)
        return token, csrf

    async def session(self, token: str) -> Principal | None:
        if not token:
            return None
        raw = await self.redis.getex(SESSION + token, ex=SESSION_IDLE_S)
        if not raw:
            return None
        s = json.loads(raw)
        return Principal(s["user"], s["role"], "session", s["csrf"])

    async def close_session(self, token: str) -> None:
        await self.redis.delete(SESSION + token)

    async def new_token(self, user: str, label: str) -> str:
        raw = await self.redis.hget(USERS, user)
        if raw is None:
            raise IvrError(f"no user '{user}'")
        token = "ivr_" + secrets.token_urlsafe(32)
        await self.redis.set(TOKEN + hashlib.sha256(token.encode()).hexdigest(),
                             json.dumps({"user": user, "role": json.loads(raw)["role"], "label": label,
                                         "created": time.time()}))
        await record_user_change(self.redis, "token_issued", user, label=label)   # the chained audit log
        return token

    async def token(self, token: str) -> Principal | None:
        raw = await self.redis.get(TOKEN + hashlib.sha256(token.encode()).hexdigest())
        if not raw:
            return None
        t = json.loads(raw)
        if await self.redis.hget(USERS, t["user"]) is None:
            return None          # the account was removed: its tokens die with it
        return Principal(t["user"], t["role"], "token")
