"""What the live benchmarks share: loopback fakes, their config, CPU counting, the measurer.

Each live benchmark measures in a fresh process (so imports and caches are its own) while the
fake Azure endpoints (tests/fakes, all healthy) run in another, whose CPU is not counted.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent


def say(text: str) -> None:
    """One line of the benchmark's report."""
    sys.stdout.write(text + "\n")


def cpu_seconds() -> float:
    """CPU seconds of this process and its waited-for children (systemctl and the like)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _start_fakes() -> tuple[subprocess.Popen[str], dict[str, int]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes"],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    if proc.stdout is None:
        raise RuntimeError("no stdout from the fakes")
    return proc, {k: int(v) for k, v in json.loads(proc.stdout.readline()).items()}


def config(ports: dict[str, int], sample_seconds: float) -> str:
    """A config with every endpoint on the fakes' loopback ports and assume_azure = true."""
    return (
        "assume_azure = true\n"
        f"[thresholds]\nsample_seconds = {sample_seconds}\n"
        "[endpoints]\n"
        'wireserver = "127.0.0.1"\n'
        f"wireserver_port = {ports['wireserver']}\n"
        f"hostgaplugin_port = {ports['hostgaplugin']}\n"
        'imds = "127.0.0.1"\n'
        f"imds_port = {ports['imds']}\n"
        'storage = "127.0.0.1"\n'
        f"storage_port = {ports['storage']}\n"
        "connect_timeout_seconds = 1\ndeadline_seconds = 3\n"
    )


def measure_against_fakes(module: str, count: int, sample_seconds: float) -> Any:
    """Start the fakes, run `python -m <module> --measure CONFIG COUNT`, return its JSON line."""
    fakes, ports = _start_fakes()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "config.toml"
            cfg.write_text(config(ports, sample_seconds))
            out = subprocess.run(
                [sys.executable, "-m", module, "--measure", str(cfg), str(count)],
                cwd=PROJECT,
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, "PYTHONPATH": f"{PROJECT / 'src'}:{PROJECT}"},
            )
    finally:
        fakes.terminate()
        fakes.wait()
    return json.loads(out.stdout.strip().splitlines()[-1])
