"""The ``greenroom`` command: ``serve`` (a published app), ``host`` (the standalone host), ``calls``."""

from __future__ import annotations

import sys

__all__ = ["main"]


USAGE = """usage:
  greenroom serve APP_DIR [--port N] [--ip ADDR] [--no-browser] [Voila options]
      publish an app as a Voila dashboard, its server notebooks on the embedded host
  greenroom host DIR [--port N] [--ip ADDR] [--GreenroomApp.<option>=<value> ...]
      the standalone host: serve DIR's server notebooks to callers that present its token
  greenroom calls DIR [--csv] [--data-dir PATH]
      print the call log of the host that serves DIR (CSV with --csv)"""


def main(argv: list[str] | None = None) -> None:
    """``greenroom serve APP_DIR ...``, ``greenroom host DIR ...`` or ``greenroom calls DIR ...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        raise SystemExit(0 if args else 2)
    if args[0] == "serve":
        from .serve import launch
    elif args[0] == "host":
        from .standalone import launch
    elif args[0] == "calls":
        from .calllog import print_calls as launch
    else:
        print(f"greenroom: unknown command {args[0]!r}\n{USAGE}", file=sys.stderr)
        raise SystemExit(2)
    launch(args[1:])
