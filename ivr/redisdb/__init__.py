"""Redis: the one place the engine's key names live (``keys.py``), typed reply
helpers (``replies.py``), connecting and the embedded server (``server.py``),
replicated writes (``durable.py``) and the published live model (``live.py``)."""
