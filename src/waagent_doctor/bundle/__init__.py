"""The support bundle: spec (policy), redact (streaming redaction), archive (.tar.gz writer).

`bundle.collect.build_bundle(host, settings, output=..., report=...)` is the library entry
point the daemon's collect_logs action calls; `collect_logs_command` is the CLI's. Nothing is
imported here, so `bundle.redact` stays cheap for the evidence it scrubs in every cycle.
"""
