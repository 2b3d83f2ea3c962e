"""The io module's errors: a file that cannot be ported, and a missing optional dependency."""

from __future__ import annotations

import os
from typing import Any


class KerasFileError(ValueError):
    """A Keras file that cannot be read or ported: corrupt, of the wrong kind,
    missing a section, or not matching the parameters it is ported onto.

    The message names the file and what is missing or wrong.  Nothing is
    returned half-filled when it is raised.

    Attributes:
      path: the file (``None`` for a checkpoint object without one).
    """

    def __init__(self, path: Any, message: str):
        self.path = None if path is None else os.fspath(path)
        super().__init__(message if path is None else f"{self.path}: {message}")


def json_kind(value: Any) -> str:
    """What JSON calls ``value``'s type ("an object", "a list", "null", ...), for an error naming
    what a file holds where something else belongs."""
    if value is None:
        return "null"
    for kind, name in ((dict, "an object"), (list, "a list"), (str, "a string"), (bool, "a boolean"), ((int, float), "a number")):
        if isinstance(value, kind):
            return name
    return f"a {type(value).__name__}"


class MissingDependencyError(ImportError):
    """An optional dependency a file format needs is not installed."""


def missing(package: str, extra: str, what: str) -> MissingDependencyError:
    """The error for ``package`` missing, naming the extra that installs it."""
    return MissingDependencyError(
        f"{what} needs {package}, which is not installed: pip install 'jaxopt_keras[{extra}]' (or pip install {package})."
    )
