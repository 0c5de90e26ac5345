"""Name-to-class registries: each policy registers itself in its own module.

A package declares its built-in entries by module (`declare`), so looking one name up imports
that one module and no other: validating a config loads only the parts it names.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from edgeweave.platform.errors import UserError

T = TypeVar("T")


class Params(BaseModel):
    """Base of every registered entry's config: strict, so unknown keys and NaN or infinite numbers are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Registry(Generic[T]):
    """Maps a name to a class and to the pydantic model of its parameters."""

    def __init__(self, kind: str, key: str = "name") -> None:
        self.kind = kind
        self.key = key
        self._entries: dict[str, tuple[Any, type[Params]]] = {}
        self._modules: dict[str, str] = {}  # declared, not yet imported: name -> module that registers it

    def declare(self, name: str, module: str) -> None:
        """`module` registers `name` when imported; it is imported on the name's first lookup."""
        self._modules[name] = module

    def add(self, name: str, entry: Any, params: type[Params] = Params) -> None:
        """File `entry` under `name` with its parameter model."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = (entry, params)

    def register(self, name: str, params: type[Params] = Params) -> Callable[[type[T]], type[T]]:
        """Class decorator: file the class under `name` with its parameter model."""

        def wrap(cls: type[T]) -> type[T]:
            self.add(name, cls, params)
            return cls

        return wrap

    def names(self) -> list[str]:
        return sorted(set(self._entries) | set(self._modules))

    def entry(self, name: Any, field: str) -> tuple[Any, type[Params]]:
        """The class and parameter model filed under `name`; a UserError lists the valid names."""
        if isinstance(name, str) and name not in self._entries and name in self._modules:
            importlib.import_module(self._modules[name])
        if not isinstance(name, str) or name not in self._entries:
            raise UserError(
                f"{field} = {name!r}: unknown {self.kind}; valid: {', '.join(self.names())}"
            )
        return self._entries[name]

    def build(self, name: str, params: Params, **kwargs: Any) -> T:
        """Instantiate the class filed under `name` with its validated parameters."""
        cls, _ = self.entry(name, f"{self.kind}.{self.key}")
        return cls(params, **kwargs)  # type: ignore[call-arg]
