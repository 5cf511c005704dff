"""Prometheus textfile for node_exporter's textfile collector (settings.metrics.textfile).

Written atomically (prometheus-client writes a temporary file and renames it), so the
collector never reads half a file.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from waagent_doctor.codes import CODES
from waagent_doctor.state import State


class _StateCollector:
    """Metrics read from the state at collection time (counters survive restarts)."""

    def __init__(self, state: State) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        open_f = GaugeMetricFamily(
            "waagent_doctor_finding_open",
            "1 for each finding code open now",
            labels=["code", "cause", "severity"],
        )
        for code, row in sorted(CODES.items()):
            value = 1.0 if code in self.state.open_findings else 0.0
            open_f.add_metric([code, str(row.cause), row.severity.value], value)
        yield open_f
        actions = CounterMetricFamily(
            "waagent_doctor_actions",
            "Actions decided by the daemon, by action and result",
            labels=["action", "result"],
        )
        for key, count in sorted(self.state.totals.items()):
            name, _, result = key.partition("/")
            actions.add_metric([name, result], float(count))
        yield actions
        cycle = self.state.last_cycle
        duration = GaugeMetricFamily(
            "waagent_doctor_cycle_duration_seconds", "Duration of the last diagnosis cycle"
        )
        last = GaugeMetricFamily(
            "waagent_doctor_last_cycle_timestamp_seconds", "When the last cycle ended (Unix time)"
        )
        if cycle is not None:
            duration.add_metric([], cycle.duration)
            last.add_metric([], cycle.at)
        yield duration
        yield last
        verbose = GaugeMetricFamily(
            "waagent_doctor_verbose_logging", "1 while the doctor keeps Logs.Verbose=y"
        )
        verbose.add_metric([], 1.0 if self.state.verbose_logging is not None else 0.0)
        yield verbose


def write(path: str, state: State) -> None:
    """Write the textfile for the current state."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_StateCollector(state))
    write_to_textfile(path, registry)
