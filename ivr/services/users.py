"""Console accounts (``ivr users``): every change is recorded, with who made
it, in the chained users audit log (``ivr.accounts.changes``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ivr.accounts.store import ROLE_NAMES, ROLES, Accounts

if TYPE_CHECKING:
    import redis.asyncio as aioredis

__all__ = ["ROLES", "ROLE_NAMES", "add", "change_password", "change_role", "issue_token", "listing", "remove"]


async def add(redis: aioredis.Redis, user: str, role: str, password: str, *, by: str) -> None:
    await Accounts(redis).add(user, role, password, by=by)


async def change_password(redis: aioredis.Redis, user: str, password: str, *, by: str) -> None:
    """The new password; every session of the user ends."""
    await Accounts(redis).passwd(user, password, by=by)


async def change_role(redis: aioredis.Redis, user: str, role: str, *, by: str) -> None:
    """The new role; every session of the user ends, tokens follow the role."""
    await Accounts(redis).set_role(user, role, by=by)


async def remove(redis: aioredis.Redis, user: str, *, by: str) -> None:
    """The account, its sessions and (in effect) its tokens gone."""
    await Accounts(redis).remove(user, by=by)


async def issue_token(redis: aioredis.Redis, user: str, label: str, *, by: str) -> str:
    """A new API token for automation; shown once, stored only as its hash."""
    return await Accounts(redis).new_token(user, label, by=by)


async def listing(redis: aioredis.Redis) -> list[tuple[str, str]]:
    return await Accounts(redis).list()
