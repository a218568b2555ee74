"""Rehearsals: the simulated Asterisk (``sim/``), drills, benchmarks
(``bench/``) and the demo. The production commands never import this package;
``ivr.cli`` loads ``ivr.rehearsal.commands`` only for ``ivr drill``, ``ivr demo``
and ``ivr bench``."""
