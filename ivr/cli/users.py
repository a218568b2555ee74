"""Administrators' commands: ``ivr users add|passwd|role|remove|list|token``,
console accounts from the command line (every change audited)."""

from __future__ import annotations

import getpass
import os
import sys

from ivr.cli.common import audited, run_with_redis, who
from ivr.errors import IvrError
from ivr.settings import Settings


def _password(args) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    if os.environ.get("IVR_NEW_PASSWORD"):
        return os.environ["IVR_NEW_PASSWORD"]
    if not sys.stdin.isatty():
        raise IvrError("没有终端可输入密码：请用 --password-stdin 从标准输入读入（或设置 IVR_NEW_PASSWORD）— "
                       "no terminal to type the password on: use --password-stdin (or IVR_NEW_PASSWORD)")
    first = getpass.getpass("密码 password: ")
    if getpass.getpass("再输入一次 again: ") != first:
        raise IvrError("两次输入的密码不一致 — the two passwords differ")
    return first


def cmd_users(args, settings: Settings) -> int:
    from ivr.services import users

    async def go(redis):
        if args.sub == "add":
            await users.add(redis, args.user, args.role, _password(args), by=who())
            print(f"已添加用户 {args.user}（{users.ROLE_NAMES[args.role]}） — user added")
        elif args.sub == "passwd":
            await users.change_password(redis, args.user, _password(args), by=who())
            print(f"{args.user} 的密码已更改，其登录会话已全部结束 — password changed; their sessions ended")
        elif args.sub == "role":
            await users.change_role(redis, args.user, args.role, by=who())
            print(f"{args.user} 的角色已改为{users.ROLE_NAMES[args.role]}，其登录会话已全部结束 — role changed; "
                  "their sessions ended")
        elif args.sub == "remove":
            await users.remove(redis, args.user, by=who())
            print(f"已删除用户 {args.user}，其会话和 API 令牌均已失效 — user removed; their sessions and tokens "
                  "no longer work")
        elif args.sub == "token":
            print(await users.issue_token(redis, args.user, args.label, by=who()))
        else:
            for user, role in await users.listing(redis):
                print(f"{user:<20} {users.ROLE_NAMES[role]}")
    run_with_redis(settings, go)
    return 0


def add_commands(sub) -> None:
    from ivr.services.users import ROLES

    u = sub.add_parser("users", help="console accounts").add_subparsers(dest="sub", required=True)
    a = u.add_parser("add", help="add an account")
    a.add_argument("user")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p = u.add_parser("passwd", help="change a password (ends the user's sessions)")
    p.add_argument("user")
    p.add_argument("--password-stdin", action="store_true")
    r = u.add_parser("role", help="change an account's role (ends the user's sessions)")
    r.add_argument("user")
    r.add_argument("--role", required=True, choices=ROLES)
    rm = u.add_parser("remove", help="remove an account (its sessions end, its API tokens stop working)")
    rm.add_argument("user")
    u.add_parser("list", help="accounts and roles")
    t = u.add_parser("token", help="an API token for automation (printed once)")
    t.add_argument("user")
    t.add_argument("--label", default="")
    for name, x in u.choices.items():
        x.set_defaults(fn=cmd_users)
        if name != "list":          # every change of an account is audited
            audited(x)
