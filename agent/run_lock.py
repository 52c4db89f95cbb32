"""One writer per run directory: an OS-level lock that `run` and `resume` hold while they work.

``fcntl.flock`` on ``<run>/run.lock``: the kernel releases it when the holder exits, however it exits,
so a lock left by a killed process is recovered by the next ``resume`` with nothing to clean up. The
file holds the holder's PID, so a refused second writer can say whom it waited for. Read-only commands
(``status``, ``strategies list/show/export``, ``predict``) never take it: SQLite's WAL lets them read
while the run writes.
"""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from agent.errors import InputError

LOCK_FILE = "run.lock"


class RunDirBusy(InputError):
    """Another process holds the run directory's lock."""


def holder_pid(run_dir: Path) -> int | None:
    """The PID written by the lock's current (or last) holder, if any."""
    try:
        text = (run_dir / LOCK_FILE).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s writer lock for the block; refuse at once (exit 2) if another process holds it."""
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            pid = holder_pid(run_dir)
            who = f"process {pid}" if pid else "another process"
            raise RunDirBusy(
                f"{run_dir} is in use by {who} (a `distill run` or `resume`) — wait for it to finish or stop it "
                f"(kill {pid or 'PID'}), then `distill resume {run_dir}`; `distill status {run_dir}` works meanwhile"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the flock
