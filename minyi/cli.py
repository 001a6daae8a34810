"""The `minyi` command line: one subcommand group per module in minyi.commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from minyi.commands import CommandError


def build_parser() -> argparse.ArgumentParser:
    from minyi.commands import (
        console,
        db,
        demo,
        export,
        grid,
        invite,
        link,
        nlp,
        progress,
        project,
        push,
        report,
        run,
        survey,
        user,
    )

    parser = argparse.ArgumentParser(prog="minyi", description="民意 Minyi: 稳评民意调查")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for module in (
        db,
        project,
        grid,
        survey,
        link,
        invite,
        push,
        progress,
        export,
        run,
        demo,
        nlp,
        user,
        console,
        report,
    ):
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
    except CommandError as error:
        print(f"minyi: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`minyi export … | head`): stop quietly, as other command-line tools do.
        # Python would complain again when it flushes stdout at exit, so point stdout at nothing.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return code


if __name__ == "__main__":
    sys.exit(main())
