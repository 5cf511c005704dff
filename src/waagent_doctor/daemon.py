"""`waagent-doctor run`: diagnose every interval, announce changes, heal within policy.

One thread. The main loop waits on a selector for three things at once: the interval timer,
a self-pipe written by signal handlers (SIGTERM stops, SIGHUP reloads), and a pidfd on the
agent's MainPID, so the agent's death is noticed at once, not at the next interval.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import FrameType
from typing import Callable, Optional

import structlog

from waagent_doctor import __version__, actions, policy, transitions
from waagent_doctor import config as configmod
from waagent_doctor import logging as doctor_logging
from waagent_doctor import state as statemod
from waagent_doctor.actions import ActionEnv, DaemonPaths, Outcome
from waagent_doctor.actions import verbose_logging as verbose_action
from waagent_doctor.codes import (
    MESSAGE_ID_CONFIG_REJECTED,
    MESSAGE_ID_STARTED,
    MESSAGE_ID_VERBOSE_REVERTED,
)
from waagent_doctor.config import ConfigError, Settings
from waagent_doctor.engine import diagnose
from waagent_doctor.host import Host
from waagent_doctor.model import Finding, Report
from waagent_doctor.notify import Notifier
from waagent_doctor.paths import (
    AGENT_LOG,
    DISABLE_AGENT,
    DOCTOR_CONFIG,
    WAAGENT_CONF,
    InputError,
    Root,
)
from waagent_doctor.probes import logscan, waagent_conf
from waagent_doctor.probes import systemd as sd
from waagent_doctor.reporters import journal
from waagent_doctor.reporters import metrics as metrics_reporter
from waagent_doctor.snapshot import Snapshot
from waagent_doctor.state import ActionRecord, RestartSampleRecord

log = structlog.get_logger("waagent_doctor.daemon")

# After the agent's process exits, give systemd this long to notice before looking.
DEATH_SETTLE_SECONDS = 0.5
MAX_RESTART_SAMPLES = 500


class _Interrupted(BaseException):
    """Raised by the SIGTERM handler while the cycle is only observing (safe to abandon)."""


# -- the agent log, read incrementally -----------------------------------------------------------
class LogFollower:
    """The look-back window of the agent log, kept in memory and extended with new records.

    The first cycle reads the window (logscan.read_window); later cycles read only what was
    appended (logscan.read_new with a cursor) and drop records that left the window.
    """

    def __init__(self) -> None:
        self.records: deque[logscan.LogRecord] = deque()
        self.cursor: Optional[logscan.LogCursor] = None
        self.files: tuple[logscan.LogFile, ...] = ()
        self._text = 0
        self._seen: Optional[tuple[int, int]] = None  # (inode, newest offset) of the first read

    def window(self, root: Root, start: datetime, end: datetime) -> logscan.LogWindow:
        """The window [start, end] of agent records."""
        if self.cursor is None:
            cursor = logscan.cursor_at_end(root)
            win = logscan.read_window(root, start, end)
            self.records = deque(win.records)
            self._text = sum(len(r.message) for r in self.records)
            self.files = win.files
            self.cursor = cursor
            mine = [r.offset for r in win.records if r.path == AGENT_LOG]
            self._seen = (cursor.inode, max(mine)) if mine and cursor.inode else None
            return win
        errors: tuple[InputError, ...] = ()
        try:
            new, cursor = logscan.read_new(root, self.cursor)
        except InputError as exc:
            new, cursor, errors = (), self.cursor, (exc,)
        seen, self._seen = self._seen, None
        for rec in new:
            if (
                seen is not None
                and rec.path == AGENT_LOG
                and self.cursor.inode == seen[0]
                and rec.offset <= seen[1]
            ):
                continue  # already in the window read at start
            self.records.append(rec)
            self._text += len(rec.message)
        self.cursor = cursor
        truncated = False
        while self.records and (
            self.records[0].when < start
            or len(self.records) > logscan.MAX_RECORDS
            or self._text > logscan.MAX_TEXT
        ):
            old = self.records.popleft()
            self._text -= len(old.message)
            truncated = truncated or old.when >= start
        return logscan.LogWindow(
            start=start,
            end=end,
            records=tuple(self.records),
            files=self.files,
            errors=errors,
            present=root.exists(AGENT_LOG),
            truncated=truncated,
        )


# -- one cycle -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CycleResult:
    """What one cycle saw and did."""

    report: Report
    raised: tuple[str, ...]
    cleared: tuple[str, ...]
    applied: tuple[str, ...]
    main_pid: int
    duration: float


def _summary(report: Report, dry_run: bool, applied: tuple[str, ...]) -> str:
    """The STATUS= line: worst status, open codes, what was done."""
    codes = [f.code for f in report.findings]
    text = f"{report.status}: " + (
        f"{len(codes)} finding(s): {', '.join(codes[:4])}{' ...' if len(codes) > 4 else ''}"
        if codes
        else "no findings"
    )
    if applied:
        text += f"; applied {', '.join(applied)}"
    if dry_run:
        text += " (dry run)"
    return text


class Daemon:
    """The long-running service."""

    def __init__(
        self,
        settings: Settings,
        *,
        config_path: Optional[str] = None,
        dry_run: bool = False,
        paths: Optional[DaemonPaths] = None,
        notifier: Optional[Notifier] = None,
        host_factory: Callable[[], Host] = Host.live_host,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.dry_run_flag = dry_run
        self.paths = paths or DaemonPaths()
        self.notifier = notifier or Notifier()
        self.host_factory = host_factory
        self.state = statemod.load(self.paths.state)
        self.follower = LogFollower()
        self._stop = False
        self._reload = False
        self._interruptible = False
        self._last_ping = 0.0

    # -- signals --------------------------------------------------------------------------------
    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if signum == signal.SIGHUP:
            self._reload = True
            return
        self._stop = True
        if self._interruptible:
            self._interruptible = False
            raise _Interrupted

    @property
    def dry_run(self) -> bool:
        """Observe and report only: the flag or the configuration says so."""
        return self.dry_run_flag or self.settings.dry_run

    @property
    def stopping(self) -> bool:
        """A stop was requested."""
        return self._stop

    # -- watchdog-friendly waiting --------------------------------------------------------------
    def ping(self) -> None:
        """WATCHDOG=1 (main thread only), at most every quarter of WatchdogSec."""
        wd = self.notifier.watchdog_seconds
        now = time.monotonic()
        if wd is not None and now - self._last_ping >= wd / 4:
            self.notifier.watchdog()
            self._last_ping = now

    def wait(self, seconds: float) -> bool:
        """Sleep inside an action, feeding the watchdog; False when the daemon must stop."""
        end = time.monotonic() + seconds
        self.ping()
        while not self._stop:
            left = end - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, 0.1))
            self.ping()
        return False

    def persist(self) -> None:
        """Save the state now."""
        statemod.save(self.paths.state, self.state)

    # -- one cycle ------------------------------------------------------------------------------
    def _unit_name(self, host: Host) -> str:
        return sd.agent_unit_name(host, self.settings)

    def _restart_history(self, unit: Optional[sd.UnitState], now: float) -> sd.RestartHistory:
        """Samples of NRestarts kept across cycles (and restarts), with the current one."""
        samples = list(self.state.restart_samples)
        if unit is not None and unit.n_restarts is not None:
            ie = unit.inactive_exit.timestamp() if unit.inactive_exit else None
            if not samples or samples[-1].n_restarts != unit.n_restarts:
                samples.append(
                    RestartSampleRecord(at=now, n_restarts=unit.n_restarts, inactive_exit=ie)
                )
            window = self.settings.thresholds.crash_loop_window_minutes * 60.0
            inside = [s for s in samples if now - s.at <= window]
            before = [s for s in samples if now - s.at > window][-1:]
            samples = (before + inside)[-MAX_RESTART_SAMPLES:]
            self.state.restart_samples = samples
            current = [*samples]
            if current[-1].at != now:
                current.append(
                    RestartSampleRecord(at=now, n_restarts=unit.n_restarts, inactive_exit=ie)
                )
        else:
            current = samples

        def when(t: float) -> datetime:
            return datetime.fromtimestamp(t, timezone.utc)

        return sd.RestartHistory(
            tuple(
                sd.RestartSample(
                    when(s.at), s.n_restarts, when(s.inactive_exit) if s.inactive_exit else None
                )
                for s in current
            )
        )

    def _observe(self, host: Host, now: float) -> tuple[Snapshot, Optional[sd.UnitState]]:
        snap = Snapshot(host, self.settings)
        unit: Optional[sd.UnitState]
        try:
            unit = snap.get(sd.probe)
        except Exception:  # noqa: BLE001 - the checks report the probe's failure themselves
            unit = None
        snap.prime(sd.restart_history, self._restart_history(unit, now))
        start = host.as_of - timedelta(hours=self.settings.thresholds.lookback_hours)
        snap.prime(logscan.probe, self.follower.window(host.root, start, host.as_of))
        if self.follower.cursor is not None:
            self.state.log_cursors = {AGENT_LOG: self.follower.cursor.as_dict()}
        return snap, unit

    def _facts(
        self, host: Host, snap: Snapshot, unit: Optional[sd.UnitState], report: Report
    ) -> policy.Facts:
        try:
            verbose_on = snap.get(waagent_conf.probe).switch(verbose_action.KEY) is True
        except Exception:  # noqa: BLE001 - unreadable conf: the check says so
            verbose_on = False
        return policy.Facts(
            now=host.as_of.timestamp(),
            unit=unit,
            disable_agent=host.root.exists(DISABLE_AGENT),
            not_azure=any(f.code == "host.not_azure" for f in report.findings),
            verbose_on=verbose_on,
            dry_run=self.dry_run,
        )

    def _plan(self, findings: tuple[Finding, ...]) -> list[tuple[str, str]]:
        """(action, code) pairs, worst finding first, each action once per cycle."""
        plan: list[tuple[str, str]] = []
        seen: set[str] = set()
        for f in findings:
            wanted = list(f.actions)
            if "restart_agent" in wanted and "restart_agent" in self.state.gave_up:
                wanted += list(policy.ESCALATION)
            for name in wanted:
                if name not in seen:
                    seen.add(name)
                    plan.append((name, f.code))
        return plan

    def _record(
        self, action: str, result: statemod.ActionResult, code: str, reason: str, now: float
    ) -> None:
        self.state.record(
            ActionRecord(action=action, result=result, at=now, code=code, reason=reason)
        )

    def _act(
        self, host: Host, snap: Snapshot, unit: Optional[sd.UnitState], report: Report
    ) -> tuple[str, ...]:
        applied: list[str] = []
        plan = self._plan(report.findings)
        unit_name = unit.unit if unit is not None else self._unit_name(host)
        i = 0
        while i < len(plan) and not self._stop:
            action, code = plan[i]
            i += 1
            facts = self._facts(host, snap, unit, report)
            decision = policy.decide(action, self.settings, self.state, facts)
            note_key = f"{action}/{code}"
            if decision.gave_up:
                if action not in self.state.gave_up:
                    self.state.gave_up = {**self.state.gave_up, action: facts.now}
                    self._record(action, "skipped", code, decision.reason, facts.now)
                    journal.action("action.skipped", action, code, decision.reason, gave_up=True)
                    for extra in policy.ESCALATION:
                        if all(a != extra for a, _ in plan):
                            plan.append((extra, code))
                continue
            if not decision.allow:
                if decision.announce and self.state.skip_notes.get(note_key) != decision.reason:
                    self.state.skip_notes = {**self.state.skip_notes, note_key: decision.reason}
                    self._record(action, "skipped", code, decision.reason, facts.now)
                    journal.action(
                        "action.skipped", action, code, decision.reason, dry_run=facts.dry_run
                    )
                elif not decision.announce:
                    log.debug("action.waiting", action=action, code=code, reason=decision.reason)
                continue
            outcome = self._apply(action, self._env(host, unit_name, code, report))
            if self.stopping and not outcome.ok:
                outcome = Outcome(False, outcome.detail + " (cut short: the doctor is stopping)")
            result: statemod.ActionResult = "applied" if outcome.ok else "failed"
            self._record(action, result, code, outcome.detail, facts.now)
            self.state.skip_notes = {
                k: v for k, v in self.state.skip_notes.items() if k != note_key
            }
            if outcome.bundle is not None:
                self.state.last_bundle = outcome.bundle
            journal.action(f"action.{result}", action, code, outcome.detail)
            if outcome.ok:
                applied.append(action)
            self.persist()
            self.ping()
            if action in policy.TOUCHES_AGENT:
                unit = restart_unit_state(host, unit_name) or unit
        return tuple(applied)

    def _env(self, host: Host, unit: str, code: str, report: Optional[Report] = None) -> ActionEnv:
        """What an action gets: this host and configuration, the daemon's wait and persist."""
        return ActionEnv(
            host=host,
            settings=self.settings,
            unit=unit,
            paths=self.paths,
            state=self.state,
            code=code,
            report=report,
            wait=self.wait,
            persist=self.persist,
        )

    def _apply(self, action: str, env: ActionEnv) -> Outcome:
        try:
            return actions.get(action)(env)
        except actions.Stopping:
            return Outcome(False, "interrupted: the doctor is stopping")
        except Exception as exc:
            log.exception("action.crashed", action=action)
            return Outcome(False, f"internal error: {type(exc).__name__}: {exc}")

    def _tidy(self, host: Host) -> None:
        """Forget give-ups nobody needs; revert verbose logging when due or healthy."""
        wanted = self._tidy_gave_up()
        codes = set(self.state.open_findings)
        self.state.skip_notes = {
            k: v for k, v in self.state.skip_notes.items() if k.partition("/")[2] in codes
        }
        record = self.state.verbose_logging
        if record is None or record.phase != "applied" or self.dry_run:
            return
        now = host.as_of.timestamp()
        wants = "enable_verbose_logging" in wanted or "restart_agent" in self.state.gave_up
        if now < record.revert_after and wants:
            return
        why = "its period ended" if now >= record.revert_after else "the agent is healthy again"
        env = self._env(host, self._unit_name(host), record.code)
        try:
            what = verbose_action.revert_and_apply(env, record)
        except verbose_action.EditError as exc:
            journal.doctor_event(
                "verbose_logging.revert_failed",
                f"Could not revert Logs.Verbose in {record.path}: {exc}",
                message_id=MESSAGE_ID_VERBOSE_REVERTED,
                priority=3,
                WAAGENT_DOCTOR_ACTION="enable_verbose_logging",
            )
            return
        self.state.verbose_logging = None
        journal.doctor_event(
            "verbose_logging.reverted",
            f"Verbose agent logging off ({why}): {what}",
            message_id=MESSAGE_ID_VERBOSE_REVERTED,
            priority=5,
            WAAGENT_DOCTOR_ACTION="enable_verbose_logging",
            WAAGENT_DOCTOR_CODE=record.code or None,
        )

    def cycle(self) -> CycleResult:
        """Observe, diagnose, announce, act, remember."""
        t0 = time.monotonic()
        host = self.host_factory()
        now = host.as_of.timestamp()
        self._interruptible = True
        try:
            snap, unit = self._observe(host, now)
            report = diagnose(host, self.settings, snapshot=snap)
        finally:
            self._interruptible = False
        if self._stop:
            raise _Interrupted
        diff = transitions.diff(self.state.open_findings, report, now)
        for f in diff.raised:
            journal.finding_raised(f)
        for o in diff.cleared:
            journal.finding_cleared(o)
        self.state.open_findings = diff.open_after
        self._tidy_gave_up()
        applied = self._act(host, snap, unit, report)
        self._tidy(host)
        duration = time.monotonic() - t0
        self.state.last_cycle = statemod.CycleRecord(
            at=time.time(),
            duration=duration,
            status=report.status,
            findings=len(report.findings),
            dry_run=self.dry_run,
        )
        self.persist()
        if self.settings.metrics.textfile:
            try:
                metrics_reporter.write(self.settings.metrics.textfile, self.state)
            except OSError as exc:
                log.warning(
                    "metrics.unwritable", path=self.settings.metrics.textfile, error=str(exc)
                )
        pid = unit.main_pid if unit is not None else 0
        if applied:
            fresh = restart_unit_state(host, self._unit_name(host))
            pid = fresh.main_pid if fresh is not None else 0
        return CycleResult(
            report=report,
            raised=tuple(f.code for f in diff.raised),
            cleared=tuple(o.code for o in diff.cleared),
            applied=applied,
            main_pid=pid,
            duration=duration,
        )

    def _tidy_gave_up(self) -> set[str]:
        """Forget give-ups of actions no open finding wants; the actions wanted."""
        wanted = {a for o in self.state.open_findings.values() for a in o.actions}
        self.state.gave_up = {a: t for a, t in self.state.gave_up.items() if a in wanted}
        return wanted

    # -- configuration --------------------------------------------------------------------------
    def reload(self) -> None:
        """SIGHUP: load the configuration again; an invalid one is refused, the old one kept."""
        self._reload = False
        self.notifier.reloading()
        try:
            new = configmod.load(self.config_path)
        except ConfigError as exc:
            journal.doctor_event(
                "config.rejected",
                f"New configuration refused, the previous one stays in force: {exc}",
                message_id=MESSAGE_ID_CONFIG_REJECTED,
                priority=3,
                WAAGENT_DOCTOR_REASON=str(exc),
            )
        else:
            self.settings = new
            log.info("config.reloaded", path=self.config_path or DOCTOR_CONFIG)
        self.notifier.send("READY=1")

    # -- start-up and the loop ------------------------------------------------------------------
    def _start(self) -> None:
        host = self.host_factory()
        record = self.state.verbose_logging
        if record is not None and record.phase == "pending":
            self.state.verbose_logging = verbose_action.reconcile(host.root, record)
        for stale in Path(self.paths.state).parent.glob(f".{Path(self.paths.state).name}.*.tmp"):
            with contextlib.suppress(OSError):
                stale.unlink()
        with contextlib.suppress(OSError, InputError):
            conf = host.root.path(WAAGENT_CONF)
            for stale in conf.parent.glob(f".{conf.name}.*.tmp"):
                stale.unlink()
        journal.doctor_event(
            "doctor.started",
            f"waagent-doctor {__version__} started"
            + (" (dry run: nothing will be changed)" if self.dry_run else ""),
            message_id=MESSAGE_ID_STARTED,
            priority=6,
            WAAGENT_DOCTOR_VERSION=__version__,
            WAAGENT_DOCTOR_OPEN=",".join(sorted(self.state.open_findings)) or None,
            WAAGENT_DOCTOR_DRY_RUN="1" if self.dry_run else None,
        )

    def run(self, *, once: bool = False) -> int:
        """Run until SIGTERM (or one cycle with once); the exit status."""
        sel = selectors.DefaultSelector()
        rfd, wfd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old_wakeup = signal.set_wakeup_fd(wfd)
        handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
        old = {s: signal.signal(s, self._on_signal) for s in handled}
        sel.register(rfd, selectors.EVENT_READ, "signal")
        pidfd: Optional[int] = None
        watched = 0
        try:
            self._start()
            first = True
            while not self._stop:
                try:
                    result = self.cycle()
                except _Interrupted:
                    break
                status = _summary(result.report, self.dry_run, result.applied)
                if first:
                    self.notifier.ready(status)
                    first = False
                else:
                    self.notifier.status(status)
                self.notifier.watchdog()
                self._last_ping = time.monotonic()
                log.debug("cycle.done", duration=round(result.duration, 3), status=status)
                if once:
                    break
                if result.main_pid != watched:
                    if pidfd is not None:
                        sel.unregister(pidfd)
                        os.close(pidfd)
                        pidfd = None
                    watched = result.main_pid
                    pidfd = _pidfd_open(watched)
                    if pidfd is not None:
                        sel.register(pidfd, selectors.EVENT_READ, "agent")
                due = time.monotonic() + self.settings.interval_seconds
                while not self._stop:
                    if self._reload:
                        self.reload()
                        due = min(due, time.monotonic() + self.settings.interval_seconds)
                    timeout = due - time.monotonic()
                    wd = self.notifier.watchdog_seconds
                    if wd is not None:
                        timeout = min(timeout, self._last_ping + wd / 2 - time.monotonic())
                    if timeout <= 0 and time.monotonic() >= due:
                        break
                    for key, _ in sel.select(max(timeout, 0.0)):
                        if key.data == "signal":
                            with contextlib.suppress(OSError):
                                while os.read(rfd, 512):
                                    pass
                        elif key.data == "agent" and pidfd is not None:
                            log.debug("agent.exited", pid=watched)
                            sel.unregister(pidfd)
                            os.close(pidfd)
                            pidfd = None
                            watched = 0
                            due = min(due, time.monotonic() + DEATH_SETTLE_SECONDS)
                    if wd is not None and time.monotonic() - self._last_ping >= wd / 2:
                        self.notifier.watchdog()
                        self._last_ping = time.monotonic()
            self.notifier.stopping()
            with contextlib.suppress(OSError):
                self.persist()
            return 0
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            signal.set_wakeup_fd(old_wakeup)
            sel.close()
            for fd in (rfd, wfd, pidfd):
                if fd is not None:
                    with contextlib.suppress(OSError):
                        os.close(fd)
            self.notifier.close()


def restart_unit_state(host: Host, unit: str) -> Optional[sd.UnitState]:
    """The agent unit's state right now (after an action changed it)."""
    if host.runner is None:
        return None
    try:
        return sd.show(host.runner, unit)
    except Exception:  # noqa: BLE001 - unknown is an answer here
        return None


def _pidfd_open(pid: int) -> Optional[int]:
    """A pidfd that becomes readable when pid exits (Linux 5.3+, Python 3.9+), or None."""
    if pid <= 1:
        return None
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return None
    try:
        fd: int = opener(pid)
    except OSError:
        return None
    os.set_inheritable(fd, False)
    return fd


def run_command(config_path: Optional[str], *, dry_run: bool, once: bool) -> int:
    """`waagent-doctor run`: configure logging, load the configuration, run the loop."""
    doctor_logging.configure()
    settings = configmod.load(config_path)
    daemon = Daemon(settings, config_path=config_path, dry_run=dry_run)
    return daemon.run(once=once)
