"""Streaming redaction: secrets are masked while bytes flow through, in flat memory.

Why not a regex per line: a protectedSettings blob or a one-line JSON file can be megabytes
long, and Python's regex engine would crawl over gigabytes of logs. Instead cheap literal
anchors (spec.TOKEN_ANCHORS...) are searched in case-folded text; only around an anchor is a
trigger matched (`"storageAccountKey": "`, `&sig=`, `<UserPassword>`, `http://user:`...),
and the value after it is dropped character by character until its terminator, however many
chunks later that comes. The text of a trigger is kept; only the value becomes ***REDACTED***.

detect-secrets (Yelp) was considered for issue 11 and not adopted: its scanners work on whole
lines held in memory and run every plugin's regex over each line (the slow path this module
exists to avoid), and its keyword and high-entropy plugins report findings for humans rather
than rewriting a stream. The forms it covers that matter here (PEM blocks of any kind, Basic
auth, Authorization headers, secret-named keys) are implemented below as anchors and triggers.
(Registry availability was not checked: time.)
"""

from __future__ import annotations

import re
from re import Pattern
from typing import Optional

from waagent_doctor.bundle import spec

# Lower-case, and fold the query separators ? and ; (as in &amp;) into &.
_FOLD = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ?;", b"abcdefghijklmnopqrstuvwxyz&&")
# Searched one by one with bytes.find (a regex alternation is several times slower).
_ANCHOR_LIST = (
    *spec.TOKEN_ANCHORS,
    *spec.SAS_SEPARATOR_ANCHORS,
    spec.URL_ANCHOR,
    spec.PEM_ANCHOR,
)
# user:password@host without a scheme: found at its @, the value lies before it.
_AT = b"@"
_NOSCHEME = re.compile(rb"[A-Za-z0-9_.%~+\-]{1,64}:(?P<v>[^\s/@\"'<>:]{1,128})\Z")

# Bytes that can be part of a key token: storageAccountKey, Provisioning.DeleteRootPassword.
_ISKEY = bytes(
    1 if (chr(c).isascii() and (chr(c).isalnum() or chr(c) in "_.-")) else 0 for c in range(256)
)
_MAX_KEY = 120

# Triggers, matched at the start of the key token that holds the anchor.
# "key": "v"   \"key\":\"v\"   'key': 'v'   &quot;key&quot;: &quot;v   "key": 123
_JSONKEY = re.compile(
    rb"(?P<key>[A-Za-z0-9_.\-]{1,120})(?P<kq>\\\"|\"|'|&quot;|%22)[ \t]{0,4}(?::|%3a)[ \t]{0,4}"
    rb"(?:(?P<open>\\\"|\"|'|&quot;|%22|\{)|(?=[A-Za-z0-9+/=._\-]))",
    re.I,
)
# key=v   AccountKey=v;   sig%3Dv   password="v"   (not base64 padding: sshKEY==)
_KEYVAL = re.compile(
    rb"(?P<key>[A-Za-z0-9_.\-]{1,120})[ \t]{0,2}(?:=|%3d)(?!=)[ \t]{0,2}(?P<open>\"|'|&quot;)?",
    re.I,
)
# <UserPassword>v</UserPassword>   <wa:CustomData attr="x">v
_XMLELEM = re.compile(
    rb"(?P<key>[A-Za-z0-9_.\-]{1,120})(?:[ \t\r\n][^<>]{0,200})?>(?=[ \t\r\n]{0,64}[^<\s])", re.I
)
# Authorization: Bearer eyJ...
_BEARER = re.compile(rb"(?P<key>bearer|basic|sharedkey)[ \t]{1,4}(?=[A-Za-z0-9._~+/\-])", re.I)
# --password X   --db-password X (command lines)   password: X (YAML)
_FLAG = re.compile(rb"(?P<key>--[A-Za-z0-9_.\-]{1,118})(?:[ \t]{1,4}|=)(?=[^\s\"'-])")
_YAML = re.compile(rb"(?P<key>[A-Za-z0-9_.\-]{1,120}):[ \t]{1,4}(?=[^\s\"'{\[|>&*])")
# Authorization: / Proxy-Authorization: just before Basic or SharedKey (not "basic setup").
_AUTH_BEFORE = re.compile(rb"authorization:[ \t]{0,4}$", re.I)
# http://user:password@proxy:3128
_USERINFO = re.compile(rb"://(?=[^\s/@\"'<>]{1,256}@)")
# -----BEGIN RSA PRIVATE KEY-----
_PEM = re.compile(rb"-----BEGIN [A-Z0-9 ]{0,40}-----", re.I)

# Values: every alternative consumes exactly one byte, so any position inside a value is a
# safe place to cut between chunks. Each stops at its terminator (kept in the output).
_VALUES: dict[str, Pattern[bytes]] = {
    "sas": re.compile(rb"(?:[A-Za-z0-9%+/=_.~:\-]|\\(?=/))*"),
    "url": re.compile(rb"[^\s\"'<>;]*"),
    "token": re.compile(rb"(?:[^\s;&\"'<>\\]|\\(?![\"']))*"),
    "dq": re.compile(rb"(?:[^\"\\]|\\|(?<=\\)\")*"),
    "edq": re.compile(rb"(?:[^\"\\]|\\(?!\"))*"),
    "sq": re.compile(rb"(?:[^'\\]|\\|(?<=\\)')*"),
    "xq": re.compile(rb"[^&\"<]*"),
    "elem": re.compile(rb"[^<]*"),
    "bare": re.compile(rb"[A-Za-z0-9+/=._~\-]*"),
    "userinfo": re.compile(rb"[^\s/@\"'<>]*"),
    "pq": re.compile(rb"(?:[^%\"\s]|%(?!22))*"),
    # "protectedSettings": {...}: up to the first } (a nested object's rest is not covered).
    "obj": re.compile(rb"[^}]*"),
    "pem": re.compile(rb"(?:[^\-]|-(?!----END))*"),
}
_OPEN_KIND = {
    b'"': "dq",
    b'\\"': "edq",
    b"'": "sq",
    b"&quot;": "xq",
    b"%22": "pq",
    b"{": "obj",
}

# Unprocessed bytes kept back at the end of each round: the longest trigger after its anchor
# plus the lookahead any decision needs. Processed bytes kept before: the longest key.
_HOLD = 1024
_CTX = 256
_LOOK = 8
_NOT_SECRET = frozenset(v.encode() for v in spec.NOT_SECRET_VALUES)


def _secret_kind(key: bytes, kind: str, prev: int) -> Optional[str]:
    """The value kind when a key names a secret, else None (keyVaultName, SshHostKeyPair)."""
    k = key.lower().decode("ascii", "replace")
    if kind == "keyval":
        if prev in b"?&;" and k in spec.SAS_PARAMS:
            return "sas"
        if k.startswith("u0026") and k[5:] in spec.SAS_PARAMS and prev == ord("\\"):
            return "sas"
        if k.endswith("sig"):
            return "sas"
        if k.endswith("signature"):
            return "url"
    if kind == "bearer":
        return "bare" if k == "bearer" else "token"
    if k.endswith(spec.SECRET_KEY_SUFFIXES):
        return "generic"
    return None


class StreamRedactor:
    """Redacts one stream fed in chunks; `count` is the number of values masked.

    Output for input before `start` (a byte offset of the stream) is dropped: a tail is read
    from a little earlier so that a secret that began before the cut is still recognised.
    """

    def __init__(self, start: int = 0) -> None:
        self.count = 0
        self._start = start
        self._pending = b""
        self._ctx = b""
        self._abs = 0  # stream offset of _pending[0]
        self._mask: Optional[Pattern[bytes]] = None
        self._owed = False  # a value began before `start`: its marker is due once past it

    def feed(self, data: bytes) -> bytes:
        """Redact a chunk; returns what can be released so far (may be empty)."""
        return self._run(data, final=False)

    def finish(self) -> bytes:
        """Release the rest at the end of the stream."""
        return self._run(b"", final=True)

    # -- internals ------------------------------------------------------------------------
    def _emit(self, out: list[bytes], buf: bytes, a: int, b: int, abs0: int) -> None:
        cut = self._start - abs0
        if b <= cut:
            return
        out.append(buf[max(a, cut) : b])

    def _marker(self, out: list[bytes], v_abs: int) -> None:
        self.count += 1
        if v_abs >= self._start:
            out.append(spec.REDACTED)
        else:
            self._owed = True

    def _trigger(self, buf: bytes, anchor: bytes, h: int) -> Optional[tuple[int, str]]:
        """(value start, value kind) for a trigger around the anchor at h, or None."""
        if anchor == _AT:
            if h + 1 >= len(buf) or not _ISKEY[buf[h + 1]]:
                return None
            m = _NOSCHEME.search(buf, max(0, h - 200), h)
            return (m.start("v"), "userinfo") if m else None
        if anchor == spec.URL_ANCHOR:
            m = _USERINFO.match(buf, h)
            return (m.end(), "userinfo") if m else None
        if anchor == spec.PEM_ANCHOR:
            m = _PEM.match(buf, h)
            return (m.end(), "pem") if m else None
        if anchor in spec.SAS_SEPARATOR_ANCHORS:
            start = h + 1
        else:
            start, lo = h, max(0, h - _MAX_KEY)
            while start > lo and _ISKEY[buf[start - 1]]:
                start -= 1
        prev = buf[start - 1] if start > 0 else 0
        m = _JSONKEY.match(buf, start)
        if m and _secret_kind(m.group("key"), "json", prev):
            opener = m.group("open")
            return m.end(), (_OPEN_KIND[opener.lower()] if opener else "bare")
        m = _KEYVAL.match(buf, start)
        if m:
            kind = _secret_kind(m.group("key"), "keyval", prev)
            if kind:
                opener = m.group("open")
                if opener:
                    return m.end(), _OPEN_KIND[opener.lower()]
                return m.end(), ("token" if kind == "generic" else kind)
        if prev in b"<:":
            m = _XMLELEM.match(buf, start)
            if m and _secret_kind(m.group("key"), "xml", prev):
                return m.end(), "elem"
        m = _FLAG.match(buf, start)
        if m and _secret_kind(m.group("key"), "flag", prev):
            return m.end(), "token"
        m = _YAML.match(buf, start)
        if m and _secret_kind(m.group("key"), "yaml", prev):
            return m.end(), "token"
        m = _BEARER.match(buf, start)
        if m and _secret_kind(m.group("key"), "bearer", prev):
            if m.group("key").lower() != b"bearer" and not _AUTH_BEFORE.search(
                buf, max(0, start - 40), start
            ):
                return None
            return m.end(), ("bare" if m.group("key").lower() == b"bearer" else "token")
        return None

    def _run(self, data: bytes, final: bool) -> bytes:
        buf = self._ctx + self._pending + data
        base = len(self._ctx)
        abs0 = self._abs - base  # stream offset of buf[0]
        n = len(buf)
        if not final and n - base < 2 * _HOLD:
            self._pending = buf[base:]
            return b""
        limit = n if final else n - _HOLD
        out: list[bytes] = []
        pos = base
        search_from = base
        hits = _hits(buf.translate(_FOLD), base, limit, n)
        i = 0
        while True:
            if self._mask is not None:
                end = _end(self._mask, buf, pos)
                if not final and end >= n - _LOOK:
                    # The value may go on in the next chunk: drop what is surely value.
                    pos = max(pos, n - _LOOK)
                    if self._owed and abs0 + pos > self._start:
                        out.append(spec.REDACTED)
                        self._owed = False
                    break
                if self._owed and abs0 + end > self._start:
                    out.append(spec.REDACTED)
                self._owed = False
                self._mask = None
                pos = search_from = end
                continue
            nxt = max(search_from, pos)
            while i < len(hits) and hits[i][0] < nxt:
                i += 1
            if i == len(hits):
                break
            h, anchor = hits[i]
            i += 1
            search_from = h + 1
            hit = self._trigger(buf, anchor, h)
            if hit is None:
                continue
            v, kind = hit
            if v < pos or buf.startswith(spec.REDACTED, v):
                continue
            pattern = _VALUES["dq" if kind == "generic" else kind]
            end = _end(pattern, buf, v)
            if end == v:
                continue
            if (end < n or final) and buf[v:end].lower() in _NOT_SECRET:
                continue
            self._emit(out, buf, pos, v, abs0)
            self._marker(out, abs0 + v)
            pos = v
            self._mask = pattern
        if self._mask is None and pos < limit:
            self._emit(out, buf, pos, limit, abs0)
            pos = limit
        self._pending = buf[pos:]
        self._ctx = buf[max(0, pos - _CTX) : pos]
        self._abs = abs0 + pos
        return b"".join(out)


def _end(pattern: Pattern[bytes], buf: bytes, pos: int) -> int:
    """Where a value that starts at pos ends (the patterns match the empty string too)."""
    m = pattern.match(buf, pos)
    return m.end() if m else pos


def _hits(low: bytes, lo: int, hi: int, n: int) -> list[tuple[int, bytes]]:
    """Positions in [lo, hi) where an anchor starts, in order; @ up to 256 bytes further,
    because its value lies before it and may begin before hi."""
    found: list[tuple[int, bytes]] = []
    j = low.find(_AT, lo)
    while 0 <= j < min(n, hi + 256):
        found.append((j, _AT))
        j = low.find(_AT, j + 1)
    for anchor in _ANCHOR_LIST:
        j = low.find(anchor, lo)
        while 0 <= j < hi:
            found.append((j, anchor))
            j = low.find(anchor, j + 1)
    found.sort()
    return found


def redact_bytes(data: bytes) -> tuple[bytes, int]:
    """Redact a whole (small) buffer; returns the text and the number of values masked."""
    r = StreamRedactor()
    out = r.feed(data) + r.finish()
    return out, r.count
