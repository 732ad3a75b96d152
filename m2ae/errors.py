"""Errors users can act on. Anything raised as InputError is shown as one line, never a traceback."""
from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a malformed file, an unknown column, an absurd rate, a wrong-shaped array.

    The message is one line that names the input and what is wrong, e.g.
    ``"bidmc.csv: no ECG or PPG column recognised (columns: Time, RESP)"``.
    """


class ModelMismatchError(InputError):
    """An artefact (index, heads) was built by a different model version than the one loaded."""
