"""`ivr users add|passwd|list|token`: console accounts from the command line."""

from __future__ import annotations

import getpass
import os
import sys

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
    from ivr.cli import _run, _with_redis
    from ivr.web.accounts import ROLE_NAMES, Accounts

    async def go(redis):
        accounts = Accounts(redis)
        if args.sub == "add":
            await accounts.add(args.user, args.role, _password(args))
            print(f"已添加用户 {args.user}（{ROLE_NAMES[args.role]}） — user added")
        elif args.sub == "passwd":
            await accounts.passwd(args.user, _password(args))
            print(f"{args.user} 的密码已更改，其登录会话已全部结束 — password changed; their sessions ended")
        elif args.sub == "token":
            print(await accounts.new_token(args.user, args.label))
        else:
            for user, role in await accounts.list():
                print(f"{user:<20} {ROLE_NAMES[role]}")
    _run(_with_redis(settings, go))
    return 0


def add_commands(sub) -> None:
    from ivr.web.accounts import ROLES

    u = sub.add_parser("users", help="console accounts").add_subparsers(dest="sub", required=True)
    a = u.add_parser("add", help="add an account")
    a.add_argument("user")
    a.add_argument("--role", required=True, choices=ROLES)
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    p = u.add_parser("passwd", help="change a password (ends the user's sessions)")
    p.add_argument("user")
    p.add_argument("--password-stdin", action="store_true")
    u.add_parser("list", help="accounts and roles")
    t = u.add_parser("token", help="an API token for automation (printed once)")
    t.add_argument("user")
    t.add_argument("--label", default="")
    for x in (a, p, t):
        x.set_defaults(fn=cmd_users)
    u.choices["list"].set_defaults(fn=cmd_users)
