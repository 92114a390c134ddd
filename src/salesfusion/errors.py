"""Errors that mean "the user's input is wrong": the CLI prints them as one line and exits 2."""


class InputError(ValueError):
    """Bad user input. The message names the file, the column or value, and offending rows."""
