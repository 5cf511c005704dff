"""Run the fakes until killed: `python -m tests.fakes [name=mode ...] [--delay S]`.

Prints the ports as one JSON line, then serves. Used inside the system-test container, which
has only a loopback interface.
"""

from __future__ import annotations

import sys
import time

from tests.fakes.servers import KINDS, MODES, FakeAzure, dump_ports


def main(argv: list[str]) -> int:
    """Start the fakes with the given modes and serve forever."""
    modes: dict[str, str] = {}
    delay = 2.0
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--delay":
            delay = float(args.pop(0))
            continue
        name, _, mode = arg.partition("=")
        if name not in KINDS or mode not in MODES:
            usage = f"usage: name=mode with name in {sorted(KINDS)}, mode in {MODES}"
            print(usage, file=sys.stderr)
            return 2
        modes[name] = mode
    fakes = FakeAzure(modes, delay).start()
    print(dump_ports(fakes), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fakes.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
