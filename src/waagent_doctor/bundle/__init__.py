"""The support bundle: spec (policy), redact (streaming redaction), archive (.tar.gz writer).

`build_bundle(host, settings, output=..., report=...)` is the library entry point the
daemon's collect_logs action calls; `collect_logs_command` is the CLI's.
"""

from __future__ import annotations

from waagent_doctor.bundle.collect import (
    BundleError,
    BundleResult,
    build_bundle,
    collect_logs_command,
)

__all__ = ["BundleError", "BundleResult", "build_bundle", "collect_logs_command"]
