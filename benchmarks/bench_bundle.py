"""Support bundle of 1 GiB of logs against `tar czf` of the same files: time, peak RSS, disk.

The guest tree (generated once, cached under benchmarks/.data/bundle-vm/) holds 1 GiB of
agent-like log lines with a SAS URL, a proxy password and a protectedSettings value every few
hundred lines, so redaction does real work. The bundle runs in a fresh process (offline,
`--root`) with the caps lifted so that it reads the same bytes tar reads; a second run with the
default caps (30 MiB per file, 150 MiB in all) is shown for information. Goals: within 1.25x
of tar's wall time, peak RSS under 64 MiB, no temporary file besides the archive itself.

Environment: BENCH_BUNDLE_MIB (default 1024) to try another size.
"""

# ruff: noqa: E501  -- generated log lines keep the agent's real (long) shape

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
DATA = HERE / ".data" / "bundle-vm"
MIB = 1024 * 1024
GOAL_RATIO = 1.25
GOAL_RSS_MIB = 64.0
FILES = 8
_CPU: list[float] = []  # user+system seconds of each _run child and the children it reaped

_MEASURE = """
import sys, time
from datetime import datetime, timezone
from waagent_doctor.bundle.collect import build_bundle
from waagent_doctor.config import Bundle, Settings
from waagent_doctor.host import Host
root, out, lifted = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
caps = Bundle(max_file_mib=4096, max_total_mib=8192, deadline_seconds=3600) if lifted else Bundle()
host = Host.offline(root, datetime.now(timezone.utc))
r = build_bundle(host, Settings(bundle=caps), output=out, report_error="benchmark")
print(r.path, r.archive_bytes, r.uncompressed_bytes, r.redactions, r.files_truncated)
"""


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _block(rng: random.Random, size: int) -> bytes:
    """About `size` bytes of varied agent-like log lines with a secret now and then."""
    kinds = [
        "INFO ExtHandler ExtHandler [HEARTBEAT] Agent WALinuxAgent-2.15.0.1 is running as the goal state agent [DEBUG HeartbeatCounter: {n};HeartbeatId: {g};DroppedPackets: 0;UpdateGSErrors: 0;AutoUpdate: 1]",
        "INFO ExtHandler ExtHandler ProcessExtensionsGoalState started [incarnation_{n} channel: WireServer source: Fabric activity: {g} correlation {g}]",
        "WARNING ExtHandler ExtHandler Fetch failed: [HttpError] [HTTP Failed] GET https://md-{h}.z38.blob.storage.azure.net/$system/vm.{g}.status -- IOError timed out -- {n} attempts made",
        "INFO CollectOrReportEventsHandler ExtHandler Collected {n} events for extension: Microsoft.Azure.RecoveryServices.VMSnapshotLinux",
        "ERROR ExtHandler ExtHandler Event: name=Microsoft.Azure.RecoveryServices.VMSnapshotLinux, op=Enable, message=Non-zero exit code: {n}, main/handle.sh enable, duration={n}",
        "INFO Daemon Daemon Wire server endpoint:168.63.129.16 pid={n} elapsed={f}",
    ]
    secrets = [
        "WARNING ExtHandler ExtHandler upload failed https://md-{h}.blob.storage.azure.net/$system/vm.status?sv=2018-03-28&sr=b&sk=system-1&sig={h}%2b{h}%3d&se=9999-01-01T00%3a00%3a00Z&sp=w",
        "INFO ExtHandler ExtHandler using proxy http://user{n}:pass{h}@proxy.corp:3128",
        'INFO ExtHandler ExtHandler settings {{"protectedSettingsCertThumbprint":"{h}","protectedSettings":"MIIC{h}{h}{h}=="}}',
    ]
    out: list[str] = []
    total = 0
    t = 1_700_000_000.0
    while total < size:
        t += rng.random() * 2
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{rng.randrange(10**6):06d}Z"
        pool = secrets if rng.random() < 0.004 else kinds
        line = rng.choice(pool).format(
            n=rng.randrange(100000),
            g=uuid.UUID(int=rng.getrandbits(128)),
            h=f"{rng.getrandbits(64):016x}",
            f=f"{rng.random() * 100:.3f}",
        )
        text = f"{stamp} {line}\n"
        out.append(text)
        total += len(text)
    return "".join(out).encode()


def _ensure_data(total_mib: int) -> Path:
    """The cached guest tree with total_mib MiB of logs in FILES files."""
    stamp = DATA / f".complete-{total_mib}"
    if stamp.exists():
        return DATA
    shutil.rmtree(DATA, ignore_errors=True)
    _say(f"generating {total_mib} MiB of logs under {DATA} (once)")
    rng = random.Random(42)  # noqa: S311 - reproducible test data, not secrets
    block = _block(rng, 8 * MIB)
    per_file = total_mib * MIB // FILES
    for i in range(FILES):
        folder = "/var/log" if i == 0 else f"/var/log/azure/Bench.Extension{i}"
        name = "waagent.log" if i == 0 else "extension.log"
        path = DATA / folder.lstrip("/") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            written = 0
            while written < per_file:
                piece = block[: per_file - written]
                fh.write(piece)
                written += len(piece)
    (DATA / "etc").mkdir(exist_ok=True)
    (DATA / "etc/hostname").write_text("bench\n")
    stamp.write_text("ok\n")
    return DATA


def _run(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Wall seconds, peak RSS (MiB) of the child, and its stdout; CPU goes into _CPU."""
    began = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, env=env)
    out = proc.stdout.read().decode() if proc.stdout is not None else ""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - began
    _CPU.append(usage.ru_utime + usage.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed with {proc.returncode}")
    return wall, usage.ru_maxrss / 1024.0, out


def main() -> int:
    """Measure, print, and return 1 when a goal is missed."""
    total_mib = int(os.environ.get("BENCH_BUNDLE_MIB", "1024"))
    root = _ensure_data(total_mib)
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*.log"))
    size = sum((root / f).stat().st_size for f in files)
    work = Path(tempfile.mkdtemp(prefix="bench-bundle-"))
    scratch = work / "tmpdir"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), PYTHONPATH=str(PROJECT / "src"))
    try:
        # Warm the page cache so neither side pays for the first read.
        subprocess.run(
            ["cat", *[str(root / f) for f in files]], stdout=subprocess.DEVNULL, check=True
        )
        tar_times, bundle_times, rss = [], [], []
        for rnd in range(2):
            tar_out = work / f"tar{rnd}.tar.gz"
            wall, _, _ = _run(["tar", "czf", str(tar_out), "-C", str(root), *files], env)
            tar_times.append(wall)
            tar_cpu = _CPU[-1]
            out = work / f"out{rnd}"
            wall, peak, line = _run([sys.executable, "-c", _MEASURE, str(root), str(out), "1"], env)
            bundle_times.append(wall)
            bundle_cpu = _CPU[-1]
            rss.append(peak)
            path, archive_bytes, raw_bytes, redactions, _ = line.split()
            leftovers = [p.name for p in out.iterdir() if str(p) != path]
            if rnd == 0:
                tar_size = tar_out.stat().st_size
        wall_d, peak_d, line_d = _run(
            [sys.executable, "-c", _MEASURE, str(root), str(work / "d"), "0"], env
        )
        temp_files = list(scratch.iterdir())
    finally:
        shutil.rmtree(work, ignore_errors=True)
    tar_t, bun_t, peak = min(tar_times), min(bundle_times), max(rss)
    ratio = bun_t / tar_t
    _say(f"input: {len(files)} log files, {size / MIB:.0f} MiB")
    _say(f"tar czf:          {tar_t:6.2f} s   archive {tar_size / MIB:7.1f} MiB")
    _say(
        f"bundle (no caps): {bun_t:6.2f} s   archive {int(archive_bytes) / MIB:7.1f} MiB   "
        f"{int(raw_bytes) / MIB:.0f} MiB uncompressed, {redactions} values redacted"
    )
    _say(f"time ratio bundle/tar: {ratio:.2f} (goal <= {GOAL_RATIO})")
    _say(
        f"CPU (user+system): tar+gzip {tar_cpu:.2f} s, bundle {bundle_cpu:.2f} s "
        f"(two threads: redaction and compression); load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} CPUs"
    )
    _say(f"peak RSS of the bundle process: {peak:.1f} MiB (goal < {GOAL_RSS_MIB:.0f})")
    _say(
        f"default caps (30/150 MiB): {wall_d:.2f} s, peak RSS {peak_d:.1f} MiB, {line_d.split()[4]} files truncated"
    )
    _say(
        f"temporary files besides the archive: {len(temp_files) + len(leftovers)} "
        f"(TMPDIR entries {len(temp_files)}, other files in the output folder {len(leftovers)})"
    )
    missed = ratio > GOAL_RATIO or peak >= GOAL_RSS_MIB or temp_files or leftovers
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
