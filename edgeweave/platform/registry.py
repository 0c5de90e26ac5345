"""Name-to-class registries: each policy registers itself with a decorator in its own module."""

from __future__ import annotations

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
        self._entries: dict[str, tuple[type[T], type[Params]]] = {}

    def register(self, name: str, params: type[Params] = Params) -> Callable[[type[T]], type[T]]:
        """Class decorator: file the class under `name` with its parameter model."""

        def wrap(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = (cls, params)
            return cls

        return wrap

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entry(self, name: Any, field: str) -> tuple[type[T], type[Params]]:
        """The class and parameter model filed under `name`; a UserError lists the valid names."""
        if not isinstance(name, str) or name not in self._entries:
            raise UserError(
                f"{field} = {name!r}: unknown {self.kind}; valid: {', '.join(self.names())}"
            )
        return self._entries[name]

    def build(self, name: str, params: Params, **kwargs: Any) -> T:
        """Instantiate the class filed under `name` with its validated parameters."""
        cls, _ = self.entry(name, f"{self.kind}.{self.key}")
        return cls(params, **kwargs)  # type: ignore[call-arg]
