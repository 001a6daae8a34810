"""Subcommands of the `minyi` command line, one module per command group.

Each module has `register(subparsers)`, which adds its parsers and sets `func(args) -> int` on each.
A command that cannot do its job raises CommandError with a one-line reason for the user.
"""


class CommandError(Exception):
    """A reason, in one line, why a command could not do what was asked (exit code 1)."""
