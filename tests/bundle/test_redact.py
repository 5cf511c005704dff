"""The streaming redactor: secrets masked wherever they are, useful text kept, any chunking."""

from __future__ import annotations

import json
from pathlib import Path

import defusedxml.ElementTree as DET
import pytest

from waagent_doctor.bundle.redact import StreamRedactor, redact_bytes

DATA = Path(__file__).resolve().parents[1] / "data" / "walinuxagent"
FIXTURES = [
    "var_lib_waagent/wire_goal_state/ext_conf_redact.xml",
    "var_lib_waagent/hostgaplugin/vm_settings-redact.json",
    "var_lib_waagent/ovf-env/ovf-env.xml",
    "var_lib_waagent/events/event_with_sas_token.tld",
    "var_log_azure/extension_events/sas_1591905410.json",
    "var_lib_waagent/wire_goal_state/hosting_env.xml",
]


def _chunked(data: bytes, size: int) -> tuple[bytes, int]:
    r = StreamRedactor()
    out = b"".join(r.feed(data[i : i + size]) for i in range(0, len(data), size))
    return out + r.finish(), r.count


def test_ext_conf_keeps_its_shape_and_loses_sas_and_protected_settings() -> None:
    """The agent's unredacted ExtensionsConfig stays valid XML with every secret masked."""
    raw = (DATA / FIXTURES[0]).read_bytes()
    out, count = redact_bytes(raw)
    tree = DET.fromstring(out)
    assert len(tree.findall("./Plugins/Plugin")) == 3
    assert b"sig=" in raw and b"9ZzZZzZZZZ999zzz" not in out and b"9ZzZZZ%2fZzz" not in out
    assert b"IsZAEZFidXVFB" not in out
    assert out.count(b'"protectedSettings": "***REDACTED***"') == 3
    assert b"umsaq0ksgznjhnhvqvmj.blob.core.windows.net" in out  # manifest URIs carry no SAS
    assert count >= 3 + 2


def test_vm_settings_stays_valid_json_with_secrets_masked() -> None:
    """vmSettings JSON parses after redaction; protectedSettings and the status SAS are gone."""
    out, _ = redact_bytes((DATA / FIXTURES[1]).read_bytes())
    doc = json.loads(out)
    settings = [s for g in doc["extensionGoalStates"] for s in g["settings"]]
    assert settings and all(s["protectedSettings"] == "***REDACTED***" for s in settings)
    assert "sig=***REDACTED***" in doc["statusUploadBlob"]["value"]
    assert "FF56DAC2F36EDDE292DE9D49B200D7CBEE05D2F4" in out.decode()  # thumbprints are kept


def test_ovf_env_password_and_custom_data_masked_user_and_keys_kept() -> None:
    """ovf-env.xml: UserPassword and CustomData masked; user name and SSH public key kept."""
    out, count = redact_bytes((DATA / FIXTURES[2]).read_bytes())
    assert b"<UserPassword>***REDACTED***</UserPassword>" in out
    assert b"<CustomData>***REDACTED***</CustomData>" in out
    assert b"<UserName>UserName</UserName>" in out and b"ssh-rsa AAAANOTAREALKEY== foo@bar" in out
    assert count == 2


@pytest.mark.parametrize("rel", FIXTURES)
@pytest.mark.parametrize("size", [1, 2, 7, 333, 4096])
def test_any_chunking_gives_the_same_result(rel: str, size: int) -> None:
    """Chunk boundaries never change what is masked (a secret split across chunks too)."""
    raw = (DATA / rel).read_bytes()
    assert _chunked(raw, size) == redact_bytes(raw)


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (b"GET https://a.blob/c?sv=2018&sr=b&sig=S1%2bx%3d&se=2030 -- 403", b"S1%2bx"),
        (b"https://a.blob/c?SIG=S2upper&sp=r", b"S2upper"),
        (b"<Blob>https://a/c?sv=1&amp;sig=S3amp&amp;sp=w</Blob>", b"S3amp"),
        (b'{"u": "https://a/c?x=1\\u0026sig=S4json\\/x\\u0026sp=r"}', b"S4json"),
        (b"redirect=https%3A%2F%2Fa%2Fc%3Fsv%3D1%26sig%3DS5enc%26sp%3Dr", b"S5enc"),
        (b"Endpoint=sb://x/;SharedAccessKeyName=k;SharedAccessKey=S6key=", b"S6key"),
        (b"DefaultEndpointsProtocol=https;AccountName=a;AccountKey=S7acc+/==;Suffix=x", b"S7acc"),
        (b"BlobEndpoint=https://a/;SharedAccessSignature=sv=1&sig=S8sas&se=1", b"S8sas"),
        (b'Environment="https_proxy=http://bob:S9proxy@10.0.0.1:3128"', b"S9proxy"),
        (b'{"storageAccountKey": "S10sak"}', b"S10sak"),
        (b'{"clientSecret":"S11 with spaces"}', b"with spaces"),
        (b'{"adminPassword": "S12\\"quoted\\" pass"}', b"pass"),
        (b'"settings": "{\\"protectedSettings\\":\\"S13esc\\"}"', b"S13esc"),
        (b"&quot;protectedSettings&quot;: &quot;S14quot&quot;", b"S14quot"),
        (b'<Plugin protectedSettings="S15attr" name="x"/>', b"S15attr"),
        (b"<wa:UserPassword>S16ns</wa:UserPassword>", b"S16ns"),
        (b"<CustomData>\n  S17multi\n  line\n</CustomData>", b"S17multi"),
        (
            b'{"objectStr": "S18obj", "logsBlobUri": "https://x/y", "statusBlobUri": "S19st"}',
            b"S18obj",
        ),
        (b'{"statusBlobUri": "S19st"}', b"S19st"),
        (b"snapshotTaskToken=S20task done", b"S20task"),
        (b"Authorization: Bearer S21bearer.x.y", b"S21bearer"),
        (b"-----BEGIN RSA PRIVATE KEY-----\nS22pem\n-----END RSA PRIVATE KEY-----", b"S22pem"),
        (b"HttpProxy.Password = S23conf", b"S23conf"),
        (b"{'password': 'S24single'}", b"S24single"),
        (b'{"password": 424242}', b"424242"),
    ],
)
def test_each_kind_of_secret_is_masked(text: bytes, secret: bytes) -> None:
    """A secret of each kind and quoting disappears, whole."""
    out, count = redact_bytes(text)
    assert secret not in out and count >= 1
    assert b"***REDACTED***" in out


@pytest.mark.parametrize(
    "text",
    [
        b'{"keyVaultName": "kv1", "tokenExpiry": "2030", "protectedSettingsCertThumbprint": "AB"}',
        b"Provisioning.DeleteRootPassword=y\nProvisioning.SshHostKeyPairType=rsa\n",
        b"Provisioning.PasswordCryptId=6\nOS.EnableFirewall=y\n",
        b"2026-11-26T09:00:00Z INFO ExtHandler Downloading https://a.blob/x/manifest.xml\n",
        b'"protectedSettings": "***REDACTED***"',
        b"design=1 signal=2",
    ],
)
def test_useful_text_is_kept(text: bytes) -> None:
    """Names that only mention a key, switches, plain URLs and earlier redactions stay."""
    assert redact_bytes(text) == (text, 0)


def test_a_value_crossing_the_start_of_a_tail_is_still_masked() -> None:
    """Output before `start` is dropped, and a secret that began before it stays masked."""
    secret = b"LONG" * 5000
    data = b"x" * 3000 + b'"protectedSettings": "' + secret + b'"\nkept line\n'
    start = 3000 + 22 + 10000  # in the middle of the value
    r = StreamRedactor(start=start)
    out = b"".join(r.feed(data[i : i + 997]) for i in range(0, len(data), 997)) + r.finish()
    assert out == b'***REDACTED***"\nkept line\n'
