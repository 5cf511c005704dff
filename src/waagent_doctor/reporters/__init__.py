"""Reporters tell: console and JSON for `check`, the journal and metrics for the daemon."""
