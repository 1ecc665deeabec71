"""``python -m lifeboat``: the ``lifeboat`` command line, byte for byte."""

from __future__ import annotations

import signal
import sys


def main() -> int:
    from . import _native

    # Hand SIGINT back to the default action: the CLI installs its own Ctrl-C
    # handling (cancel cleanly, exit 130) exactly as the binary does, and
    # Python's handler must not turn it into a KeyboardInterrupt afterwards.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    return _native.run_cli(["lifeboat", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())
