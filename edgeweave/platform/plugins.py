"""Import every module of a package so their registry decorators run: a policy is one file."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Iterable


def import_all(package: str, path: Iterable[str]) -> None:
    """Import each submodule of `package` (found on `path`) once."""
    for info in pkgutil.iter_modules(list(path)):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
