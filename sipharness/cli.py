"""The ``sipharness`` command: one sub-command per job, each in ``sipharness.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from sipharness import __version__

# sub-command name -> module in sipharness.commands. Each module has
#   add_arguments(parser: argparse.ArgumentParser) -> None
#   run(args: argparse.Namespace) -> int
#   HELP: str (one line) and optionally DESCRIPTION: str (shown by --help)
COMMANDS: dict[str, str] = {
    "conformance": "conformance",
    "call": "call",
    "bridge": "bridge",
    "validate": "validate",
    "ladder": "ladder",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sipharness",
        description="Prove that a SIP-to-WebRTC dial-in bridge behaves, and keeps behaving "
        "under load.",
        epilog="Run 'sipharness COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"sipharness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(f"sipharness.commands.{module_name}")
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("sipharness: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: not an error worth a traceback
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
