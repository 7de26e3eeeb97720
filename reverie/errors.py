"""The one exception type users see.

Anything raised as `ReverieError` is bad input or a bad state the user can fix; the CLI prints
its message as a single `error:` line and exits non-zero, never with a traceback.
"""


class ReverieError(Exception):
    """A problem the user can act on. The message is one line and says what to do."""

    exit_code = 1
