"""``zarr-meta scheduler`` and ``zarr-meta executor``: the roles of a Ballista cluster that
runs ``sd_read_zarr_meta`` SQL (the ``zarr-meta-cluster`` binary, run in this process's place)."""

from __future__ import annotations

import argparse
import os
from typing import Any

from sedonadb_zarr_meta._cli.args import describe, epilog, positive_int

__all__ = ["Executor", "Scheduler"]


def _exec(args: list[str]) -> int:
    from sedonadb_zarr_meta.distributed import binary

    path = binary()
    os.execv(path, [path, *args])
    return 1  # not reached: execv replaces this process


class Scheduler:
    NAME = "scheduler"

    @staticmethod
    def add_parser(commands: Any) -> argparse.ArgumentParser:
        parser = commands.add_parser(
            Scheduler.NAME,
            help="run a Ballista scheduler that plans sd_read_zarr_meta queries",
            description=describe(
                "Run a Ballista 54.1 scheduler with this package's codecs and functions. Its gRPC "
                "service and REST API (/api/executors, /api/jobs) share the port. Needs the "
                "zarr-meta-cluster binary (cargo install --path rust/sedonadb-zarr-meta-cluster)."
            ),
            epilog=epilog(
                """
                examples:
                  zarr-meta scheduler --port 20050
                  zarr-meta executor --scheduler 127.0.0.1:20050 --port 20051
                """
            ),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument("--port", type=positive_int, default=50050, help="port (default 50050)")
        parser.add_argument(
            "--executor-timeout",
            type=positive_int,
            help="seconds without a heartbeat after which an executor is taken for dead (default 20)",
        )
        return parser

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        argv = ["scheduler", "--host", args.host, "--port", str(args.port)]
        if args.executor_timeout:
            argv += ["--executor-timeout", str(args.executor_timeout)]
        return _exec(argv)


class Executor:
    NAME = "executor"

    @staticmethod
    def add_parser(commands: Any) -> argparse.ArgumentParser:
        parser = commands.add_parser(
            Executor.NAME,
            help="run a Ballista executor that reads its share of each store",
            description=describe(
                "Run a Ballista 54.1 executor with this package's codecs and functions, serving the "
                "scheduler at HOST:PORT. It reads only the row ranges of the tasks it is given. "
                "Credentials for object stores come from its environment or the query's options."
            ),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        parser.add_argument("--scheduler", required=True, metavar="HOST:PORT", help="the scheduler")
        parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
        parser.add_argument(
            "--port", type=positive_int, default=50051, help="Arrow Flight port (default 50051)"
        )
        parser.add_argument("--grpc-port", type=positive_int, help="gRPC port (default: PORT + 1)")
        parser.add_argument("--slots", type=positive_int, help="tasks run at once (default: the cores)")
        parser.add_argument("--work-dir", help="where shuffle files go (default: a temporary directory)")
        return parser

    @staticmethod
    def run(args: argparse.Namespace) -> int:
        argv = ["executor", "--scheduler", args.scheduler, "--host", args.host, "--port", str(args.port)]
        for flag, value in (
            ("--grpc-port", args.grpc_port),
            ("--slots", args.slots),
            ("--work-dir", args.work_dir),
        ):
            if value is not None:
                argv += [flag, str(value)]
        return _exec(argv)
