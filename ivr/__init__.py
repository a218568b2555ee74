"""IVR and overflow-call engine for the 12345 government service hotline.

The engine sits behind Asterisk: it answers FastAGI (and classic AGI) requests by
running call flows written in YAML, and keeps its state in Redis.
"""

__version__ = "0.1.0"
