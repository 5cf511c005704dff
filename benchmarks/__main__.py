"""Run every benchmarks/bench_*.py module's main(), or the ones named on the command line."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    """The bench_* modules of this package, by name."""
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("bench_"))


def main(argv: list[str]) -> int:
    """Run the benchmarks; the exit status is the worst of theirs (1: a goal missed)."""
    available = discover()
    wanted = [a if a.startswith("bench_") else f"bench_{a}" for a in argv] or available
    unknown = [w for w in wanted if w not in available]
    if unknown:
        sys.stderr.write(f"unknown benchmark(s): {', '.join(unknown)}; have: {available}\n")
        return 2
    worst = 0
    for name in wanted:
        sys.stdout.write(f"== {name}\n")
        sys.stdout.flush()
        started = time.monotonic()
        module = importlib.import_module(f"benchmarks.{name}")
        status = int(module.main() or 0)
        sys.stdout.write(f"== {name}: exit {status} ({time.monotonic() - started:.1f} s)\n\n")
        worst = max(worst, status)
    return worst


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
