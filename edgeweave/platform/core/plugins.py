"""Users' own parts: modules a config names under `plugins:` (or `--plugin`), imported before it is validated.

A plugin registers models, data sets, partitioners, resource models and methods into the same
registries, with the same decorators, as the built-in parts. A plugin is an importable module
name, or a path to a `.py` file (relative to the config's folder, else to the working directory;
recorded as an absolute path). Its source is read once and travels inside the config: unpickling
a config imports its plugins first, so every process of a run (the driver, each worker, a
replacement, a Tune trial, another node) runs the same code before it reads anything the plugin
defines. What a plugin defines reaches other processes inside the config or as built-in types
(a data set returns `ArrayData` itself, not a subclass).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from edgeweave.platform.core.errors import UserError
from edgeweave.platform.core.registry import Registry

FIELD = "plugins"


@dataclass(frozen=True)
class Plugin:
    """One plugin as resolved: how the config names it, the module it is imported as, its source."""

    spec: str  # a module name, or a .py path as the resolved config records it
    module: str
    source: str
    is_file: bool


def _module_name(path: str, source: str) -> str:
    """The module name of a plugin file: the same in every process of a run, another for another file or
    an edited one (a process that reads the edited file runs it again)."""
    stem = re.sub(r"\W", "_", Path(path).stem)
    digest = hashlib.sha1(path.encode() + b"\0" + source.encode()).hexdigest()[:10]
    return f"edgeweave_plugin_{stem}_{digest}"


def _file_spec(spec: str, base: Optional[Path]) -> Optional[str]:
    """The plugin file `spec` names (relative to `base`, else to the working directory), as an absolute path."""
    for candidate in ([base / spec] if base is not None else []) + [Path(spec)]:
        if candidate.is_file():
            return str(candidate.resolve())
    return None


def resolve(specs: Sequence[str], base: Optional[Path] = None, carried: Sequence[Plugin] = ()) -> list[Plugin]:
    """Read each plugin's source; a file that is not there or a module that cannot be found is one line.

    A spec among `carried` (plugins that travelled with a config) is taken from there, not from disk.
    """
    plugins, seen = [], set()
    known = {p.spec: p for p in carried}
    for spec in specs:
        if not isinstance(spec, str) or not spec:
            raise UserError(f"{FIELD} = {spec!r}: expected a module name or a path to a .py file")
        if spec in known:
            plugin = known[spec]
        elif spec.endswith(".py"):
            path = _file_spec(spec, base)
            if path is None:
                where = f" (looked in {base} and in the working directory)" if base is not None else ""
                raise UserError(f"{FIELD} = {spec!r}: no such file{where}")
            source = Path(path).read_text()
            plugin = Plugin(path, _module_name(path, source), source, True)
        else:
            try:
                found = importlib.util.find_spec(spec)
            except (ImportError, ValueError):
                found = None
            if found is None:
                raise UserError(f"{FIELD} = {spec!r}: no such module; name an importable module or a .py file")
            origin = Path(found.origin) if found.origin and found.origin.endswith(".py") else None
            plugin = Plugin(spec, spec, origin.read_text() if origin else "", False)
        if plugin.module not in seen:
            seen.add(plugin.module)
            plugins.append(plugin)
    return plugins


def load(plugins: Sequence[Plugin]) -> "Loaded":
    """Import the plugins not yet imported in this process; files from the source that travelled."""
    for p in plugins:
        if p.module in sys.modules:
            continue
        try:
            if p.is_file:
                module = types.ModuleType(p.module)
                module.__file__ = p.spec
                sys.modules[p.module] = module  # before running it: its classes name it as their module
                try:
                    exec(compile(p.source, p.spec, "exec"), module.__dict__)
                except BaseException:
                    del sys.modules[p.module]
                    raise
            else:
                importlib.import_module(p.module)
        except UserError as e:
            Registry.forget(p.module)
            raise UserError(f"{FIELD} = {p.spec!r}: {e}") from None
        except Exception as e:
            Registry.forget(p.module)  # what it registered before it failed: a fixed copy may register it again
            raise UserError(f"{FIELD} = {p.spec!r}: importing it failed ({type(e).__name__}: {e})") from None
    return Loaded(plugins)


class Loaded(tuple):
    """A config's plugins, imported. Unpickled, it imports them again first: pickle it before anything
    a plugin defines (ExperimentConfig does), and the rest of the stream finds the plugin's classes."""

    def __reduce__(self) -> tuple:
        return load, (tuple(self),)
