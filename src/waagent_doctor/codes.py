"""The finding codes and actions of CONTRACT.md: stable public identifiers, one row each.

A code never changes meaning once shipped; its MESSAGE_ID (journal) never changes either.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    """How bad a finding is; ordered info < warning < critical."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0 for info, 1 for warning, 2 for critical (also `check`'s exit status)."""
        return {"info": 0, "warning": 1, "critical": 2}[self.value]


class Mode(str, Enum):
    """Where a code can be raised: live only, or live and offline (`--root`)."""

    LIVE = "live"
    BOTH = "both"


CAUSE_TITLES = {
    1: "Network access from the VM to Azure",
    2: "The VM agent",
    3: "The backup extension",
    4: "Snapshot conditions inside the VM",
    0: "Other",
}


@dataclass(frozen=True)
class Code:
    """One row of the finding-code table of CONTRACT.md, plus operator text."""

    code: str
    cause: int
    severity: Severity
    mode: Mode
    title: str
    remedy: str
    actions: tuple[str, ...]
    message_id: str


_C = Severity.CRITICAL
_W = Severity.WARNING
_I = Severity.INFO
_B = Mode.BOTH
_L = Mode.LIVE

_ROWS: tuple[Code, ...] = (
    Code(
        "network.wireserver.unreachable",
        1,
        _C,
        _B,
        "The VM cannot reach the Azure WireServer",
        "The agent and the backup extension talk to the WireServer (168.63.129.16, port 80). "
        "Check NSG rules, firewalls (iptables/nftables), routes and proxies on the VM: allow "
        "outbound TCP 80 and 32526 to 168.63.129.16 for root, and do not send it through a "
        "proxy.",
        (),
        "8471e0ca174d4bd5ac1a12d16ca3606a",
    ),
    Code(
        "network.hostgaplugin.unreachable",
        1,
        _W,
        _B,
        "The VM cannot reach the HostGAPlugin",
        "Allow outbound TCP 32526 to 168.63.129.16 for root; the agent falls back to the "
        "HostGAPlugin to download extensions and upload status.",
        (),
        "575d098c30644ce0ab40f2cb770b13a5",
    ),
    Code(
        "network.imds.unreachable",
        1,
        _W,
        _L,
        "The VM cannot reach the Instance Metadata Service",
        "Allow outbound TCP 80 to 169.254.169.254 and exclude it from any proxy (no_proxy).",
        (),
        "9811860706a14e2badb7c9cdfa2f608a",
    ),
    Code(
        "network.storage.unreachable",
        1,
        _C,
        _B,
        "The VM cannot reach Azure Storage",
        "The agent uploads status and the backup extension sends snapshot commands to Azure "
        "Storage over HTTPS (443). Allow outbound HTTPS to the Storage service tag of the "
        "region (NSG, firewall, proxy allow-list); with a proxy, make sure it lets the VM "
        "reach *.blob.core.windows.net.",
        (),
        "93972c9786024b59b5b25b7f0c4e234d",
    ),
    Code(
        "network.proxy.unreachable",
        1,
        _C,
        _L,
        "The proxy the agent uses does not answer",
        "Fix the proxy or correct HttpProxy.Host/HttpProxy.Port in /etc/waagent.conf (or the "
        "http_proxy/https_proxy environment of the agent's unit), then restart the agent.",
        (),
        "c992ef6bae0c4104ab3b19ed8f1ddace",
    ),
    Code(
        "agent.not_installed",
        2,
        _C,
        _B,
        "The Azure VM agent is not installed",
        "Install the distribution's agent package (walinuxagent on Debian/Ubuntu, "
        "WALinuxAgent elsewhere) and enable its service. Backups need the agent.",
        (),
        "5e2d1880ca1542cda090537e17fa3a00",
    ),
    Code(
        "agent.not_running",
        2,
        _C,
        _L,
        "The Azure VM agent is not running",
        "Start the agent: `systemctl start walinuxagent` (Debian/Ubuntu) or "
        "`systemctl start waagent` (other distributions), and read /var/log/waagent.log for "
        "why it stopped.",
        ("restart_agent",),
        "a6ada2f4fe6c448ba063ab138135dfda",
    ),
    Code(
        "agent.exthandler.not_running",
        2,
        _C,
        _L,
        "The agent's extension handler process is not running",
        "The agent daemon runs but its -run-exthandlers child does not, so no extension (the "
        "backup extension included) is handled. Restart the agent's service.",
        ("restart_agent",),
        "55b322c98c0c46cdb7e75da22ee3cdaf",
    ),
    Code(
        "agent.hung",
        2,
        _C,
        _L,
        "The Azure VM agent is alive but makes no progress",
        "The agent's processes run but write no log records, heartbeat or status. Restart the "
        "agent's service; if it hangs again, enable Logs.Verbose=y and open a support case "
        "with `waagent-doctor --collect-logs`.",
        ("restart_agent",),
        "c1da8f4713414111b145b69bb7335a95",
    ),
    Code(
        "agent.crash_loop",
        2,
        _C,
        _B,
        "The Azure VM agent keeps crashing and restarting",
        "Read /var/log/waagent.log around the restarts. Set Logs.Verbose=y in "
        "/etc/waagent.conf, restart the agent, and collect logs for a support case "
        "(`waagent-doctor --collect-logs`).",
        ("enable_verbose_logging", "collect_logs"),
        "99ca15312d4c425392b04fec471d4467",
    ),
    Code(
        "agent.outdated",
        2,
        _W,
        _B,
        "The Azure VM agent is out of date",
        "Update the agent: keep AutoUpdate enabled in /etc/waagent.conf, or update the "
        "distribution's agent package, then restart the agent.",
        (),
        "ff1deb9f56ac4069b9a3ee0f05909712",
    ),
    Code(
        "agent.autoupdate.disabled",
        2,
        _W,
        _B,
        "Agent auto-update is disabled",
        "Set AutoUpdate.UpdateToLatestVersion=y (or AutoUpdate.Enabled=y) in "
        "/etc/waagent.conf and restart the agent, so the agent keeps up with the platform.",
        (),
        "38c70e57038e49899a504ac991cc2985",
    ),
    Code(
        "agent.autorestart.missing",
        2,
        _W,
        _B,
        "Nothing restarts the agent if it crashes",
        "Configure the agent to restart itself: add a drop-in for its unit with "
        "`[Service]` `Restart=always` and `RestartSec=5`, then `systemctl daemon-reload`.",
        ("enable_autorestart",),
        "ee3df79e4160424aaf9232a1cfe804ad",
    ),
    Code(
        "agent.disabled_by_file",
        2,
        _C,
        _B,
        "The agent is disabled by /var/lib/waagent/disable_agent",
        "The agent sleeps forever while this file exists; restarting it cannot help. If the "
        "agent should run, remove /var/lib/waagent/disable_agent and restart it.",
        (),
        "58f6ef0beeb54eee976d2078717949cb",
    ),
    Code(
        "agent.extensions.disabled",
        3,
        _C,
        _B,
        "Extensions are disabled in the agent's configuration",
        "Extensions.Enabled=n stops every extension, the backup extension included. Set "
        "Extensions.Enabled=y in /etc/waagent.conf and restart the agent.",
        (),
        "5fecb9d931e84b16a975f9abcf05730a",
    ),
    Code(
        "extension.vmsnapshot.not_installed",
        3,
        _C,
        _B,
        "The backup extension is requested but not installed or not enabled",
        "The goal state asks for Microsoft.Azure.RecoveryServices.VMSnapshotLinux but its "
        "handler is missing or not enabled. Read /var/log/waagent.log for the install error; "
        "moving the handler folder aside and restarting the agent makes it reinstall.",
        ("reload_extension",),
        "1586972a16a84815b048e8af0a36e0c5",
    ),
    Code(
        "extension.vmsnapshot.failed",
        3,
        _C,
        _B,
        "The backup extension reported an error",
        "Read the extension's status and /var/log/azure/"
        "Microsoft.Azure.RecoveryServices.VMSnapshotLinux/extension.log. If it failed to "
        "install, update or load, let the agent reinstall it (move its handler folder aside "
        "and restart the agent), then retry the backup.",
        ("reload_extension",),
        "255c861e5c214f6f9e4ba137c53e771c",
    ),
    Code(
        "extension.vmsnapshot.stuck",
        3,
        _C,
        _B,
        "The backup extension does not finish",
        "The backup extension's status stays transitioning, or the requested sequence number "
        "has no status. Restart the agent so that it runs the extension again, then retry the "
        "backup.",
        ("restart_agent",),
        "d90d03c61bbe45eca5ab48515a19ad10",
    ),
    Code(
        "extension.vmsnapshot.outdated",
        3,
        _W,
        _B,
        "The backup extension is out of date",
        "The agent updates the backup extension by itself when it can reach Azure; check "
        "cause 1 and 2 findings. Moving the handler folder aside and restarting the agent "
        "makes it install the current version.",
        ("reload_extension",),
        "22d3206223604fb9bf5317d0812020f7",
    ),
    Code(
        "extension.other.failed",
        3,
        _W,
        _B,
        "Another extension failed or hangs",
        "The agent can hold the goal state, and the backup extension with it, while another "
        "extension is unresponsive or failing. Fix or remove the failing extension.",
        (),
        "9906e436f5c94cbc9501d4365d6f9caf",
    ),
    Code(
        "resources.cpu.high",
        4,
        _W,
        _L,
        "CPU use is above the threshold",
        "A snapshot needs CPU headroom: find the processes using the CPU (`top`), and schedule "
        "backups when the VM is less busy, or resize it.",
        (),
        "60e3f3d7eb8b45b28a1b90e24b06f404",
    ),
    Code(
        "resources.memory.high",
        4,
        _W,
        _L,
        "Memory use is above the threshold",
        "A snapshot needs free memory: find the processes using it (`top`, `ps aux "
        "--sort=-rss`), and schedule backups when the VM is less busy, or resize it.",
        (),
        "41ef864f4c64438d90744070820df801",
    ),
    Code(
        "resources.disk.full",
        4,
        _C,
        _L,
        "The disk holding the agent's files is nearly full",
        "Free space or inodes on the filesystem holding /var/lib/waagent or /var/log; the agent "
        "and the backup extension cannot write status or logs.",
        (),
        "702871ed0a964bbe811bfbdca5874c49",
    ),
    Code(
        "dhcp.disabled",
        4,
        _C,
        _B,
        "DHCP is disabled or gives no WireServer address",
        "The backup extension finds the WireServer through DHCP option 245. Configure the "
        "primary interface with DHCP (Azure assigns its address that way) and reboot or renew "
        "the lease.",
        (),
        "f3e2da2c8d4c45c28fd4f2efc210c3c4",
    ),
    Code(
        "snapshot.freeze.failed",
        4,
        _C,
        _B,
        "The backup extension could not freeze the filesystems",
        "Find the mount that cannot be frozen in the extension's log (often a busy, "
        "network or bind mount). Check pre/post scripts and /etc/azure/vmbackup.conf; on "
        "repeated failures open a support case with `waagent-doctor --collect-logs`.",
        (),
        "ad82952dd8c54e9aa2d0720268204e6e",
    ),
    Code(
        "snapshot.command_too_late",
        4,
        _C,
        _B,
        "The agent started the snapshot command too late",
        "The VM was too busy, or the agent too slow, to start the snapshot in time (code 402). "
        "Check CPU and memory load at backup time and that the agent is healthy.",
        (),
        "0751568b846847b5b8064ec78139b47e",
    ),
    Code(
        "backup.repeated_failures",
        0,
        _C,
        _B,
        "Backups keep failing",
        "The backup extension failed on several consecutive backup requests. Fix the findings "
        "above; if none explains it, open a support case with `waagent-doctor --collect-logs`.",
        ("enable_verbose_logging", "collect_logs"),
        "523dd0cc9bb9459dacbc7aafd5987def",
    ),
    Code(
        "host.not_azure",
        0,
        _I,
        _L,
        "This is not an Azure VM",
        "Nothing to do: the doctor stays idle on machines that are not Azure VMs. Set "
        "assume_azure = true in the configuration for unusual hypervisors.",
        (),
        "3e015c714f9d487b94c54bdf7b811c36",
    ),
    Code(
        "input.unreadable",
        0,
        _W,
        _B,
        "A file the doctor needs could not be read or parsed",
        "Check the file named in the evidence (permissions, corruption, a full disk). The "
        "checks that need it could not give an answer.",
        (),
        "54bbbdc3e5f749ceab0bfa265ada9e4f",
    ),
    Code(
        "network.firewall.blocked",
        1,
        _C,
        _B,
        "A firewall rule on the VM blocks the agent's traffic to Azure",
        "A firewall rule drops or rejects root's traffic to the WireServer (168.63.129.16, "
        "ports 80 and 32526) or to IMDS (169.254.169.254). Remove or narrow the rule named in "
        "the evidence; the agent's own rule that drops non-root WireServer traffic is normal.",
        (),
        "d75d62a66e924f32a650ab553502d4d3",
    ),
    Code(
        "network.storage.proxy_bypassed",
        1,
        _C,
        _L,
        "Azure Storage is reachable only through the proxy, which the backup extension bypasses",
        "waagent.conf sets HttpProxy.Host and HttpProxy.Port; with a port set, the backup "
        "extension connects to Azure Storage directly, and the direct path is blocked. Allow "
        "direct outbound HTTPS (443) from the VM to Azure Storage (the Storage service tag).",
        (),
        "b7636394c60d47bcbd645fe4cea24cb4",
    ),
    Code(
        "host.clock.unsynchronized",
        1,
        _W,
        _L,
        "The system clock is not synchronized",
        "Storage refuses requests signed with a skewed clock, and code 402 is judged on the "
        "VM's clock. Enable time synchronization (chrony or systemd-timesyncd with the Hyper-V "
        "PTP clock or NTP) and check `timedatectl`.",
        (),
        "87d3767028cb446589220c3436df3e84",
    ),
    Code(
        "extension.vmsnapshot.no_interpreter",
        3,
        _C,
        _B,
        "The backup extension finds no Python interpreter",
        "The backup extension's handler script tries python3.x, python3, python2.x and python in "
        "/usr/bin and /usr/local/bin. Install python3 (or restore the link the extension looks "
        "for).",
        (),
        "ceb7ec8425e84eedbe3528c3eb5e6fcd",
    ),
    Code(
        "doctor.check_failed",
        0,
        _W,
        _B,
        "A check failed inside the doctor: part of the diagnosis is missing",
        "The check named in the evidence could not run to its end (a defect, or an input it "
        "could not handle). Its part of the diagnosis is missing; report it with the output of "
        "`waagent-doctor check --json`.",
        (),
        "04fdcc8fc73148b38f618c4aa68fac17",
    ),
)

CODES: dict[str, Code] = {row.code: row for row in _ROWS}


@dataclass(frozen=True)
class ActionInfo:
    """One row of CONTRACT.md's Actions table."""

    name: str
    description: str
    message_id: str


ACTIONS: dict[str, ActionInfo] = {
    a.name: a
    for a in (
        ActionInfo(
            "restart_agent",
            "restarts the agent's unit (walinuxagent.service on Debian and Ubuntu, "
            "waagent.service elsewhere)",
            "fd2024e5727546269d85f8362125168c",
        ),
        ActionInfo(
            "enable_autorestart",
            "installs a drop-in for the agent's unit with Restart=always, then reloads systemd",
            "a013ddb1e3db41df96ab9021ec988b6a",
        ),
        ActionInfo(
            "enable_verbose_logging",
            "sets Logs.Verbose=y in /etc/waagent.conf and restarts the agent; reverted later",
            "5a954757a88f43a3b04c73a5ef5afc8f",
        ),
        ActionInfo(
            "collect_logs",
            "writes a support bundle into /var/lib/waagent-doctor/bundles",
            "f8ab9f70f51d4d0c9ce5e08074163d43",
        ),
        ActionInfo(
            "reload_extension",
            "moves the backup extension's handler folder aside and restarts the agent so "
            "that it reinstalls the extension",
            "b513a7a9fe7e4cadb2506f40ea75b442",
        ),
    )
}

# Journal entries of the doctor itself (not findings or actions).
MESSAGE_ID_STARTED = "edcec74da71f45ca830fc321f6da37c3"
MESSAGE_ID_CONFIG_REJECTED = "572d09a9441c4c3098be312d49167527"
MESSAGE_ID_GAVE_UP = "773dc98481024425913f75a212092dae"
MESSAGE_ID_VERBOSE_REVERTED = "9969c3814d9a41c69a562db1b736965a"

VMSNAPSHOT = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
