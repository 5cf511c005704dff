"""One full live `check` cycle against fake Azure endpoints on 127.0.0.1: CPU time and peak RSS.

The fakes (tests/fakes, all answering correctly) run in their own process so that their CPU is
not counted. A fresh measuring process imports the doctor, then runs diagnose() on the live
host with `assume_azure = true` and every endpoint on loopback: the first (cold) cycle, then
BENCH_RUNS warm cycles as the daemon would run them. CPU is process CPU (user + system, all
threads, plus the commands it runs such as systemctl), so waiting on the network or on the
CPU sampling window does not count. Goals: under 50 ms of CPU per cycle, under 40 MiB RSS.

Environment: BENCH_RUNS (default 5).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import sys
import time

from benchmarks.live import cpu_seconds, measure_against_fakes, say

GOAL_CPU_MS = 50.0
GOAL_RSS_MIB = 40.0


def measure(config: str, runs: int) -> dict[str, object]:
    """In the measuring process: cold and warm cycles of diagnose() on the live host."""
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    from waagent_doctor import config as configmod
    from waagent_doctor.engine import diagnose
    from waagent_doctor.host import Host

    settings = configmod.load(config)
    rss_imported = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    cycles: list[dict[str, float]] = []
    codes: list[str] = []
    for _ in range(runs + 1):
        cpu0, wall0 = cpu_seconds(), time.monotonic()
        report = diagnose(Host.live_host(), settings)
        cycles.append({"cpu_ms": (cpu_seconds() - cpu0) * 1000, "wall_s": time.monotonic() - wall0})
        codes = sorted(f.code for f in report.findings)
    return {
        "cold": cycles[0],
        "warm_cpu_ms": [c["cpu_ms"] for c in cycles[1:]],
        "warm_wall_s": [c["wall_s"] for c in cycles[1:]],
        "rss_start_mib": rss_start,
        "rss_imported_mib": rss_imported,
        "rss_peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "codes": codes,
    }


def main() -> int:
    """Run the benchmark and print the numbers; 1 when a goal is missed."""
    runs = int(os.environ.get("BENCH_RUNS", "5"))
    data = measure_against_fakes("benchmarks.bench_check_live", runs, sample_seconds=0.2)
    cold = data["cold"]
    warm = data["warm_cpu_ms"]
    warm_median = statistics.median(warm) if warm else cold["cpu_ms"]
    network = [c for c in data["codes"] if c.startswith("network.")]
    say(f"cold cycle: {cold['cpu_ms']:.1f} ms CPU ({cold['wall_s']:.2f} s wall)")
    say(
        f"warm cycles ({len(warm)}): median {warm_median:.1f} ms CPU, "
        f"max {max(warm, default=0):.1f} ms (wall median "
        f"{statistics.median(data['warm_wall_s'] or [0]):.2f} s)"
    )
    say(
        f"RSS: {data['rss_start_mib']:.1f} MiB at start, {data['rss_imported_mib']:.1f} MiB "
        f"after imports, peak {data['rss_peak_mib']:.1f} MiB"
    )
    say(f"findings: {data['codes']}")
    ok = True
    if network:
        say(f"UNEXPECTED network findings against healthy fakes: {network}")
        ok = False
    if warm_median > GOAL_CPU_MS:
        say(f"GOAL MISSED: {warm_median:.1f} ms CPU per cycle > {GOAL_CPU_MS:g} ms")
        ok = False
    if data["rss_peak_mib"] > GOAL_RSS_MIB:
        say(f"GOAL MISSED: peak RSS {data['rss_peak_mib']:.1f} MiB > {GOAL_RSS_MIB:g} MiB")
        ok = False
    if ok:
        say(f"goals met: < {GOAL_CPU_MS:g} ms CPU per warm cycle, < {GOAL_RSS_MIB:g} MiB RSS")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--measure":
        say(json.dumps(measure(sys.argv[2], int(sys.argv[3]))))
        sys.exit(0)
    sys.exit(main())
