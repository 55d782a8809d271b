"""Shared vocabulary every layer may use: settings, time, errors, callers and metric counters."""
