"""Name-to-class registries: each policy registers itself in its own module.

A package declares its built-in entries by module (`declare`), so looking one name up imports
that one module and no other: validating a config loads only the parts it names.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any, Callable, Generic, Optional, TypeVar

from pydantic import BaseModel, ConfigDict

from edgeweave.platform.core.errors import UserError

T = TypeVar("T")


class Params(BaseModel):
    """Base of every registered entry's config: strict, so unknown keys and NaN or infinite numbers are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Registry(Generic[T]):
    """Maps a name to a class and to the pydantic model of its parameters."""

    everyone: list["Registry"] = []  # every registry made, so a failed plugin's entries can be taken back

    def __init__(self, kind: str, key: str = "name") -> None:
        Registry.everyone.append(self)
        self.kind = kind
        self.key = key
        self._entries: dict[str, tuple[Any, type[Params]]] = {}
        self._modules: dict[str, str] = {}  # built in: name -> module that registers it, imported on first lookup
        self._importing: Optional[str] = None
        self._owners: dict[str, str] = {}  # name -> module that registered it

    def declare(self, name: str, module: str) -> None:
        """`module` registers `name` when imported; it is imported on the name's first lookup."""
        self._modules[name] = module

    def add(self, name: str, entry: Any, params: type[Params] = Params, module: Optional[str] = None) -> None:
        """File `entry` under `name` with its parameter model; `module` registers it (default: the caller).

        A name registered twice, or a plugin's name that is a built-in one, is a UserError naming the first
        (the plugin loader names the second).
        """
        module = module or sys._getframe(1).f_globals.get("__name__", "?")
        built_in = self._modules.get(name)
        first = self._owners.get(name, built_in)
        reloaded = first != built_in and _where(first) == _where(module)  # a plugin file run again after an edit
        if (name in self._entries and not reloaded) or (
            built_in is not None and module != built_in and self._importing != built_in
        ):
            kind = "a built-in" if first == built_in else "a"
            raise UserError(
                f"{self.kind} {name!r} clashes with {kind} {self.kind} of the same name "
                f"({_where(first)}); give it another name"
            )
        self._entries[name] = (entry, params)
        self._owners[name] = module

    @classmethod
    def forget(cls, module: str) -> None:
        """Take back, from every registry, what `module` registered (a plugin that failed half way)."""
        for registry in cls.everyone:
            for name in [n for n, owner in registry._owners.items() if owner == module]:
                del registry._entries[name], registry._owners[name]

    def register(self, name: str, params: type[Params] = Params) -> Callable[[type[T]], type[T]]:
        """Class decorator: file the class under `name` with its parameter model."""

        def wrap(cls: type[T]) -> type[T]:
            self.add(name, cls, params, module=cls.__module__)
            return cls

        return wrap

    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._modules))

    def built_in(self) -> list[str]:
        """The names edgeweave itself declares (plugins' names left out)."""
        return sorted(self._modules)

    def entry(self, name: Any, field: str) -> tuple[Any, type[Params]]:
        """The class and parameter model filed under `name`; a UserError lists the valid names."""
        if isinstance(name, str) and name not in self._entries and name in self._modules:
            self._importing = self._modules[name]
            try:
                importlib.import_module(self._modules[name])
            finally:
                self._importing = None
        if not isinstance(name, str) or name not in self._entries:
            raise UserError(f"{field} = {name!r}: unknown {self.kind}; valid: {', '.join(self.names())}")
        return self._entries[name]

    def build(self, name: str, params: Params, **kwargs: Any) -> T:
        """Instantiate the class filed under `name` with its validated parameters."""
        cls, _ = self.entry(name, f"{self.kind}.{self.key}")
        return cls(params, **kwargs)


def _where(module: Optional[str]) -> str:
    """A module as a user knows it: a plugin by its file, edgeweave's own by its name."""
    found = sys.modules.get(module or "")
    path = getattr(found, "__file__", None)
    return str(path) if path and (module or "").startswith("edgeweave_plugin_") else str(module)
