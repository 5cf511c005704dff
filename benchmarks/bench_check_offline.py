"""`waagent-doctor check --root TREE --json` on a large VM tree: wall time and peak memory.

The tree (generated once, cached under benchmarks/.data/) is a VM that has lived a while:
an 8 GiB apparent-size set of logs (a 3 GiB waagent.log whose head is a sparse hole, eleven
gzip rotations of which the newest holds the rest of the look-back window, a 4 GiB
extension.log and a 1 GiB shell.log of the backup extension), 50 extension handler folders
and 50 goal-state history folders. Goals: under 1 s (median run) and under 60 MiB (every run).

Environment: BENCH_RUNS (default 5) runs; BENCH_REGENERATE=1 rebuilds the tree.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "data"
TREE = HERE / ".data" / "vm-large"
VERSION = "3"  # bump when the generator changes: the cached tree is rebuilt
STAMP = TREE / f".complete-v{VERSION}"

GOAL_SECONDS = 1.0
GOAL_MIB = 60.0
NOW = datetime(2025, 9, 6, 12, 0, 0, tzinfo=timezone.utc)
GIB = 1024**3
VMSNAPSHOT = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
VMSNAPSHOT_VERSION = "1.0.9225.0"
HANDLERS = 50
HISTORY = 50
SEQ_NOS = 5
THUMBPRINT = "1AF52E2E892C3A0DBC589F301F80073CBA924E26"  # the fixture's test value


# -- generation ---------------------------------------------------------------------------------
def _write(path: Path, data: str | bytes, mtime: datetime | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def _sparse(path: Path, hole: int, tail: bytes, mtime: datetime) -> None:
    """A file of `hole` bytes of sparse hole followed by `tail` (costs only the tail)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        fh.truncate(hole)
        fh.seek(hole)
        fh.write(tail)
    os.utime(path, (mtime.timestamp(), mtime.timestamp()))


def _iso(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _agent_lines(start: datetime, end: datetime, step: float) -> list[str]:
    """A busy agent: goal-state polls, extension status, heartbeats every 30 minutes."""
    lines = []
    t = start
    n = 0
    while t < end:
        n += 1
        if n % 900 == 0:
            lines.append(
                f"{_iso(t)} INFO ExtHandler ExtHandler [HEARTBEAT] Agent WALinuxAgent-2.14.0.1 "
                f"is running as the goal state agent [DEBUG HeartbeatCounter: {n // 900};"
                "HeartbeatId: 6A9BD8C5-9C1A-4C2F-8E63-49B0F6C2D1E7;DroppedPackets: 0;"
                "UpdateGSErrors: 0;AutoUpdate: 1;UpdateMode: SelfUpdate;]"
            )
        elif n % 7 == 0:
            lines.append(
                f"{_iso(t)} INFO ExtHandler ExtHandler ProcessExtensionsGoalState completed "
                f"[incarnation_{n // 7} 412 ms]"
            )
        elif n % 5 == 0:
            lines.append(
                f"{_iso(t)} INFO CollectLogsHandler ExtHandler Running periodic log collection"
            )
        else:
            lines.append(
                f"{_iso(t)} VERBOSE ExtHandler ExtHandler Extension status: "
                f"[('{VMSNAPSHOT}', 'success'), ('Microsoft.Bench.Ext{n % HANDLERS:02d}', "
                "'success')]"
            )
        t += timedelta(seconds=step)
    return lines


def _wireserver_incident(at: datetime) -> list[str]:
    """A half-hour WireServer outage with a traceback, then recovery (must not be raised)."""
    lines = []
    for i in range(6):
        t = at + timedelta(minutes=5 * i)
        lines.append(
            f"{_iso(t)} ERROR ExtHandler ExtHandler Error fetching the goal state: "
            "[ProtocolError] [Wireserver Exception] [HttpError] [HTTP Failed] GET "
            "http://168.63.129.16/machine/ -- IOError timed out -- 6 attempts made"
        )
        lines.append("Traceback (most recent call last):")
        lines.append('  File "azurelinuxagent/common/protocol/wire.py", line 1210, in fetch')
    lines.append(
        f"{_iso(at + timedelta(minutes=31))} INFO ExtHandler ExtHandler Fetching the goal state "
        "recovered from previous errors. Fetched incarnation_812"
    )
    return lines


def _gen_agent_logs(tree: Path) -> None:
    log = tree / "var/log"
    # The live log: a 3 GiB hole (what is left of an unclean shutdown), then 6 hours of records.
    live = _agent_lines(NOW - timedelta(hours=6), NOW, 2.0)
    live[len(live) // 2 : len(live) // 2] = _wireserver_incident(NOW - timedelta(hours=3))
    _sparse(log / "waagent.log", 3 * GIB, ("\n".join(live) + "\n").encode(), NOW)
    # The newest rotation (rotated 6 hours ago, gzip as the agent's logrotate file says): about
    # 20 MB of text covering the 48 hours before. The window reaches 18 hours into it.
    rotated = _agent_lines(NOW - timedelta(hours=54), NOW - timedelta(hours=6), 1.6)
    payload = gzip.compress(("\n".join(rotated) + "\n").encode(), compresslevel=6)
    for day in range(11):
        end = NOW - timedelta(hours=6) - timedelta(days=2 * day)
        name = f"waagent.log-{end:%Y-%m-%d}-{int(end.timestamp())}.gz"
        _write(log / name, payload, end)


def _gen_extension_logs(tree: Path) -> None:
    d = tree / "var/log/azure" / VMSNAPSHOT
    ext_lines = []
    shell_lines = []
    for i in range(400):
        t = NOW - timedelta(hours=12) + timedelta(seconds=30 * i)
        stamp = t.strftime("%Y/%m/%d %H:%M:%S")
        ext_lines.append(
            f"{stamp} [{VMSNAPSHOT}-{VMSNAPSHOT_VERSION}]{t:%Y-%m-%d %H:%M:%S.%f}  Info  "
            f"snapshot step {i % 9}: freezing the mount /data{i % 3} ... done"
        )
        shell_lines.append(f"{t:%Y-%m-%d %H:%M:%S}- python3 path exists")
    _sparse(d / "extension.log", 4 * GIB, ("\n".join(ext_lines) + "\n").encode(), NOW)
    _sparse(d / "shell.log", 1 * GIB, ("\n".join(shell_lines) + "\n").encode(), NOW)
    for i in range(0, HANDLERS - 1, 5):
        _write(
            tree / f"var/log/azure/Microsoft.Bench.Ext{i:02d}/handler.log",
            "".join(f"{NOW:%Y/%m/%d %H:%M:%S} enable: ok {j}\n" for j in range(2000)),
        )


def _handlers() -> list[tuple[str, str]]:
    names = [(f"Microsoft.Bench.Ext{i:02d}", f"1.{i}.0") for i in range(HANDLERS - 1)]
    return [*names, (VMSNAPSHOT, VMSNAPSHOT_VERSION)]


def _status(name: str, seq: int, when: datetime) -> str:
    return json.dumps(
        [
            {
                "version": "1.0",
                "timestampUTC": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "status": {
                    "name": name,
                    "operation": "Enable",
                    "status": "success",
                    "code": 0,
                    "formattedMessage": {"lang": "en-US", "message": f"Enable succeeded ({seq})"},
                    "substatus": [
                        {
                            "name": "snapshot",
                            "status": "success",
                            "code": 0,
                            "formattedMessage": {"lang": "en-US", "message": "done"},
                        }
                    ],
                },
            }
        ],
        indent=2,
    )


def _gen_handlers(tree: Path) -> None:
    lib = tree / "var/lib/waagent"
    for name, version in _handlers():
        base = lib / f"{name}-{version}"
        _write(
            base / "HandlerManifest.json",
            json.dumps(
                [
                    {
                        "name": name,
                        "version": version,
                        "handlerManifest": {
                            "installCommand": "main/handle.sh install",
                            "uninstallCommand": "main/handle.sh uninstall",
                            "updateCommand": "main/handle.sh update",
                            "enableCommand": "main/handle.sh enable",
                            "disableCommand": "main/handle.sh disable",
                            "reportHeartbeat": False,
                        },
                    }
                ]
            ),
        )
        _write(
            base / "HandlerEnvironment.json",
            json.dumps(
                [
                    {
                        "name": name,
                        "version": 1.0,
                        "handlerEnvironment": {
                            "logFolder": f"/var/log/azure/{name}",
                            "configFolder": f"/var/lib/waagent/{name}-{version}/config",
                            "statusFolder": f"/var/lib/waagent/{name}-{version}/status",
                            "heartbeatFile": f"/var/lib/waagent/{name}-{version}/heartbeat.log",
                        },
                    }
                ]
            ),
        )
        _write(base / "config/HandlerState", "Enabled")
        _write(
            base / "config/HandlerStatus",
            json.dumps(
                {
                    "name": name,
                    "version": version,
                    "status": "Ready",
                    "code": 0,
                    "message": "Plugin enabled",
                    "supports_multi_config": False,
                }
            ),
        )
        _write(base / "mrseq", str(SEQ_NOS - 1))
        for seq in range(SEQ_NOS):
            when = NOW - timedelta(hours=2 * (SEQ_NOS - seq))
            settings = {
                "runtimeSettings": [
                    {
                        "handlerSettings": {
                            "protectedSettingsCertThumbprint": THUMBPRINT,
                            "protectedSettings": "***REDACTED***",
                            "publicSettings": {},
                        }
                    }
                ]
            }
            _write(base / f"config/{seq}.settings", json.dumps(settings), when)
            _write(base / f"status/{seq}.status", _status(name, seq, when), when)


def _extensions_config(template: str, incarnation: int) -> str:
    """The fixture ExtensionsConfig.xml with our 50 plugins in place of its own."""
    head, rest = template.split("<Plugins>", 1)
    _, tail = rest.split("</PluginSettings>", 1)
    plugins = []
    settings = []
    for name, version in _handlers():
        plugins.append(
            f'  <Plugin name="{name}" version="{version}" location="https://umsa.blob.core.'
            f'windows.net/x/{name}_manifest.xml" state="enabled" autoUpgrade="true" '
            'runAsStartupTask="false" isJson="true" useExactVersion="true" />'
        )
        settings.append(
            f'  <Plugin name="{name}" version="{version}">\n    <RuntimeSettings '
            f'seqNo="{SEQ_NOS - 1}">{{"runtimeSettings":[{{"handlerSettings":{{'
            '"protectedSettingsCertThumbprint":"1AF52E2E892C3A0DBC589F301F80073CBA924E26",'
            '"protectedSettings":"***REDACTED***","publicSettings":{}}}]}}</RuntimeSettings>\n'
            "  </Plugin>"
        )
    head = head.replace('goalStateIncarnation="1"', f'goalStateIncarnation="{incarnation}"')
    return (
        f"{head}<Plugins>\n"
        + "\n".join(plugins)
        + "\n</Plugins>\n<PluginSettings>\n"
        + "\n".join(settings)
        + f"\n</PluginSettings>{tail}"
    )


def _gen_history(tree: Path) -> None:
    hist = tree / "var/lib/waagent/history"
    tpl = {p.name: p.read_text() for p in (TEMPLATES / "history_goal_state").glob("*.xml")}
    for n in range(1, HISTORY + 1):
        when = NOW - timedelta(hours=(HISTORY - n) * 3)
        folder = hist / f"{when:%Y-%m-%dT%H-%M-%S}__{n}"
        gs = tpl["GoalState.xml"].replace(
            "<Incarnation>1</Incarnation>", f"<Incarnation>{n}</Incarnation>"
        )
        _write(folder / "GoalState.xml", gs, when)
        _write(folder / "ExtensionsConfig.xml", _extensions_config(tpl["ExtensionsConfig.xml"], n))
        _write(folder / "HostingEnvironmentConfig.xml", tpl["HostingEnvironmentConfig.xml"])
        _write(folder / "SharedConfig.xml", tpl["SharedConfig.xml"])
        status = {
            "version": "1.1",
            "timestampUTC": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "aggregateStatus": {
                "guestAgentStatus": {
                    "version": "2.14.0.1",
                    "status": "Ready",
                    "formattedMessage": {"lang": "en-US", "message": "Guest Agent is running"},
                },
                "handlerAggregateStatus": [
                    {
                        "handlerName": name,
                        "handlerVersion": version,
                        "status": "Ready",
                        "code": 0,
                        "useExactVersion": True,
                        "runtimeSettingsStatus": {
                            "settingsStatus": {"status": {"status": "success"}},
                            "sequenceNumber": SEQ_NOS - 1,
                        },
                    }
                    for name, version in _handlers()
                ],
            },
            "guestOSInfo": {"computerName": "bench-vm", "osName": "ubuntu", "version": "2.14"},
        }
        _write(folder / "waagent_status.json", json.dumps(status), when)


def _gen_system(tree: Path) -> None:
    _write(
        tree / "etc/os-release",
        'PRETTY_NAME="Ubuntu 22.04.4 LTS"\nNAME="Ubuntu"\nVERSION_ID="22.04"\n'
        "ID=ubuntu\nID_LIKE=debian\n",
    )
    _write(
        tree / "etc/waagent.conf",
        "Provisioning.Agent=auto\nExtensions.Enabled=y\nAutoUpdate.Enabled=y\n"
        "Logs.Verbose=n\nOS.EnableFirewall=y\nResourceDisk.Format=n\n",
    )
    _write(
        tree / "lib/systemd/system/walinuxagent.service",
        "[Unit]\nDescription=Azure Linux Agent\nAfter=network-online.target cloud-init.service\n\n"
        "[Service]\nType=simple\nExecStart=/usr/bin/python3 -u /usr/sbin/waagent -daemon\n"
        "Restart=always\nRestartSec=5\nSlice=azure.slice\n\n[Install]\n"
        "WantedBy=multi-user.target\n",
    )
    _write(tree / "usr/sbin/waagent", "#!/usr/bin/python3\n# stand-in; never run\n")
    (tree / "usr/sbin/waagent").chmod(0o755)
    _write(tree / "var/lib/waagent/WireServerEndpoint", "168.63.129.16")
    _write(tree / "var/lib/waagent/GoalState.1.xml", "<xml>empty placeholder file</xml>")
    _write(
        tree / "var/lib/dhcp/dhclient.eth0.leases",
        (TEMPLATES / "dhcp" / "dhclient.leases").read_text(),
    )


def generate(tree: Path = TREE) -> float:
    """Build the tree unless the cached one is current; the seconds it took (0 if cached)."""
    stamp = tree / f".complete-v{VERSION}"
    if stamp.exists() and not os.environ.get("BENCH_REGENERATE"):
        return 0.0
    started = time.monotonic()
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    _gen_system(tree)
    _gen_handlers(tree)
    _gen_history(tree)
    _gen_extension_logs(tree)
    _gen_agent_logs(tree)
    stamp.write_text(NOW.isoformat())
    return time.monotonic() - started


# -- measurement --------------------------------------------------------------------------------
def _command(tree: Path) -> list[str]:
    exe = Path(sys.executable).parent / "waagent-doctor"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "waagent_doctor"]
    return [*base, "check", "--root", str(tree), "--json"]


def run_once(tree: Path) -> tuple[float, float, int, dict[str, object]]:
    """One `check` run: wall seconds, its own peak RSS in MiB (wait4), exit status, report."""
    with tempfile.TemporaryFile() as errors:
        started = time.monotonic()
        proc = subprocess.Popen(
            _command(tree), stdout=subprocess.PIPE, stderr=errors, stdin=subprocess.DEVNULL
        )
        out = proc.stdout.read() if proc.stdout is not None else b""
        if proc.stdout is not None:
            proc.stdout.close()
        _, wstatus, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(wstatus)
        errors.seek(0)
        err = errors.read()
    try:
        report = json.loads(out)
    except ValueError:
        report = {"error": err.decode(errors="replace")[-500:]}
    return wall, usage.ru_maxrss / 1024, proc.returncode, report


def _du(tree: Path) -> tuple[int, int]:
    """(apparent bytes, bytes on disk) of the tree."""
    apparent = on_disk = 0
    for dirpath, _dirs, files in os.walk(tree):
        for f in files:
            st = (Path(dirpath) / f).lstat()
            apparent += st.st_size
            on_disk += st.st_blocks * 512
    return apparent, on_disk


def main() -> int:
    """Generate (or reuse) the tree, run the check N times, print a table against the goals."""
    runs = int(os.environ.get("BENCH_RUNS", "5"))
    took = generate()
    apparent, on_disk = _du(TREE)
    out = sys.stdout
    out.write(
        f"tree: {TREE}\n  {apparent / GIB:.2f} GiB apparent, {on_disk / 1024**2:.0f} MiB on disk; "
        + (f"generated in {took:.1f} s\n" if took else "cached\n")
    )
    walls: list[float] = []
    peaks: list[float] = []
    last: dict[str, object] = {}
    status = 0
    for _ in range(runs):
        wall, peak, status, last = run_once(TREE)
        walls.append(wall)
        peaks.append(peak)
    if "error" in last:
        out.write(f"check failed (exit {status}): {last['error']}\n")
        return 1
    findings = last.get("findings")
    checks = last.get("checks")
    if not isinstance(findings, list) or not isinstance(checks, list):
        out.write(f"unexpected report: {str(last)[:300]}\n")
        return 1
    out.write(
        f"  report: status={last.get('status')} as_of={last.get('as_of')} exit={status} "
        f"findings={[f.get('code') for f in findings]}\n"
    )
    bad = [f"{c.get('name')}={c.get('status')}" for c in checks if c.get("status") == "error"]
    if bad:
        out.write(f"  checks in error: {', '.join(bad)}\n")
    # Wall time is judged on the median (the machine may be busy with other work); memory
    # does not depend on load, so its worst run is judged.
    worst_wall = max(walls)
    worst_peak = max(peaks)
    ok_wall = statistics.median(walls) < GOAL_SECONDS
    ok_peak = worst_peak < GOAL_MIB
    out.write(f"\n  {'measure':<22}{'min':>9}{'median':>9}{'max':>9}{'goal':>9}  result\n")
    out.write(
        f"  {'wall time (s)':<22}{min(walls):>9.3f}{statistics.median(walls):>9.3f}"
        f"{worst_wall:>9.3f}{'< ' + str(GOAL_SECONDS):>9}  {'ok' if ok_wall else 'MISSED'}\n"
    )
    out.write(
        f"  {'peak RSS (MiB)':<22}{min(peaks):>9.1f}{statistics.median(peaks):>9.1f}"
        f"{worst_peak:>9.1f}{'< ' + str(int(GOAL_MIB)):>9}  {'ok' if ok_peak else 'MISSED'}\n"
    )
    out.write(f"  ({runs} runs of: {' '.join(_command(TREE))})\n")
    return 0 if ok_wall and ok_peak else 1


if __name__ == "__main__":
    sys.exit(main())
