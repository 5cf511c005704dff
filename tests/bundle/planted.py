"""A guest tree with a distinct secret planted in every kind of place, and a bundle scanner.

Each secret is a unique token, so a leak names the place it came from. The scanner opens the
bundle, then every member, then any archive inside a member (gzip, zip, tar), and returns
every byte it saw, so a test can search all of it.
"""

# ruff: noqa: E501  -- fixture text keeps the real agent's long lines (URLs, JSON records)

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import tarfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "data" / "walinuxagent"
VMSNAP = "Microsoft.Azure.RecoveryServices.VMSnapshotLinux"
HANDLER = f"/var/lib/waagent/{VMSNAP}-1.0.9225.0"
EXTLOG = f"/var/log/azure/{VMSNAP}"
GIB = 1024**3
MIB = 1024**2

# Secrets already in the agent's own redaction fixtures (copied from Azure/WALinuxAgent).
FIXTURE_SECRETS = (
    "9ZzZZzZZZZ999zzz%2bzz99zzZzZZZ99999zz%2b9ZZZ%3d",  # ext_conf_redact.xml / vm_settings-redact.json sig
    "9ZzZZZ%2fZzz9zZzZZZZz9z9zZ99Zzz%3d",  # InVMArtifactsProfileBlob sig
    "IsZAEZFidXVFB/8Ucc8OxGFWpqtXZdrFcuuSxOa6ib",  # protectedSettings blobs
    "8YHwmibhasT0r9MZgL09QmFwL7ZV%2bg%2b49QP5Zwe4ksY%3d",  # event_with_sas_token.tld
    "sXBjML1Fpk9UnTBtajo05ZTFSk0LWFGvARZ6WlVcAog%3D",  # extension event SAS
    "encryptedPasswordString",  # RemoteAccess.xml
    "DNZQ...",  # hosting_env.xml AccountKey
)


@dataclass
class Planted:
    """The tree, its secrets (token -> where planted) and content that must survive."""

    root: Path
    secrets: dict[str, str] = field(default_factory=dict)
    must_have: dict[str, bytes] = field(default_factory=dict)  # archive suffix -> content

    def write(self, guest: str, data: bytes | str, mode: int = 0o644) -> Path:
        p = self.root / guest.lstrip("/")
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        p.chmod(mode)
        return p

    def secret(self, token: str, where: str) -> str:
        assert token not in self.secrets
        self.secrets[token] = where
        return token


def _fixture(rel: str) -> bytes:
    return (DATA / rel).read_bytes()


def plant(root: Path, *, big_log: bool = True) -> Planted:
    """Build the planted guest tree under root."""
    vm = Planted(root)
    s = vm.secret
    vm.write("/etc/hostname", "vm-planted\n")
    vm.write("/etc/os-release", 'ID=ubuntu\nID_LIKE=debian\nVERSION_ID="22.04"\n')
    vm.write(
        "/etc/waagent.conf",
        "Provisioning.DeleteRootPassword=y\nHttpProxy.Host=proxy\nExtensions.Enabled=y\n",
    )
    vm.must_have["etc/waagent.conf"] = b"Provisioning.DeleteRootPassword=y"

    # The agent log: a SAS URL, a proxy URL with credentials, a JSON-escaped SAS.
    log = (
        "2026-11-26T09:00:00.000000Z INFO ExtHandler ExtHandler Azure Linux Agent (Goal State Agent version 2.15.0.1)\n"
        f"2026-11-26T09:00:01.000000Z WARNING ExtHandler ExtHandler Fetch failed: GET https://md-x.blob.storage.azure.net/$system/vm.status?sv=2018-03-28&sr=b&sig={s('SIGLOG0001', 'waagent.log SAS')}&se=9999 -- 403\n"
        f"2026-11-26T09:00:02.000000Z INFO ExtHandler ExtHandler Using proxy http://puser:{s('PROXYPASS0002', 'waagent.log proxy URL')}@proxy.corp:3128\n"
        f'2026-11-26T09:00:03.000000Z INFO ExtHandler ExtHandler status {{"uri": "https://a.blob/c?sv=1\\u0026sig={s("SIGJSON0003", "JSON-escaped SAS in log")}\\u0026sp=r"}}\n'
        "2026-11-26T09:00:04.000000Z INFO ExtHandler ExtHandler MUSTHAVE-AGENT-LOG-LINE\n"
    )
    vm.write("/var/log/waagent.log", log)
    vm.must_have["var/log/waagent.log"] = b"MUSTHAVE-AGENT-LOG-LINE"
    # Rotations: gzip (two members) and bz2.
    gz = gzip.compress(f"old line &sig={s('SIGGZ0004', 'rotated .gz log')}&se=1\n".encode())
    gz += gzip.compress(b"MUSTHAVE-ROTATED-GZ\n")
    vm.write("/var/log/waagent.log.1.gz", gz)
    vm.must_have["var/log/waagent.log.1"] = b"MUSTHAVE-ROTATED-GZ"
    vm.write(
        "/var/log/waagent.log.2.bz2",
        bz2.compress(f"password={s('BZPASS0005', 'rotated .bz2 log')}\n".encode()),
    )

    # The backup extension's logs, handler state, settings, status.
    vm.write(
        f"{EXTLOG}/extension.log",
        f'2026/11/26 09:00:05 [{VMSNAP}-1.0] publicSettings {{"logsBlobUri": "https://s.blob/logs?sv=1&sr=b&sig={s("SIGEXT0006", "extension.log logsBlobUri")}", '
        f'"objectStr": "{s("OBJSTREXT0007", "extension.log objectStr")}"}} snapshotTaskToken={s("TASKTOKEN0008", "extension.log task token")}\n'
        "2026/11/26 09:00:06 MUSTHAVE-EXTENSION-LOG\n",
    )
    vm.must_have[f"var/log/azure/{VMSNAP}/extension.log"] = b"MUSTHAVE-EXTENSION-LOG"
    vm.write(f"{EXTLOG}/shell.log", "2026-11-26 09:00:05- python3 path exists MUSTHAVE-SHELL-LOG\n")
    vm.must_have[f"var/log/azure/{VMSNAP}/shell.log"] = b"MUSTHAVE-SHELL-LOG"
    settings = {
        "runtimeSettings": [
            {
                "handlerSettings": {
                    "protectedSettingsCertThumbprint": "3CA9F246CB9F2D4D17A1BBF732CA5D70AE5CB810",
                    "protectedSettings": s("PROTSET0009", "12.settings protectedSettings"),
                    "publicSettings": {
                        "logsBlobUri": f"https://s.blob/l?sv=1&sig={s('SIGSET0010', '12.settings logsBlobUri')}",
                        "statusBlobUri": "https://s.blob/"
                        + s("STATUSBLOB0011", "12.settings statusBlobUri path"),
                        "objectStr": s("OBJSTR0012", "12.settings objectStr"),
                        "keyVaultName": "KVNAME-KEPT",
                        "taskId": "MUSTHAVE-TASK-ID",
                    },
                }
            }
        ]
    }
    vm.write(f"{HANDLER}/config/12.settings", json.dumps(settings))
    vm.must_have[f"var/lib/waagent/{VMSNAP}-1.0.9225.0/config/12.settings"] = b"MUSTHAVE-TASK-ID"
    vm.write(f"{HANDLER}/config/HandlerState", "Enabled")
    vm.write(f"{HANDLER}/config/HandlerStatus", '{"status": "Ready", "message": "Plugin enabled"}')
    vm.write(f"{HANDLER}/mrseq", "12")
    vm.write(
        f"{HANDLER}/status/12.status",
        json.dumps(
            [
                {
                    "status": {
                        "status": "error",
                        "code": 2,
                        "formattedMessage": {
                            "message": f"upload to https://x.blob/y?sv=1&sig={s('SIGSTATUS0013', '12.status message')} failed MUSTHAVE-STATUS"
                        },
                    }
                }
            ]
        ),
    )
    vm.must_have[f"var/lib/waagent/{VMSNAP}-1.0.9225.0/status/12.status"] = b"MUSTHAVE-STATUS"

    # Top level of /var/lib/waagent: legacy goal state, ovf-env, hosting env, status.
    vm.write(
        "/var/lib/waagent/ExtensionsConfig.3.xml",
        _fixture("var_lib_waagent/wire_goal_state/ext_conf_redact.xml"),
    )
    vm.write(
        "/var/lib/waagent/VmSettings.3.json",
        _fixture("var_lib_waagent/hostgaplugin/vm_settings-redact.json"),
    )
    ovf = _fixture("var_lib_waagent/ovf-env/ovf-env.xml").decode()
    ovf = ovf.replace(
        "<UserPassword>UserPassword<", f"<UserPassword>{s('OVFPASS0014', 'ovf-env UserPassword')}<"
    )
    ovf = ovf.replace(
        "<CustomData>CustomData<", f"<CustomData>{s('OVFCUSTOM0015', 'ovf-env CustomData')}<"
    )
    vm.write("/var/lib/waagent/ovf-env.xml", ovf, 0o400)
    vm.must_have["var/lib/waagent/ovf-env.xml"] = b"LinuxProvisioningConfiguration"
    hosting = _fixture("var_lib_waagent/wire_goal_state/hosting_env.xml").decode()
    vm.write(
        "/var/lib/waagent/HostingEnvironmentConfig.xml",
        hosting.replace(
            "AccountKey=DNZQ...", f"AccountKey={s('ACCKEY0016', 'hosting env AccountKey')}"
        ),
    )
    vm.write(
        "/var/lib/waagent/waagent_status.json",
        json.dumps(
            {
                "message": f"https://b/x?sv=1&sig={s('SIGWASTAT0017', 'waagent_status.json')}",
                "note": "MUSTHAVE-WAAGENT-STATUS",
            }
        ),
    )
    vm.must_have["var/lib/waagent/waagent_status.json"] = b"MUSTHAVE-WAAGENT-STATUS"

    # Never collected.
    vm.write(
        "/var/lib/waagent/3CA9F246CB9F2D4D17A1BBF732CA5D70AE5CB810.prv",
        s("PRVKEY0018", "*.prv"),
        0o400,
    )
    vm.write(
        "/var/lib/waagent/3CA9F246CB9F2D4D17A1BBF732CA5D70AE5CB810.crt",
        s("CRTFILE0019", "*.crt"),
        0o400,
    )
    vm.write("/var/lib/waagent/Certificates.pem", s("CERTPEM0020", "Certificates.pem"), 0o400)
    vm.write(
        "/var/lib/waagent/Certificates.xml",
        f"<CertificateFile><Data>{s('CERTXML0021', 'Certificates.xml')}</Data></CertificateFile>",
        0o400,
    )
    vm.write("/var/lib/waagent/Certificates.p7m", s("CERTP7M0022", "Certificates.p7m"), 0o400)
    vm.write(
        "/var/lib/waagent/TransportPrivate.pem", s("TRANSPRV0023", "TransportPrivate.pem"), 0o400
    )
    vm.write("/var/lib/waagent/CustomData", s("CUSTOMFILE0024", "CustomData file"))
    vm.write(f"{EXTLOG}/client.pem", s("EXTPEM0025", "a .pem under /var/log/azure"))
    vm.write(
        "/etc/shadow",
        f"root:{s('SHADOW0026', '/etc/shadow (outside the allowed paths)')}:19000::::::\n",
        0o600,
    )

    # History: the newest folder (RemoteAccess.xml in it) and an older zip (RemoteAccess.xml too).
    hist = "/var/lib/waagent/history"
    vm.write(
        f"{hist}/2026-11-26T09-00-00__4/ExtensionsConfig.xml",
        f"<Extensions><StatusUploadBlob>https://h.blob/s?sv=1&amp;sig={s('SIGHIST0027', 'history folder ExtensionsConfig')}&amp;sp=w</StatusUploadBlob><Note>MUSTHAVE-HISTORY</Note></Extensions>",
    )
    vm.must_have["var/lib/waagent/history/2026-11-26T09-00-00__4/ExtensionsConfig.xml"] = (
        b"MUSTHAVE-HISTORY"
    )
    ra = _fixture("var_lib_waagent/wire_goal_state/remote_access_single_account.xml").decode()
    vm.write(
        f"{hist}/2026-11-26T09-00-00__4/RemoteAccess.xml",
        ra.replace(
            "encryptedPasswordString", s("RAPASS0028", "RemoteAccess.xml in history folder")
        ),
    )
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(
            "ExtensionsConfig.xml",
            f'<Plugin><RuntimeSettings seqNo="3">{{"runtimeSettings":[{{"handlerSettings":{{"protectedSettings": "{s("PROTZIP0029", "protectedSettings in history zip")}"}}}}]}}</RuntimeSettings></Plugin><Blob>https://z.blob/s?sv=1&amp;sig={s("SIGZIP0030", "SAS in history zip")}</Blob><Note>MUSTHAVE-ZIP-MEMBER</Note>',
        )
        zf.writestr(
            "RemoteAccess.xml",
            ra.replace(
                "encryptedPasswordString", s("RAZIPPASS0031", "RemoteAccess.xml in history zip")
            ),
        )
        zf.writestr(
            "VmSettings.json", _fixture("var_lib_waagent/hostgaplugin/vm_settings-redact.json")
        )
    vm.write(f"{hist}/2026-11-25T09-00-00__3.zip", buf.getvalue())
    vm.must_have["var/lib/waagent/history/2026-11-25T09-00-00__3.zip/ExtensionsConfig.xml"] = (
        b"MUSTHAVE-ZIP-MEMBER"
    )

    # Another extension: a JSON config with a storage key, agent fixture events with SAS.
    vm.write(
        "/var/log/azure/Other.Ext/config.json",
        json.dumps(
            {
                "storageAccountKey": s("SAK0032", "storageAccountKey in JSON"),
                "keyVaultName": "KVNAME-KEPT",
                "clientSecret": s("CLSECRET0033", "clientSecret in JSON"),
            }
        ),
    )
    vm.must_have["var/log/azure/Other.Ext/config.json"] = b"KVNAME-KEPT"
    vm.write(
        "/var/log/azure/Other.Ext/events/sas.json",
        _fixture("var_log_azure/extension_events/sas_1591905410.json"),
    )
    vm.write(
        "/var/log/azure/Other.Ext/events/event.tld",
        _fixture("var_lib_waagent/events/event_with_sas_token.tld"),
    )

    # Unit and drop-in with a proxy credential in the environment.
    vm.write(
        "/lib/systemd/system/walinuxagent.service",
        "[Service]\nExecStart=/usr/sbin/waagent -daemon\nRestart=always\n",
    )
    vm.write(
        "/etc/systemd/system/walinuxagent.service.d/proxy.conf",
        f'[Service]\nEnvironment="https_proxy=http://u:{s("UNITPROXY0034", "unit drop-in proxy URL")}@p:3128"\n',
    )

    # Links out of the tree, a FIFO, a link to a key.
    out = root.parent / "outside"
    out.mkdir(exist_ok=True)
    (out / "secret.txt").write_text(s("OUTSIDE0035", "a host file outside the root") + "\n")
    other = root / "var/log/azure/Other.Ext"
    os.symlink("/etc/shadow", other / "shadow.log")
    os.symlink(str(out / "secret.txt"), other / "host-abs.log")
    os.symlink("../../../../../../../../../outside/secret.txt", other / "escape.log")
    os.symlink(
        "/var/lib/waagent/3CA9F246CB9F2D4D17A1BBF732CA5D70AE5CB810.prv",
        root / "var/log/waagent.log.3",
    )
    os.symlink(str(out), other / "outdir")
    os.mkfifo(other / "pipe.log")

    if big_log:
        # A 3 GiB sparse log whose tail holds a secret that starts before the tail's cut.
        big = root / f"var/log/azure/{VMSNAP}/big.log"
        with big.open("wb") as fh:
            fh.truncate(3 * GIB)
            cut = 3 * GIB - 30 * MIB
            fh.seek(cut - 64 * 1024)
            long_secret = ("LONGSEC0036" * 12000).encode()  # ~130 KiB, crosses the cut
            assert len(long_secret) > 128 * 1024
            fh.write(b'\n{"protectedSettings": "' + long_secret + b'"}\n')
            fh.seek(3 * GIB - 4096)
            fh.write(
                f"\nGET https://t.blob/x?sig={s('SIGBIG0037', 'tail of a 3 GiB log')}&se=1\nMUSTHAVE-BIG-TAIL\n".encode()
            )
        vm.secrets["LONGSEC0036"] = "a long protectedSettings value crossing the tail cut"
        vm.must_have[f"var/log/azure/{VMSNAP}/big.log"] = b"MUSTHAVE-BIG-TAIL"
    return vm


def scan(blob: bytes, depth: int = 0) -> list[bytes]:
    """Every byte seen in blob and, recursively, in the archives it holds."""
    seen = [blob]
    if depth > 4:
        return seen
    if blob[:2] == b"\x1f\x8b":
        try:
            seen += scan(gzip.decompress(blob), depth + 1)
        except (OSError, EOFError):
            pass
    if blob[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                for name in zf.namelist():
                    seen += scan(zf.read(name), depth + 1)
        except zipfile.BadZipFile:
            pass
    if len(blob) > 512 and blob[257:262] == b"ustar":
        with tarfile.open(fileobj=io.BytesIO(blob)) as tf:
            for m in tf.getmembers():
                f = tf.extractfile(m)
                if f is not None:
                    seen += scan(f.read(), depth + 1)
    return seen


def members(archive: Path) -> dict[str, bytes]:
    """The bundle's members by name without the top folder."""
    out: dict[str, bytes] = {}
    with tarfile.open(archive, "r:gz") as tf:
        for m in tf.getmembers():
            f = tf.extractfile(m)
            assert f is not None, m.name
            out[m.name.split("/", 1)[1]] = f.read()
    return out
