"""How every ``distill`` command fails: one line that names the fix, and an exit code that says whose fix.

Input and usage problems exit 2, failures while running exit 1, Ctrl-C exits 130 with the command that
continues the run. No traceback unless ``distill --debug`` (or ``DISTILL_DEBUG=1``): a traceback is for
us, the line is for the user.
"""

from __future__ import annotations

import errno
import functools
import os
from collections.abc import Callable
from typing import NoReturn, ParamSpec, TypeVar

import typer

from agent.errors import DistillError

P = ParamSpec("P")
R = TypeVar("R")


class _Debug:
    on = os.environ.get("DISTILL_DEBUG", "") not in ("", "0")


def set_debug(on: bool) -> None:
    _Debug.on = _Debug.on or on


def fail(problems: str | list[str], code: int = 2) -> NoReturn:
    """Print each problem as one ``error:`` line on stderr and exit with ``code``."""
    from rich.markup import escape

    from agent.console import console

    for line in [problems] if isinstance(problems, str) else problems:  # user text may hold [brackets]
        console.print(f"[red]error:[/] {escape(line)}", soft_wrap=True, markup=True, highlight=False)
    raise typer.Exit(code)


def _fail_plain(message: str, code: int) -> NoReturn:
    from agent.console import console

    console.print(message, soft_wrap=True, markup=False, highlight=False)
    raise typer.Exit(code)


def handles_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Wrap a command so a user-fixable failure prints one line instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except DistillError as exc:
            if exc.exit_code == 130:
                _fail_plain(str(exc), exc.exit_code)
            fail(exc.problems, exc.exit_code)
        except KeyboardInterrupt:
            _fail_plain("interrupted", 130)
        except OSError as exc:
            if _Debug.on:
                raise
            fail(_os_problem(exc), 1)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:
            if _Debug.on:
                raise
            fail(
                f"unexpected {type(exc).__name__}: {exc} — rerun with `distill --debug …` for the traceback and "
                "report it; a run stopped by this continues with `distill resume RUN_DIR`",
                1,
            )

    return wrapper


def _os_problem(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return f"disk full{where} — free some space, then `distill resume RUN_DIR` continues where it stopped"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{where} — choose a folder you can write to, or fix its permissions"
    return f"{exc.strerror or exc}{where}"
