"""The synthloop command: parse the arguments, run one sub-command, turn its errors into
exit codes.

Heavy imports (torch, Prefect, Great Expectations) happen inside the commands that need
them, so synthloop --help is instant. Exit codes (the help's epilog says the same to
users): 0 done; 1 a batch failed validation; 2 an error that is the user's to fix (bad
input, a bad option, a catalog conflict, an existing output; one line naming the file or
option); 3 anything else, which is a bug or a broken environment and keeps its traceback.
SYNTHLOOP_DEBUG=1 shows the traceback of every error.
"""

from __future__ import annotations

import gc
import os
import sys
import traceback

from synthloop.cli.common import EXIT_BUG, EXIT_ERROR, quiet_mlflow
from synthloop.cli.parser import build_parser
from synthloop.errors import SynthloopError

__all__ = ["build_parser", "main", "run"]

#: errors a person fixes by changing the input or the command: shown as one line (and an
#: OSError that names its file: a path the user gave that cannot be read or written)
USER_ERRORS = (SynthloopError, FileExistsError, FileNotFoundError)


def _is_user_error(e: BaseException) -> bool:
    return isinstance(e, USER_ERRORS) or (isinstance(e, OSError) and bool(e.filename))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    debug = bool(os.environ.get("SYNTHLOOP_DEBUG"))
    if not (debug or getattr(args, "verbose", False)):
        quiet_mlflow()
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"synthloop {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001  (sorted below: the user's to fix, or a bug)
        if _is_user_error(e):
            if debug:
                traceback.print_exc()
            print(f"synthloop {args.command}: error: {e}", file=sys.stderr)
            return EXIT_ERROR
        traceback.print_exc()
        print(f"synthloop {args.command}: unexpected {type(e).__name__} (a bug, or a broken "
              "environment; the traceback is above)", file=sys.stderr)
        return EXIT_BUG


def run() -> int:
    """:func:`main` as a process's entry point (the ``synthloop`` script, ``python -m
    synthloop.cli``). Once the command is done, the objects alive are frozen out of the
    garbage collector: the interpreter's final collection would otherwise walk everything
    torch created at import, ~0.3 s of every exit (``python -c "import torch"`` exits in
    0.42 s, 0.12 s frozen). Not in :func:`main`, which tests and callers run in-process
    and whose garbage must stay collectable there. A finaliser of a frozen object caught
    in a reference cycle does not run at exit; files and servers are closed by the
    commands themselves, and ``atexit`` handlers run as before."""
    code = main()
    gc.freeze()
    return code
