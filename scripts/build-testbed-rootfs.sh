#!/usr/bin/env bash
# build-testbed-rootfs.sh - build (or reuse) the Debian 12 root filesystem that the system tests
# boot with systemd-nspawn (see tests/system/testbed.py).
#
# HOST REQUIREMENTS (Debian 12; install them before calling this script, as root):
#     apt-get update && apt-get install -y debootstrap systemd-container
#   - debootstrap        builds the root filesystem
#   - systemd-container  provides systemd-nspawn: this script runs the venv/pip step in a
#                        non-booted nspawn, and the tests boot the result with it
#   Also used, all in a stock Debian 12: bash, coreutils, util-linux (flock, findmnt),
#   debian-archive-keyring, ca-certificates, /usr/bin/python3 (optional: reads pyproject.toml).
#   Must run as root. Needs the Debian mirror (taken at run time from the host's apt sources) and
#   PyPI (pip, inside the build container, trusting the host's CA bundle).
#
# USAGE
#   scripts/build-testbed-rootfs.sh [--force] [--check]
#     --force  rebuild even when the stamp says the cached root filesystem is up to date
#     --check  exit 0 if the cached root filesystem is up to date, 1 if not; build nothing
#   The root filesystem path is printed on the last line of stdout; progress goes to stderr.
#
# ENVIRONMENT
#   WAAGENT_DOCTOR_TESTBED_ROOTFS  where to put it (default /var/cache/waagent-doctor/testbed-rootfs)
#   WAAGENT_DOCTOR_DEBIAN_MIRROR   override the mirror URL (default: from the host's apt sources)
#
# WHAT YOU GET
#   Debian 12 bookworm, --variant=minbase, plus systemd, dbus, python3 (3.11), python3-systemd,
#   python3-psutil, procps, iproute2 and Debian's real `waagent` package (walinuxagent.service;
#   ConditionVirtualization=microsoft keeps it from starting in the container), and a venv at
#   /opt/wd-venv (--system-site-packages, so Debian's python3-systemd is importable) holding the
#   project's runtime dependencies from PyPI (pydantic 2, ...) plus pytest.
#   Debian's python3-pydantic is deliberately NOT installed: it is pydantic 1.x and would shadow
#   nothing useful; run project code with /opt/wd-venv/bin/python and PYTHONPATH=/src/src.
#
# Idempotent: a stamp file (.wd-testbed-stamp, a hash of the recipe below and of the project's
# runtime dependencies) decides whether the cached tree is reused. Atomic: the tree is built in a
# temporary sibling directory and renamed into place; concurrent runs serialise on a flock.
set -euo pipefail

SUITE=bookworm
# Bump when the recipe changes in a way the package lists below do not show.
RECIPE_VERSION=4
DEB_PACKAGES=(
    systemd systemd-sysv dbus
    python3 python3-venv python3-systemd python3-psutil
    procps iproute2 ca-certificates
    waagent
    rpm  # tests/packaging: `rpm -i --nodeps` runs the .rpm's scriptlets under real systemd
)
# Used when pyproject.toml cannot be read; keep in step with [project].dependencies.
FALLBACK_PIP_DEPS=(
    "pydantic>=2.5,<3" "psutil>=5.9" "tenacity>=8.2" "structlog>=23.1"
    "defusedxml>=0.7" "prometheus-client>=0.17"
)
# Extras for tests that run inside the container.
EXTRA_PIP_DEPS=("tomli>=2.0" "pytest>=7.4")
VENV=/opt/wd-venv
STAMP_NAME=.wd-testbed-stamp

log() { printf 'build-testbed-rootfs: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

FORCE=0
CHECK=0
TMP=""
BUILD_LOG=""
for arg in "$@"; do
    case "$arg" in
        --force) FORCE=1 ;;
        --check) CHECK=1 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) die "unknown argument: $arg" ;;
    esac
done

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PROJECT_ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
ROOTFS=${WAAGENT_DOCTOR_TESTBED_ROOTFS:-/var/cache/waagent-doctor/testbed-rootfs}
ROOTFS=${ROOTFS%/}
if [ -z "$ROOTFS" ] || [ "$ROOTFS" = / ]; then die "refusing to use '/' as the root filesystem"; fi

# --- the recipe and its hash --------------------------------------------------------------------
pip_deps() {
    # The project's runtime dependencies, from pyproject.toml when the host python can read it.
    local py=/usr/bin/python3
    [ -x "$py" ] || py=$(command -v python3 || true)
    if [ -n "$py" ] && [ -f "$PROJECT_ROOT/pyproject.toml" ] && "$py" - "$PROJECT_ROOT/pyproject.toml" <<'EOF' 2>/dev/null
import sys
try:
    import tomllib
except ImportError:
    sys.exit(1)
with open(sys.argv[1], "rb") as f:
    deps = tomllib.load(f).get("project", {}).get("dependencies", [])
if not deps:
    sys.exit(1)
for d in deps:
    print(d)
EOF
    then
        return 0
    fi
    printf '%s\n' "${FALLBACK_PIP_DEPS[@]}"
}

mapfile -t PIP_DEPS < <(pip_deps)
PIP_DEPS+=("${EXTRA_PIP_DEPS[@]}")
RECIPE=$(printf 'recipe=%s\nsuite=%s\ndeb=%s\npip=%s\n' "$RECIPE_VERSION" "$SUITE" \
    "${DEB_PACKAGES[*]}" "$(printf '%s;' "${PIP_DEPS[@]}")")
RECIPE_HASH=$(printf '%s' "$RECIPE" | sha256sum | cut -d' ' -f1)

stamp_ok() { [ -f "$ROOTFS/$STAMP_NAME" ] && [ "$(head -n1 "$ROOTFS/$STAMP_NAME")" = "$RECIPE_HASH" ]; }

if [ "$CHECK" = 1 ]; then
    if stamp_ok; then echo "$ROOTFS"; exit 0; fi
    log "not built or out of date: $ROOTFS"; exit 1
fi
if [ "$FORCE" = 0 ] && stamp_ok; then
    log "up to date: $ROOTFS"
    echo "$ROOTFS"
    exit 0
fi

# --- preconditions ------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || die "must run as root (debootstrap and systemd-nspawn need it)"
command -v debootstrap >/dev/null || die "debootstrap not found: apt-get install -y debootstrap"
command -v systemd-nspawn >/dev/null \
    || die "systemd-nspawn not found: apt-get install -y systemd-container"

mkdir -p "$(dirname "$ROOTFS")"
# Exclusive: running testbeds hold this lock shared (tests/system/testbed.py), so the old tree is
# never swapped out from under a booted container; a second build waits for the first.
exec 9>>"$ROOTFS.lock"
if ! flock -n 9; then
    log "$ROOTFS.lock is held (another build, or a running testbed); waiting for it"
    flock 9
fi
# Somebody else may have finished the same build while we waited.
if [ "$FORCE" = 0 ] && stamp_ok; then
    log "up to date: $ROOTFS"
    echo "$ROOTFS"
    exit 0
fi

find_mirror() {
    # The mirror of the host's own apt sources whose suite is exactly $SUITE.
    if [ -n "${WAAGENT_DOCTOR_DEBIAN_MIRROR:-}" ]; then
        echo "$WAAGENT_DOCTOR_DEBIAN_MIRROR"; return 0
    fi
    local f uri=""
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v suite="$SUITE" '
            BEGIN { RS = ""; FS = "\n" }
            {
                types = ""; uris = ""; suites = ""; enabled = "yes"
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    if (match(line, /^[Tt]ypes:[ \t]*/)) types = substr(line, RLENGTH + 1)
                    else if (match(line, /^URIs:[ \t]*/)) uris = substr(line, RLENGTH + 1)
                    else if (match(line, /^[Ss]uites:[ \t]*/)) suites = substr(line, RLENGTH + 1)
                    else if (match(line, /^[Ee]nabled:[ \t]*/)) enabled = substr(line, RLENGTH + 1)
                }
                if (enabled == "no") next
                if ((" " types " ") !~ / deb /) next
                if ((" " suites " ") !~ (" " suite " ")) next
                split(uris, u, /[ \t]+/)
                print u[1]; exit
            }' "$f")
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    done
    if [ -f /etc/apt/sources.list ]; then
        uri=$(awk -v suite="$SUITE" '
            $1 == "deb" {
                i = 2
                if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' /etc/apt/sources.list)
        [ -n "$uri" ] && { echo "$uri"; return 0; }
    fi
    return 1
}
MIRROR=$(find_mirror) || die "no '$SUITE' mirror found in /etc/apt/sources.list{,.d/*.sources}"

CA_BUNDLE=""
for c in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" "${REQUESTS_CA_BUNDLE:-}" \
        /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$c" ] && [ -f "$c" ]; then CA_BUNDLE=$c; break; fi
done

# --- build into a temporary sibling, then rename ------------------------------------------------
START=$(date +%s)
TMP=$(mktemp -d "$ROOTFS.tmp.XXXXXX")
BUILD_LOG="$TMP.log"

unmount_under() {
    # Unmount anything left mounted below $1 (an interrupted debootstrap leaves /proc, /sys...).
    local m
    findmnt -rn -o TARGET 2>/dev/null | awk -v p="$1/" 'index($0, p) == 1' | sort -r \
        | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}
cleanup() {
    local rc=$?
    if [ -n "${TMP:-}" ] && [ -d "$TMP" ]; then
        unmount_under "$TMP"
        rm -rf --one-file-system "$TMP"
    fi
    if [ "$rc" != 0 ] && [ -n "$BUILD_LOG" ] && [ -f "$BUILD_LOG" ]; then
        log "build failed (rc=$rc); last lines of the build log:"
        # Never echo the mirror's address.
        tail -n 40 "$BUILD_LOG" | sed "s#${MIRROR//#/\\#}#<mirror>#g" >&2 || true
    fi
    if [ -n "$BUILD_LOG" ]; then rm -f "$BUILD_LOG"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

include=$(IFS=,; echo "${DEB_PACKAGES[*]}")
log "debootstrap $SUITE (minbase + ${#DEB_PACKAGES[@]} packages) into $TMP (mirror: host apt sources or WAAGENT_DOCTOR_DEBIAN_MIRROR)"
debootstrap --variant=minbase --components=main --include="$include" \
    "$SUITE" "$TMP" "$MIRROR" >>"$BUILD_LOG" 2>&1 || die "debootstrap failed"
log "debootstrap done after $(( $(date +%s) - START )) s"

# Files that would carry host details or reach for the network: make them inert.
printf '# no network in the testbed\n' >"$TMP/etc/resolv.conf"
printf '# packages come from the build script; the testbed has no network\n' \
    >"$TMP/etc/apt/sources.list"
echo testbed >"$TMP/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\ttestbed\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
    >"$TMP/etc/hosts"
# An empty machine-id: every boot gets a fresh one (the tree is booted with --volatile=overlay).
: >"$TMP/etc/machine-id"
rm -f "$TMP/var/lib/dbus/machine-id"
# Timers that would try apt/network work in the container are of no use; mask them.
for u in apt-daily.timer apt-daily-upgrade.timer; do
    ln -sf /dev/null "$TMP/etc/systemd/system/$u"
done

log "creating $VENV and pip-installing: ${PIP_DEPS[*]}"
nspawn_args=(-q -D "$TMP" --register=no --keep-unit --resolv-conf=bind-host --pipe
             --setenv=PIP_DISABLE_PIP_VERSION_CHECK=1 --setenv=PIP_NO_CACHE_DIR=1
             --setenv=PIP_DEFAULT_TIMEOUT=120)
if [ -n "$CA_BUNDLE" ]; then
    nspawn_args+=("--bind-ro=$CA_BUNDLE:/run/host-ca-bundle.crt"
                  --setenv=PIP_CERT=/run/host-ca-bundle.crt)
fi
for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST http_proxy https_proxy no_proxy \
         HTTP_PROXY HTTPS_PROXY NO_PROXY; do
    if [ -n "${!v:-}" ]; then nspawn_args+=("--setenv=$v=${!v}"); fi
done
# shellcheck disable=SC2016  # the single-quoted script expands its own "$0"/"$@" inside
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn "${nspawn_args[@]}" \
    /bin/sh -ec '
        python3 -m venv --system-site-packages "$0"
        "$0/bin/pip" install --quiet --prefer-binary "$@"
        "$0/bin/pip" freeze >"$0/requirements.lock"
        "$0/bin/python" -c "import pydantic, psutil, tenacity, structlog, defusedxml, prometheus_client, systemd.journal; assert pydantic.VERSION.startswith(\"2.\"), pydantic.VERSION"
    ' "$VENV" "${PIP_DEPS[@]}" >>"$BUILD_LOG" 2>&1 </dev/null \
    || die "venv/pip step failed"
log "venv done after $(( $(date +%s) - START )) s"

# Drop what only the build needed.
rm -rf "$TMP"/var/lib/apt/lists/* "$TMP"/var/cache/apt/*.bin "$TMP"/debootstrap
rm -f "$TMP/var/log/bootstrap.log"  # names the mirror
find "$TMP/var/cache/apt/archives" -name '*.deb' -delete 2>/dev/null || true
rm -rf "$TMP/root/.cache" "$TMP"/tmp/* "$TMP"/var/tmp/*
[ -x "$TMP/lib/systemd/systemd" ] || die "no systemd in the built tree"
[ -f "$TMP/lib/systemd/system/walinuxagent.service" ] || die "waagent's unit is missing"

{
    echo "$RECIPE_HASH"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) seconds=$(( $(date +%s) - START ))"
    printf '%s\n' "$RECIPE"
} >"$TMP/$STAMP_NAME"
chmod 755 "$TMP"

unmount_under "$TMP"
OLD=""
if [ -e "$ROOTFS" ]; then
    OLD=$(mktemp -u "$ROOTFS.old.XXXXXX")
    mv "$ROOTFS" "$OLD"
fi
mv "$TMP" "$ROOTFS"
TMP=""
if [ -n "$OLD" ]; then
    unmount_under "$OLD"
    rm -rf --one-file-system "$OLD"
fi
log "built $ROOTFS in $(( $(date +%s) - START )) s, $(du -sh --one-file-system "$ROOTFS" | cut -f1)"
echo "$ROOTFS"
