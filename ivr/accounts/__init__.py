"""Console accounts: users, roles, sessions and API tokens (``store.py``), and
the users audit log every change goes to (``changes.py``). The console and the
CLI reach them through ``ivr.services.users``."""
