"""Asterisk Manager Interface: the live model of seats and queues (pure) and the
controller that keeps it in step with a PBX (adapter)."""
