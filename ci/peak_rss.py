"""Run a command and watch the memory of its whole process tree.

``python ci/peak_rss.py --limit-gb 8 -- COMMAND...`` samples the resident set
of the command and all its descendants (summed, from ``/proc``) ten times a
second, prints the peak when the command ends, and exits with the command's
status — or with status 3 if the peak exceeded the limit. If the tree ever
holds more than the limit, it is stopped at once (SIGKILL to the process
group) so that a runaway test fails the run instead of taking the machine.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: the fields follow the last ')'.
        ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss(root: int) -> int:
    """Bytes resident in ``root`` and its descendants."""
    tree = _children()
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
        except (OSError, ValueError, IndexError):
            pass
        todo.extend(tree.get(pid, []))
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-gb", type=float, required=True)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    limit = int(args.limit_gb * (1 << 30))
    proc = subprocess.Popen(command, start_new_session=True)
    peak, exceeded = 0, False
    while proc.poll() is None:
        rss = tree_rss(proc.pid)
        peak = max(peak, rss)
        if rss > limit and not exceeded:
            exceeded = True
            print(
                f"\npeak_rss: the run holds {rss / (1 << 30):.2f} GiB, over {args.limit_gb} GiB: stopping it",
                file=sys.stderr,
                flush=True,
            )
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(0.1)
    print(f"peak_rss: {peak / (1 << 30):.2f} GiB at most (limit {args.limit_gb} GiB)", file=sys.stderr)
    if exceeded or peak > limit:
        return 3
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
