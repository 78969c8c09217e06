"""The entry point: parse the command line, dispatch to the command's module, and turn every
outcome into an exit status (errors as one line on stderr)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from sedonadb_zarr_meta._cli import info, ingest, query, serve, verify
from sedonadb_zarr_meta._cli.args import PROG, Parser, UsageError, epilog, join_bbox_argument, report
from sedonadb_zarr_meta._cli.cluster import Executor, Scheduler

__all__ = ["COMMANDS", "build_parser", "main", "parse_args", "run"]

#: The subcommands, in the order ``--help`` lists them: each module has ``add_parser`` and ``run``.
COMMANDS = {module.NAME: module for module in (info, ingest, query, verify, serve, Scheduler, Executor)}


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The ``zarr-meta`` parser and its subcommands' parsers by name."""
    from sedonadb_zarr_meta import __version__

    parser = Parser(
        prog=PROG,
        description="Turn STAC item metadata into a Zarr 'meta' group and query it with spatial SQL.",
        epilog=epilog(
            """
            examples:
              zarr-meta ingest examples/stac/items.ndjson catalogue.zarr --sort
              zarr-meta info catalogue.zarr
              zarr-meta query catalogue.zarr "SELECT id, platform FROM meta WHERE \\"eo:cloud_cover\\" < 20"
              zarr-meta verify catalogue.zarr

            Run 'zarr-meta COMMAND --help' for a command's options. Errors are one line on stderr
            (exit status 1; 2 for usage errors); ZARR_META_DEBUG=1 adds the traceback.
            """
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    subparsers = {}
    for name, module in COMMANDS.items():
        subparsers[name] = module.add_parser(commands)
        subparsers[name].set_defaults(func=module.run)
    return parser, subparsers


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse ``argv`` (without the program name). Exits with status 2 on usage errors."""
    parser, subparsers = build_parser()
    argv = list(argv)
    if argv and argv[0] in subparsers:
        # Intermixed: options may stand between SRC and URI, which argparse's plain
        # parsing refuses when a positional is optional (as URI is for ingest).
        args = subparsers[argv[0]].parse_intermixed_args(join_bbox_argument(argv[1:]))
        args.command = argv[0]
        return args
    return parser.parse_args(argv)


def _message(error: BaseException) -> str:
    text = str(error).strip()
    if isinstance(error, KeyError) and error.args:
        text = f"missing {error.args[0]!r}"
    return text or type(error).__name__


class _Interrupt:
    """Ctrl-C, remembered: query engines that see it cancel and raise errors of their own."""

    seen = False

    @classmethod
    def handler(cls, signum: int, frame: Any) -> None:
        cls.seen = True
        raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``zarr-meta`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    previous = None
    if threading.current_thread() is threading.main_thread():
        if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
            previous = signal.signal(signal.SIGINT, _Interrupt.handler)
    _Interrupt.seen = False
    try:
        return _main(sys.argv[1:] if argv is None else argv)
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def _quiet_stdout() -> int:
    """The reader of stdout went away (e.g. ``| head``): stop quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass
    return 141


def _main(argv: Sequence[str]) -> int:
    debug = os.environ.get("ZARR_META_DEBUG", "") not in ("", "0")
    command = PROG
    try:
        args = parse_args(argv)
        command = f"{PROG} {args.command}"
        return int(args.func(args))
    except SystemExit as e:  # --help, --version, usage errors (already reported)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return _quiet_stdout()
    except UsageError as e:
        if debug:
            traceback.print_exc()
        report(f"{_message(e)} (see '{command} --help')")
        return 2
    except Exception as e:
        if _Interrupt.seen:  # e.g. "Operation cancelled" from an engine that saw Ctrl-C
            return 130
        if debug:
            traceback.print_exc()
        report(_message(e))
        return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())
