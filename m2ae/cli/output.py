"""How a command reports: its result as JSON (``--json``) or as readable text, and the exit codes."""
from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ..jsonable import to_jsonable

EXIT_BAD_INPUT = 2


def emit(result: Any, as_json: bool, human: Callable[[Any], str] | None = None) -> None:
    """Print a command's result as JSON (``--json``, or when there is no text form) or as text."""
    if as_json or human is None:
        print(json.dumps(to_jsonable(result), indent=2))
    else:
        print(human(result))
