"""Coordination between requests and instances: upload state, per-upload locks, cleanup sweeps."""
