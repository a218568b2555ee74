"""The engine process: wiring (``engine.py``), one call from FastAGI to its end
(``call_service.py``), the configuration snapshot in force (``snapshot.py``),
the leader and its work (``leader.py``, ``leader_work.py``), the published
status (``status.py``) and ``/metrics`` (``metrics.py``)."""
