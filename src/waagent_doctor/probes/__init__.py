"""Probes observe: read a file, ask systemctl, connect to an endpoint. They never judge."""

from __future__ import annotations


class ProbeError(Exception):
    """A probe could not observe what it was asked (a command failed, a tool is missing)."""


class ProbeSkipped(Exception):
    """A probe that does not apply in this mode (offline) or on this host."""
