"""Errors a user can fix; the CLI prints them as one line and exits with code 2."""

from typing import Optional


class UserError(Exception):
    """Bad input: the message names the field, the value and what is allowed."""


class RunFailed(Exception):
    """A run that started could not go on (a lost driver, a full disk); the message says how to resume."""


class RunLost(RunFailed):
    """The run's driver actor is gone (its node or process died): nothing the run did was wrong, and a
    fresh start from the last checkpoint goes on."""


def lost(error: BaseException) -> bool:
    """Whether the error, or one it was raised from, is a lost driver."""
    seen: Optional[BaseException] = error
    while seen is not None:
        if isinstance(seen, RunLost):
            return True
        seen = seen.__cause__
    return False


def last_line(error: BaseException) -> str:
    """The last non-empty line of an error's message (Ray wraps a remote error in its traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
