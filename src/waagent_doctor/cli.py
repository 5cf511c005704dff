"""The command line of CONTRACT.md: check, run, status, --collect-logs, --version."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from waagent_doctor import __version__
from waagent_doctor import config as configmod
from waagent_doctor.model import parse_time

EXIT_CANNOT_RUN = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"waagent-doctor: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_CANNOT_RUN)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used for the man page)."""
    p = _Parser(
        prog="waagent-doctor",
        description="Diagnose and heal the Azure Linux VM agent and the VM backup extension.",
    )
    p.add_argument("--version", action="version", version=f"waagent-doctor {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    c = sub.add_parser("check", help="diagnose once and print the findings")
    c.add_argument("--json", action="store_true", help="print the report as JSON")
    c.add_argument("--root", metavar="DIR", help="offline: treat DIR as the guest's /")
    c.add_argument("--as-of", metavar="TIME", help="RFC 3339 time windows are measured from")
    c.add_argument("--config", metavar="FILE", help="configuration file (TOML)")

    r = sub.add_parser("run", help="run the daemon")
    r.add_argument("--dry-run", action="store_true", help="observe and report; change nothing")
    r.add_argument("--once", action="store_true", help="run one cycle and exit")
    r.add_argument("--config", metavar="FILE", help="configuration file (TOML)")

    s = sub.add_parser("status", help="what the daemon found and did")
    s.add_argument("--json", action="store_true", help="print the status as JSON")

    g = sub.add_parser("collect-logs", help="write a redacted support bundle")
    g.add_argument("--output", metavar="PATH", help="archive path or directory")
    g.add_argument("--root", metavar="DIR", help="collect from a guest tree (no commands)")
    g.add_argument("--config", metavar="FILE", help="configuration file (TOML)")
    return p


def _normalize(argv: list[str]) -> list[str]:
    # `waagent-doctor --collect-logs ...` is the same as `waagent-doctor collect-logs ...`.
    if "--collect-logs" in argv:
        rest = [a for a in argv if a != "--collect-logs"]
        return ["collect-logs", *rest]
    return argv


AS_OF_MIN = datetime(1970, 1, 1, tzinfo=timezone.utc)
AS_OF_MAX = datetime(9000, 1, 1, tzinfo=timezone.utc)


def _fail(reason: str) -> int:
    print(f"waagent-doctor: {reason}", file=sys.stderr)
    return EXIT_CANNOT_RUN


def cmd_check(args: argparse.Namespace) -> int:
    """`check`: one cycle without policy and actions; exit 0/1/2 by the worst finding."""
    from waagent_doctor.engine import diagnose, offline_as_of
    from waagent_doctor.host import Host
    from waagent_doctor.reporters import console

    settings = configmod.load(args.config)
    as_of: Optional[datetime] = None
    if args.as_of is not None:  # `--as-of ""` is an error, not "unset"
        try:
            as_of = parse_time(args.as_of)
        except ValueError as exc:
            if "out of range" in str(exc):
                return _fail(f"--as-of: {exc}")
            return _fail(f"--as-of: not an RFC 3339 time: {args.as_of!r}")
        # Windows reach back days and thresholds forward: keep clear of the calendar's ends.
        if not AS_OF_MIN <= as_of < AS_OF_MAX:
            return _fail(f"--as-of: {args.as_of!r} is outside {AS_OF_MIN.year}..{AS_OF_MAX.year}")
    if args.root:
        if not Path(args.root).is_dir():
            return _fail(f"--root: not a directory: {args.root}")
        when = as_of or offline_as_of(args.root) or datetime.now(timezone.utc)
        host = Host.offline(args.root, when)
    else:
        host = Host.live_host(as_of)
    report = diagnose(host, settings)
    if args.json:
        sys.stdout.write(json.dumps(report.to_json_dict(), indent=2) + "\n")
    else:
        sys.stdout.write(console.render(report))
    worst = report.worst()
    return worst.rank if worst is not None else 0


def main(argv: Optional[list[str]] = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(_normalize(list(sys.argv[1:] if argv is None else argv)))
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "run":
            from waagent_doctor import daemon

            return daemon.run_command(args.config, dry_run=args.dry_run, once=args.once)
        if args.command == "status":
            from waagent_doctor import status

            return status.status_command(as_json=args.json)
        if args.command == "collect-logs":
            from waagent_doctor.bundle import collect

            return collect.collect_logs_command(args.output, args.root, args.config)
    except configmod.ConfigError as exc:
        return _fail(f"configuration error: {exc}")
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001 - the contract: exit 3 with a one-line reason, no traceback
        return _fail(f"internal error: {type(exc).__name__}: {exc}")
    build_parser().print_help(sys.stderr)
    return EXIT_CANNOT_RUN


def entry() -> None:
    """Console-script wrapper."""
    sys.exit(main())


if __name__ == "__main__":
    entry()
