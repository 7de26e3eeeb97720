"""The `reverie` command: a thin layer over `reverie.app.Reverie`.

Errors the user can fix (`ReverieError`, store errors) are printed as one `error:` line with a
non-zero exit; Ctrl-C exits 130 after the current unit of work was rolled back or committed.
"""

from __future__ import annotations

import sqlite3
import sys

from reverie.cli.app import app, err_console, error
from reverie.errors import ReverieError

# Command modules register themselves on `app` when imported.
from reverie.cli import wake as _wake  # noqa: E402,F401
from reverie.cli import read as _read  # noqa: E402,F401
from reverie.cli import meter as _meter  # noqa: E402,F401
from reverie.cli import dream as _dream  # noqa: E402,F401
from reverie.cli import sleep as _sleep  # noqa: E402,F401
from reverie.cli import settings_cmd as _settings_cmd  # noqa: E402,F401
from reverie.cli import serve as _serve  # noqa: E402,F401
from reverie.cli import demo as _demo  # noqa: E402,F401
from reverie.cli import report as _report  # noqa: E402,F401
from reverie.cli import users as _users  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    try:
        app(args=argv, prog_name="reverie")
    except ReverieError as exc:
        error(str(exc))
        sys.exit(exc.exit_code)
    except sqlite3.Error as exc:
        from reverie.store.db import translate

        error(str(translate(exc)))
        sys.exit(1)
    except KeyboardInterrupt:
        err_console.print("interrupted; finished work is kept", highlight=False)
        sys.exit(130)


__all__ = ["app", "main"]
