"""Missed calls and the callback scheduler: policy (pure), store (Redis), scheduler (AMI)."""
