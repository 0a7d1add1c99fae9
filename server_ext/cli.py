"""The ``greenroom`` command."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """``greenroom serve APP_DIR ...`` publishes an app as a Voilà dashboard."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print("usage: greenroom serve APP_DIR [--port N] [--ip ADDR] [--no-browser] [Voila options]")
        raise SystemExit(0 if args else 2)
    if args[0] != "serve":
        print(f"greenroom: unknown command {args[0]!r}; try: greenroom serve APP_DIR", file=sys.stderr)
        raise SystemExit(2)
    from .serve import launch

    launch(args[1:])
