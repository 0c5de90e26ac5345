"""Errors a user can fix; the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """Bad input: the message names the field, the value and what is allowed."""


class RunFailed(Exception):
    """A run that started could not go on (a lost driver, a full disk); the message says how to resume."""
