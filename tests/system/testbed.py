"""A real systemd + journald for tests: a Debian 12 root filesystem booted with systemd-nspawn.

Typical use (the ``testbed`` fixture in ``tests/system/conftest.py`` does this once per session)::

    rootfs = ensure_rootfs()                 # runs scripts/build-testbed-rootfs.sh (cached)
    with Testbed.start(rootfs) as tb:        # boots in well under a second
        tb.install_unit("demo.service", "[Service]\\nExecStart=/bin/sleep infinity\\n")
        tb.systemctl("start", "demo.service")
        assert tb.show("demo.service", "ActiveState") == {"ActiveState": "active"}
        tb.reset()                           # stop/remove what the test created

Inside the container the project tree is bind-mounted read-only at ``/src`` and a venv with the
project's runtime dependencies lives at ``/opt/wd-venv`` (``Testbed.python`` runs it with
``PYTHONPATH=/src/src``). The container has only a loopback interface (``--private-network``).

Everything runs as root on the host. A started container is stopped by ``stop()``, by the
context manager, at interpreter exit (atexit), and, if the Python process dies without running
any of those, by the kernel (``PR_SET_PDEATHSIG`` sends SIGTERM to systemd-nspawn, which powers
the container off). Start containers from the main thread: the death signal follows the thread
that started it.
"""

from __future__ import annotations

import atexit
import ctypes
import fcntl
import json
import os
import secrets
import shlex
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Callable, Optional, TypeVar, Union

__all__ = [
    "CONTAINER_PATH",
    "DEFAULT_ROOTFS",
    "PROJECT_ROOT",
    "SRC_MOUNT",
    "VENV_PYTHON",
    "CommandFailed",
    "Testbed",
    "TestbedError",
    "TestbedUnavailable",
    "default_rootfs",
    "ensure_rootfs",
    "unavailable_reason",
    "wait_for",
]

T = TypeVar("T")
StrPath = Union[str, "os.PathLike[str]"]
PropValue = Union[str, int, float, bool, Sequence[str]]

PROJECT_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = PROJECT_ROOT / "scripts" / "build-testbed-rootfs.sh"
DEFAULT_ROOTFS = Path("/var/cache/waagent-doctor/testbed-rootfs")
ROOTFS_ENV = "WAAGENT_DOCTOR_TESTBED_ROOTFS"
SRC_MOUNT = "/src"
VENV_PYTHON = "/opt/wd-venv/bin/python"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV: Mapping[str, str] = {
    "PATH": CONTAINER_PATH,
    "LANG": "C.UTF-8",
    "HOME": "/root",
    "TERM": "dumb",
    "SYSTEMD_PAGER": "",
    "SYSTEMD_COLORS": "0",
}
# Unit directories whose test-made additions reset() removes.
UNIT_DIRS = ("/run/systemd/system", "/etc/systemd/system")
STATE_DIR = Path("/run/waagent-doctor-testbed")
_PR_SET_PDEATHSIG = 1
_LOG_TAIL_LINES = 40


class TestbedError(RuntimeError):
    """The container could not be started or used."""

    __test__ = False  # "Test..." but not a test class


class TestbedUnavailable(TestbedError):
    """This machine cannot run the testbed at all (not root, tools missing, no rootfs)."""


class CommandFailed(subprocess.CalledProcessError):
    """A command inside the container exited non-zero; str() shows its output."""

    def __str__(self) -> str:
        """Render the command, its status and the tail of its output."""
        parts = [f"command {shlex.join(str(a) for a in self.cmd)} exited {self.returncode}"]
        for label, text in (("stdout", self.stdout), ("stderr", self.stderr)):
            if text:
                tail = "\n".join(str(text).rstrip().splitlines()[-20:])
                parts.append(f"--- {label} ---\n{tail}")
        return "\n".join(parts)


def default_rootfs() -> Path:
    """The root filesystem path: $WAAGENT_DOCTOR_TESTBED_ROOTFS or the cache default."""
    env = os.environ.get(ROOTFS_ENV)
    return Path(env) if env else DEFAULT_ROOTFS


def unavailable_reason() -> Optional[str]:
    """Why this machine cannot boot a testbed (ignoring the rootfs), or None if it can."""
    if os.geteuid() != 0:
        return "not root (systemd-nspawn needs root)"
    for tool, package in (("systemd-nspawn", "systemd-container"), ("nsenter", "util-linux")):
        if shutil.which(tool) is None:
            return f"{tool} not found (apt-get install -y {package})"
    return None


def ensure_rootfs(
    rootfs: Optional[StrPath] = None,
    *,
    script: StrPath = BUILD_SCRIPT,
    timeout: float = 1800.0,
    progress: Optional[Callable[[str], None]] = None,
) -> Path:
    """Build the rootfs with the build script unless its stamp is current; return its path."""
    path = Path(rootfs) if rootfs is not None else default_rootfs()
    env = dict(os.environ, **{ROOTFS_ENV: str(path)})
    check = subprocess.run(
        ["bash", str(script), "--check"], env=env, capture_output=True, text=True, check=False
    )
    if check.returncode == 0:
        return path
    if shutil.which("debootstrap") is None:
        raise TestbedUnavailable(
            f"testbed rootfs {path} is not built and debootstrap is not installed "
            "(apt-get install -y debootstrap systemd-container)"
        )
    if progress is not None:
        progress(f"building the testbed rootfs at {path} (debootstrap, about 1 minute)...")
    started = time.monotonic()
    try:
        build = subprocess.run(
            ["bash", str(script)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise TestbedUnavailable(f"testbed rootfs build timed out after {timeout:.0f} s") from exc
    if build.returncode != 0:
        tail = "\n".join(build.stderr.strip().splitlines()[-_LOG_TAIL_LINES:])
        raise TestbedUnavailable(f"testbed rootfs build failed (rc={build.returncode}):\n{tail}")
    if progress is not None:
        progress(f"built the testbed rootfs in {time.monotonic() - started:.0f} s")
    return path


def wait_for(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    *,
    interval: float = 0.05,
    what: Optional[str] = None,
    ignore: tuple[type[BaseException], ...] = (),
) -> T:
    """Call predicate until it returns a truthy value, and return it; TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            name = what or getattr(predicate, "__name__", repr(predicate))
            raise TimeoutError(f"{name}: not true after {timeout:g} s (last: {last!r})")
        time.sleep(interval)


# --- /proc helpers ----------------------------------------------------------------------------


def _proc_start_time(pid: int) -> Optional[int]:
    """The start time (clock ticks after boot) of pid, or None if it does not exist."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2 :].split()[19])


def _proc_comm(pid: int) -> Optional[str]:
    """The comm name of pid, or None if it does not exist."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    """The child pids of pid."""
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        pass
    kids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
            kids.append(int(entry.name))
    return kids


def _alive(pid: int, start_time: Optional[int]) -> bool:
    """Whether pid exists and is still the process that started at start_time."""
    now = _proc_start_time(pid)
    return now is not None and (start_time is None or now == start_time)


def _kill(pid: int, sig: int, start_time: Optional[int]) -> None:
    """Send sig to pid if it is still the same process."""
    if _alive(pid, start_time):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _set_pdeathsig() -> None:
    """In the child before exec: get SIGTERM when the parent thread dies."""
    _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


_LIBC = ctypes.CDLL(None, use_errno=True)


def reap_stale() -> list[str]:
    """Stop containers left by test processes that died; return their names."""
    reaped: list[str] = []
    if not STATE_DIR.is_dir():
        return reaped
    for state_file in STATE_DIR.glob("*.json"):
        try:
            state = json.loads(state_file.read_text())
            owner, owner_start = int(state["owner"]), state.get("owner_start")
            nspawn, nspawn_start = int(state["nspawn"]), state.get("nspawn_start")
        except (OSError, ValueError, KeyError, TypeError):
            state_file.unlink(missing_ok=True)
            continue
        if _alive(owner, owner_start):
            continue
        leader, leader_start = state.get("leader"), state.get("leader_start")
        _kill(nspawn, signal.SIGTERM, nspawn_start)
        deadline = time.monotonic() + 10
        while _alive(nspawn, nspawn_start) and time.monotonic() < deadline:
            time.sleep(0.1)
        if leader:
            _kill(leader, signal.SIGKILL, leader_start)
        _kill(nspawn, signal.SIGKILL, nspawn_start)
        workdir = state.get("workdir")
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        state_file.unlink(missing_ok=True)
        reaped.append(str(state.get("name")))
    return reaped


# --- the container ----------------------------------------------------------------------------


class Testbed:
    """A booted systemd-nspawn container with systemd as PID 1; see the module docstring."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, rootfs: Path, name: str, workdir: Path) -> None:
        """Prepare (but do not boot) a container; use Testbed.start() instead."""
        self.rootfs = rootfs
        self.name = name
        self.workdir = workdir
        self.log_path = workdir / "nspawn.log"
        self.leader = 0
        self.boot_seconds = 0.0
        self.boot_state = ""
        self._leader_start: Optional[int] = None
        self._proc: Optional[subprocess.Popen[bytes]] = None
        self._log: Optional[IO[bytes]] = None
        self._lock_fd: Optional[int] = None
        self._state_file = STATE_DIR / f"{name}.json"
        self._stopped = False
        self._counter = 0
        self._baseline_paths: set[str] = set()
        self._baseline_transient: set[str] = set()
        self._baseline_active: set[str] = set()
        # path -> original state, for write_file() undo in reset()
        self._undo: dict[str, Optional[tuple[str, str, bytes]]] = {}
        self._units_started: set[str] = set()

    # -- lifecycle --

    @classmethod
    def start(
        cls,
        rootfs: Optional[StrPath] = None,
        binds: Optional[Mapping[StrPath, str]] = None,
        *,
        ro_binds: Optional[Mapping[StrPath, str]] = None,
        src: Optional[StrPath] = PROJECT_ROOT,
        name: Optional[str] = None,
        boot_timeout: float = 60.0,
        extra_args: Sequence[str] = (),
    ) -> Testbed:
        """Boot rootfs (binds: host path -> container path, read-write; src at /src, read-only)."""
        problem = unavailable_reason()
        if problem:
            raise TestbedUnavailable(problem)
        root = Path(rootfs) if rootfs is not None else default_rootfs()
        if not (root / "lib" / "systemd" / "systemd").exists():
            raise TestbedUnavailable(f"no systemd in {root}: run {BUILD_SCRIPT}")
        reap_stale()
        name = name or f"wd-testbed-{os.getpid()}-{secrets.token_hex(3)}"
        workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        tb = cls(root, name, workdir)
        try:
            tb._lock_rootfs(boot_timeout + 300)
        except BaseException:
            tb.stop()
            raise
        args = [
            "systemd-nspawn", "-q", "-D", str(root), "-b",
            "--register=no", "--keep-unit", "-M", name,
            "--volatile=overlay", "--console=passive", "--private-network",
            "--link-journal=no", "--resolv-conf=off", "--timezone=off",
        ]  # fmt: skip
        all_binds: list[tuple[str, StrPath, str]] = []
        if src is not None:
            all_binds.append(("--bind-ro", src, SRC_MOUNT))
        all_binds += [("--bind-ro", h, c) for h, c in (ro_binds or {}).items()]
        all_binds += [("--bind", h, c) for h, c in (binds or {}).items()]
        for option, host, inside in all_binds:
            host_path = Path(host).resolve()
            if not host_path.exists():
                raise TestbedError(f"bind source does not exist: {host}")
            if ":" in str(host_path) or ":" in inside or not inside.startswith("/"):
                raise TestbedError(f"bad bind {host} -> {inside} (absolute, no ':')")
            args.append(f"{option}={host_path}:{inside}")
        args += list(extra_args)
        try:
            tb._boot(args, boot_timeout)
        except BaseException:
            tb.stop()
            raise
        return tb

    def _lock_rootfs(self, timeout: float) -> None:
        """Hold ROOTFS.lock shared while booted, so a rebuild cannot swap the tree under us.

        The build script replaces the tree only while holding the same lock exclusively.
        """
        lock_path = Path(f"{self.rootfs}.lock")
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            return  # read-only cache location: nobody can rebuild it under us either
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise TestbedError(
                        f"{lock_path} stayed locked for {timeout:g} s (a rootfs build running?)"
                    ) from None
                time.sleep(0.5)
        self._lock_fd = fd

    def _boot(self, args: list[str], boot_timeout: float) -> None:
        """Start systemd-nspawn and wait until systemd reports running/degraded."""
        env = dict(os.environ, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY="1")
        env.pop("NOTIFY_SOCKET", None)
        self._log = self.log_path.open("wb")
        started = time.monotonic()
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=_set_pdeathsig,  # only a prctl() call: safe between fork and exec
        )
        atexit.register(self.stop)
        nspawn_start = _proc_start_time(self._proc.pid)
        self._write_state(nspawn_start)
        deadline = started + boot_timeout
        state = "no leader yet"
        while True:
            if self._proc.poll() is not None:
                raise TestbedError(
                    f"systemd-nspawn exited with status {self._proc.returncode} while booting "
                    f"{self.rootfs}\n{self.log_tail()}"
                )
            if not self.leader:
                for kid in _children(self._proc.pid):
                    if _proc_comm(kid) == "systemd":
                        self.leader = kid
                        self._leader_start = _proc_start_time(kid)
                        self._write_state(nspawn_start)
                        state = "leader found"
            else:
                try:
                    rc, out, _ = self._exec(["systemctl", "is-system-running"], timeout=10)
                    state = out.decode(errors="replace").strip() or f"rc={rc}"
                except subprocess.TimeoutExpired:
                    state = "is-system-running timed out"
                if state in ("running", "degraded"):
                    break
            if time.monotonic() >= deadline:
                raise TestbedError(
                    f"container {self.name} not booted after {boot_timeout:g} s "
                    f"(last state: {state})\n{self.log_tail()}"
                )
            time.sleep(0.05)
        self.boot_seconds = time.monotonic() - started
        self.boot_state = state
        self._baseline_paths = set(self._list_unit_paths())
        self._baseline_transient = set(self._transient_units())
        self._baseline_active = set(self._active_units())

    def _write_state(self, nspawn_start: Optional[int]) -> None:
        """Record the container's pids so a later run can reap it if this process dies."""
        assert self._proc is not None
        state = {
            "name": self.name,
            "owner": os.getpid(),
            "owner_start": _proc_start_time(os.getpid()),
            "nspawn": self._proc.pid,
            "nspawn_start": nspawn_start,
            "leader": self.leader or None,
            "leader_start": self._leader_start,
            "workdir": str(self.workdir),
        }
        STATE_DIR.mkdir(mode=0o700, exist_ok=True)
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self._state_file)

    @property
    def is_running(self) -> bool:
        """Whether the container's systemd-nspawn process is still alive."""
        return self._proc is not None and self._proc.poll() is None and not self._stopped

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last lines of systemd-nspawn's own output (console and errors)."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no nspawn log)"
        tail = text.rstrip().splitlines()[-lines:]
        return "--- systemd-nspawn log (tail) ---\n" + ("\n".join(tail) or "(empty)")

    def stop(self, timeout: float = 30.0) -> None:
        """Power the container off (SIGTERM to nspawn, SIGKILL fallback); idempotent."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            if proc.poll() is None or _alive(self.leader, self._leader_start):
                # Killing the container's PID 1 kills its whole PID namespace.
                if self.leader:
                    _kill(self.leader, signal.SIGKILL, self._leader_start)
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    pass
        if self._log is not None:
            self._log.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the shared lock on the rootfs
            self._lock_fd = None
        self._state_file.unlink(missing_ok=True)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Testbed:
        """Return self; the container is already booted."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Stop the container."""
        self.stop()

    def __repr__(self) -> str:
        """Name, leader pid and whether it runs."""
        return f"<Testbed {self.name} leader={self.leader} running={self.is_running}>"

    # -- running commands --

    def _argv(
        self, cmd: Sequence[str], env: Optional[Mapping[str, str]], cwd: Optional[str]
    ) -> list[str]:
        """The host argv that runs cmd inside the container with a clean environment."""
        merged = dict(BASE_ENV)
        merged.update(env or {})
        argv = ["nsenter", "-t", str(self.leader), "-a", "env", "-i"]
        if cwd is not None:
            argv += ["-C", cwd]
        argv.append("--")
        argv += [f"{k}={v}" for k, v in merged.items()]
        argv += [str(c) for c in cmd]
        return argv

    def _exec(
        self,
        cmd: Sequence[str],
        *,
        input: Optional[bytes] = None,
        timeout: Optional[float] = 60.0,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
    ) -> tuple[int, bytes, bytes]:
        """Run cmd inside; on timeout kill its whole process group and re-raise."""
        if not self.leader or self._stopped or self._proc is None or self._proc.poll() is not None:
            raise TestbedError(f"container {self.name} is not running\n{self.log_tail()}")
        proc = subprocess.Popen(
            self._argv(cmd, env, cwd),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            out, err = proc.communicate(input, timeout=timeout)
        except BaseException as exc:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                out, err = b"", b""
            if isinstance(exc, subprocess.TimeoutExpired):
                raise subprocess.TimeoutExpired(list(cmd), exc.timeout, out, err) from None
            raise
        return proc.returncode, out, err

    def run(
        self,
        cmd: Sequence[str],
        *,
        check: bool = True,
        timeout: Optional[float] = 60.0,
        input: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[str] = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run cmd inside the container (nsenter, env -i); CommandFailed if check and rc != 0."""
        rc, out, err = self._exec(
            cmd,
            input=input.encode() if input is not None else None,
            timeout=timeout,
            env=env,
            cwd=cwd,
        )
        result = subprocess.CompletedProcess(
            list(cmd), rc, out.decode(errors="replace"), err.decode(errors="replace")
        )
        if check and rc != 0:
            raise CommandFailed(rc, list(cmd), result.stdout, result.stderr)
        return result

    def sh(self, script: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        """Run a shell script inside with /bin/sh -ec (keyword arguments as for run())."""
        return self.run(["/bin/sh", "-ec", script], **kwargs)

    def python(
        self, *args: str, env: Optional[Mapping[str, str]] = None, **kwargs: Any
    ) -> subprocess.CompletedProcess[str]:
        """Run the venv's python inside with PYTHONPATH=/src/src (the project importable)."""
        merged = {"PYTHONPATH": f"{SRC_MOUNT}/src", "PYTHONDONTWRITEBYTECODE": "1"}
        merged.update(env or {})
        return self.run([VENV_PYTHON, *args], env=merged, **kwargs)

    def run_unit(
        self,
        cmd: Sequence[str],
        *,
        unit: Optional[str] = None,
        check: bool = True,
        timeout: Optional[float] = 60.0,
        input: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        **props: PropValue,
    ) -> subprocess.CompletedProcess[str]:
        """Run cmd as a transient service (systemd-run --wait --pipe); props become -p K=V."""
        if unit is None:
            self._counter += 1
            unit = f"wd-test-run-{self._counter}-{secrets.token_hex(2)}.service"
        argv = [
            "systemd-run", "--quiet", "--wait", "--pipe", "--collect",
            "--service-type=exec", f"--unit={unit}",
        ]  # fmt: skip
        for key, value in props.items():
            values = [value] if isinstance(value, (str, int, float, bool)) else list(value)
            for v in values:
                text = ("yes" if v else "no") if isinstance(v, bool) else str(v)
                argv.append(f"--property={key}={text}")
        for key, val in (env or {}).items():
            argv.append(f"--setenv={key}={val}")
        argv.append("--")
        argv += list(cmd)
        self._units_started.add(unit if "." in unit else f"{unit}.service")
        try:
            return self.run(argv, check=check, timeout=timeout, input=input)
        except subprocess.TimeoutExpired:
            self.run(["systemctl", "kill", "--signal=SIGKILL", unit], check=False, timeout=10)
            self.run(["systemctl", "stop", unit], check=False, timeout=10)
            raise

    def systemctl(
        self, *args: str, check: bool = True, timeout: Optional[float] = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run systemctl inside the container."""
        return self.run(["systemctl", "--no-pager", *args], check=check, timeout=timeout)

    def daemon_reload(self) -> None:
        """systemctl daemon-reload."""
        self.systemctl("daemon-reload")

    def show(self, unit: str, *props: str) -> dict[str, str]:
        """Properties of unit from `systemctl show` (all of them when props is empty)."""
        args = ["show"]
        if props:
            args.append("--property=" + ",".join(props))
        out = self.systemctl(*args, "--", unit).stdout
        return _parse_show(out)

    def prop(self, unit: str, name: str) -> str:
        """One property of unit."""
        return self.show(unit, name).get(name, "")

    def main_pid(self, unit: str) -> int:
        """The unit's MainPID (0 when not running), as seen inside the container."""
        return int(self.prop(unit, "MainPID") or 0)

    # -- journal --

    def journal(
        self,
        *match: str,
        since_cursor: Optional[str] = None,
        unit: Optional[str] = None,
        sync: bool = True,
        timeout: Optional[float] = 60.0,
    ) -> list[dict[str, Any]]:
        """Journal entries as dicts (journalctl -o json), oldest first; match is FIELD=VALUE."""
        if sync:
            # Make journald write out what it has received, so recent entries are visible.
            self.run(["journalctl", "--sync"], check=False, timeout=timeout)
        argv = ["journalctl", "--no-pager", "-o", "json", "--all"]
        if since_cursor:
            # Not --after-cursor: with a match that the cursor's own entry does not satisfy,
            # systemd 252 skips the first matching entry after it. --cursor is inclusive,
            # so drop the cursor's entry ourselves.
            argv.append(f"--cursor={since_cursor}")
        if unit:
            argv.append(f"--unit={unit}")
        argv += list(match)
        result = self.run(argv, check=False, timeout=timeout)
        entries = []
        for line in result.stdout.splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if not since_cursor or entry.get("__CURSOR") != since_cursor:
                    entries.append(entry)
        if result.returncode != 0 and not entries and "No entries" not in result.stdout:
            raise CommandFailed(result.returncode, argv, result.stdout, result.stderr)
        return entries

    def cursor(self) -> str:
        """The journal's current tail cursor, for journal(since_cursor=...)."""
        self.run(["journalctl", "--sync"], check=False)
        out = self.run(["journalctl", "-n", "1", "-o", "json", "--all"]).stdout.strip()
        return str(json.loads(out.splitlines()[-1])["__CURSOR"]) if out else ""

    # -- files --

    def write_file(self, path: str, text: Union[str, bytes], mode: int = 0o644) -> None:
        """Write a file inside the container (parents created; replaced atomically)."""
        if not path.startswith("/"):
            raise ValueError(f"container path must be absolute: {path}")
        if path not in self._undo:
            self._undo[path] = self._snapshot(path)
        data = text.encode() if isinstance(text, str) else text
        # Prints the topmost directory it had to create, so reset() can remove it again.
        script = (
            'if [ -d "$1" ] && [ ! -L "$1" ]; then echo "$1: is a directory" >&2; exit 1; fi; '
            'd=$(dirname "$1"); top=; while [ ! -e "$d" ]; do top=$d; d=$(dirname "$d"); done; '
            'mkdir -p "$(dirname "$1")"; t=$(mktemp "$1.XXXXXX"); '
            'cat >"$t"; chmod "$2" "$t"; mv -f "$t" "$1"; echo "$top"'
        )
        rc, out, err = self._exec(["/bin/sh", "-ec", script, "sh", path, f"{mode:o}"], input=data)
        if rc != 0:
            raise CommandFailed(rc, ["write_file", path], out.decode(), err.decode())
        created = out.decode().strip()
        if created and created not in self._undo:
            self._undo[created] = None

    def read_file(self, path: str) -> str:
        """The text of a file inside the container (FileNotFoundError if absent)."""
        return self.read_bytes(path).decode(errors="replace")

    def read_bytes(self, path: str) -> bytes:
        """The bytes of a file inside the container (FileNotFoundError if absent)."""
        rc, out, err = self._exec(["/bin/sh", "-c", 'test -f "$1" && exec cat "$1"', "sh", path])
        if rc != 0:
            raise FileNotFoundError(f"{path} (in container {self.name}): {err.decode().strip()}")
        return out

    def exists(self, path: str) -> bool:
        """Whether path exists inside the container."""
        return self._exec(["test", "-e", path])[0] == 0

    def remove(self, path: str) -> None:
        """Remove a file or tree inside the container (no error if absent)."""
        if path not in self._undo:
            self._undo[path] = self._snapshot(path)
        self.run(["rm", "-rf", "--", path])

    def _snapshot(self, path: str) -> Optional[tuple[str, str, bytes]]:
        """What is at path: None (nothing), ("link", target, _), ("file", mode, content), other."""
        script = (
            'if [ -L "$1" ]; then echo link; readlink "$1"; '
            'elif [ -f "$1" ]; then echo file; stat -c %a "$1"; cat "$1"; '
            'elif [ -e "$1" ]; then echo other; else echo none; fi'
        )
        rc, out, err = self._exec(["/bin/sh", "-ec", script, "sh", path])
        if rc != 0:
            raise CommandFailed(rc, ["snapshot", path], out.decode(), err.decode())
        kind, _, rest = out.partition(b"\n")
        if kind == b"link":
            return ("link", rest.decode().rstrip("\n"), b"")
        if kind == b"file":
            mode, _, content = rest.partition(b"\n")
            return ("file", mode.decode(), content)
        if kind == b"other":
            return ("other", "", b"")  # a directory or device: reset() leaves it alone
        return None

    def _restore(self, path: str, snap: Optional[tuple[str, str, bytes]]) -> None:
        """Put path back as _snapshot() saw it."""
        if snap is None:
            self.run(["rm", "-rf", "--", path])
        elif snap[0] == "link":
            self.run(["ln", "-sfn", "--", snap[1], path])
        elif snap[0] == "file":
            self.write_file(path, snap[2], int(snap[1], 8))

    # -- units --

    def install_unit(self, name: str, text: str, *, reload: bool = True) -> str:
        """Write /run/systemd/system/NAME (removed again by reset()); return its path."""
        path = f"/run/systemd/system/{name}"
        self.write_file(path, text)
        if reload:
            self.daemon_reload()
        return path

    def install_dropin(
        self, unit: str, text: str, *, name: str = "50-test.conf", reload: bool = True
    ) -> str:
        """Write a drop-in /run/systemd/system/UNIT.d/NAME (removed by reset()); return path."""
        path = f"/run/systemd/system/{unit}.d/{name}"
        self.write_file(path, text)
        if reload:
            self.daemon_reload()
        return path

    def _list_unit_paths(self) -> list[str]:
        """Every path below the unit directories that reset() watches."""
        out = self.run(["find", *UNIT_DIRS, "-mindepth", "1"], check=False).stdout
        return [line for line in out.splitlines() if line]

    def _transient_units(self) -> list[str]:
        """Names of the loaded transient units."""
        out = self.run(["ls", "-1", "/run/systemd/transient"], check=False).stdout
        return [line for line in out.splitlines() if line]

    def _active_units(self) -> list[str]:
        """Names of the units that are active now."""
        out = self.systemctl(
            "list-units", "--state=active", "--all", "--plain", "--no-legend", "--full",
            check=False,
        ).stdout  # fmt: skip
        return [line.split()[0] for line in out.splitlines() if line.strip()]

    def reset(self, timeout: float = 30.0) -> list[str]:
        """Undo what tests did to units and files; return the units stopped or restarted.

        Stops units that tests added (files new in /run/systemd/system or /etc/systemd/system,
        units started with run_unit(), new transient units) and removes those files; restores
        every path changed through write_file()/remove(); daemon-reload; reset-failed; and
        restarts units that were active at boot and were touched, so they run their own
        configuration again.
        """
        now = self._list_unit_paths()
        new_paths = [p for p in now if p not in self._baseline_paths]
        touched = sorted(set(new_paths) | set(self._undo))
        names = set(self._units_started)
        names.update(t for t in self._transient_units() if t not in self._baseline_transient)
        for path in touched:
            name = _unit_name_for(path)
            if name:
                names.add(name)
        # Loaded instances of templates the test added or changed.
        patterns = [n.replace("@.", "@*.", 1) for n in names if "@." in n]
        if patterns:
            out = self.systemctl(
                "list-units", "--all", "--plain", "--no-legend", "--full", "--", *patterns,
                check=False,
            ).stdout  # fmt: skip
            names.update(line.split()[0] for line in out.splitlines() if line.strip())
        units = sorted(n for n in names if _is_unit_name(n))
        if not (units or new_paths or self._undo):
            return []
        to_restart = [u for u in units if u in self._baseline_active]
        to_stop = [u for u in units if u not in self._baseline_active]
        if to_stop:
            try:
                self.systemctl("stop", "--", *to_stop, check=False, timeout=timeout)
            except subprocess.TimeoutExpired:
                self.systemctl("kill", "--signal=SIGKILL", "--", *to_stop, check=False)
        # Remove new entries (their topmost new ancestor only), then restore edited files.
        new_set = set(new_paths)
        doomed = [p for p in new_paths if os.path.dirname(p) not in new_set]
        if doomed:
            self.run(["rm", "-rf", "--", *doomed])
        undo = dict(self._undo)
        for path in sorted(undo, reverse=True):
            if undo[path] is None and path in new_set:
                continue
            self._restore(path, undo[path])
        self._undo.clear()
        self._units_started.clear()
        if doomed or undo:
            self.daemon_reload()
        self.systemctl("reset-failed", check=False)
        if to_restart:
            self.systemctl("restart", "--", *to_restart, check=False, timeout=timeout)
        # systemd unloads stopped transient units asynchronously; wait, so that the next test
        # can reuse a unit name (systemd-run --unit=X) without "already loaded".
        try:
            wait_for(
                lambda: not set(self._transient_units()) - self._baseline_transient,
                5.0,
                what="test transient units unloaded",
            )
        except TimeoutError:
            leftovers = set(self._transient_units()) - self._baseline_transient
            self.systemctl("stop", "--", *sorted(leftovers), check=False, timeout=timeout)
            self.systemctl("reset-failed", check=False)
        return units


_UNIT_SUFFIXES = (
    ".service", ".socket", ".target", ".timer", ".path", ".mount", ".automount",
    ".swap", ".slice", ".scope", ".device",
)  # fmt: skip


def _is_unit_name(name: str) -> bool:
    """Whether name looks like a unit name systemctl accepts."""
    return bool(name) and not name.startswith("-") and name.endswith(_UNIT_SUFFIXES)


def _unit_name_for(path: str) -> Optional[str]:
    """The unit a path below a unit directory configures (or None)."""
    parent, base = os.path.split(path)
    pbase = os.path.basename(parent)
    in_unit_dir = parent.endswith("/systemd/system")
    if pbase.endswith(".d") and os.path.dirname(parent).endswith("/systemd/system"):
        return pbase[: -len(".d")]
    if pbase.endswith((".wants", ".requires", ".upholds")) or in_unit_dir:
        return base[: -len(".d")] if base.endswith(".d") else base
    return None


def _parse_show(text: str) -> dict[str, str]:
    """Parse `systemctl show` KEY=VALUE lines."""
    props = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            props[key] = value
    return props
