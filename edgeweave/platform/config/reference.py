"""The config reference, written from the schema itself: every key, its type, default, bounds and description.

The documentation site's reference page is this module's output (`docs/hooks.py` calls it at build
time), so the page cannot drift from what `build_config` accepts. A key's description is its
field's `description`, else the comment beside it (or the comment lines just above it) in the
source. A pluggable section (data, partition, model, resources, strategy, server rule) lists the
parameters of every built-in part under its name.
"""

from __future__ import annotations

import inspect
import io
import json
import textwrap
import tokenize
from dataclasses import dataclass
from typing import Any, Optional, Union, cast, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from edgeweave.platform.config.schema import PLUGGABLE, Choice, ExperimentConfig
from edgeweave.platform.config.sweep import SweepConfig
from edgeweave.platform.core.registries import BUILT_IN

BOUNDS = {
    "gt": ">",
    "ge": ">=",
    "lt": "<",
    "le": "<=",
    "min_length": "length >=",
    "max_length": "length <=",
    "pattern": "matches",
}


@dataclass(frozen=True)
class Key:
    """One row of the reference."""

    path: str
    type: str
    default: str
    bounds: str
    description: str


def comments(model: type[BaseModel]) -> dict[str, str]:
    """Field name -> the comment beside it in the class body that declares it, or the comment lines just above."""
    found: dict[str, str] = {}
    for cls in reversed([c for c in model.__mro__ if isinstance(c, type) and issubclass(c, BaseModel)]):
        found.update({k: v for k, v in _own_comments(cls, model).items() if v})
    return found


def _own_comments(cls: type, model: type[BaseModel]) -> dict[str, str]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    found: dict[str, str] = {}
    above: list[str] = []
    line_comment: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            line_comment[tok.start[0]] = tok.string.lstrip("#").strip()
    for number, line in enumerate(source.splitlines(), start=1):
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
            continue
        name = stripped.split(":", 1)[0]
        if indent == 4 and ":" in stripped and name.isidentifier() and name in model.model_fields:
            found[name] = line_comment.get(number) or " ".join(above)
        if stripped:
            above = []
    return found


def type_name(annotation: Any) -> str:
    """A short, readable form of a field's type."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Union:
        kept = [type_name(a) for a in args if a is not type(None)]
        return " | ".join(kept) + (" | null" if type(None) in args else "")
    if origin is not None and getattr(origin, "__name__", "") == "Literal":
        return " | ".join(repr(a) for a in args)
    if origin is list:
        return f"list of {type_name(args[0])}" if args else "list"
    if origin is tuple:
        return f"[{', '.join(type_name(a) for a in args)}]"
    if origin is dict:
        return f"mapping of {type_name(args[0])} to {type_name(args[1])}" if args else "mapping"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__
        )
    return str(annotation).replace("typing.", "")


def default_text(info: FieldInfo) -> str:
    """The field's default as YAML would write it; `required` when it has none."""
    if info.default is PydanticUndefined and info.default_factory is None:
        nested = isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)
        return "see below" if nested else "required"  # build_config fills every section's defaults
    value = info.default_factory() if info.default_factory is not None else info.default  # type: ignore[call-arg]
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, list) and value and isinstance(value[0], BaseModel):
        value = [v.model_dump(mode="json") for v in value]
    return json.dumps(value, default=str)


def bounds_text(info: FieldInfo) -> str:
    """The field's bounds, e.g. `>= 1`, `> 0, < 1`."""
    found = []
    for meta in info.metadata:
        for attr, word in BOUNDS.items():
            value = getattr(meta, attr, None)
            if value is not None:
                found.append(f"{word} {value}")
    return ", ".join(found)


def model_keys(model: type[BaseModel], prefix: str) -> list[Key]:
    """The rows of `model`'s fields under `prefix`, nested models and list items followed into."""
    rows: list[Key] = []
    notes = comments(model)
    for name, info in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = info.annotation
        if annotation is Choice:
            rows.extend(choice_keys(path))
            continue
        inner, below = annotation, f"{path}."
        if get_origin(annotation) in (list, dict) and get_args(annotation):
            inner = get_args(annotation)[-1]
            below = f"{path}[]." if get_origin(annotation) is list else f"{path}.<key>."
        nested = isinstance(inner, type) and issubclass(inner, BaseModel)
        doc = inspect.cleandoc(inner.__dict__.get("__doc__") or "") if nested else ""  # its own, not inherited
        own = doc.split("\n\n")[0].replace("\n", " ")
        rows.append(
            Key(
                path,
                type_name(annotation),
                default_text(info),
                bounds_text(info),
                info.description or notes.get(name) or own,
            )
        )
        if nested:
            sub = cast("type[BaseModel]", inner)  # `nested`: a pydantic model
            rows.extend(model_keys(sub, below))
    return rows


def choice_keys(path: str) -> list[Key]:
    """A pluggable section: its name key, then each built-in part's parameters under `path` (when name: X)."""
    registry, default = PLUGGABLE[tuple(path.split("."))]
    names = sorted(BUILT_IN[registry])
    rows = [
        Key(
            f"{path}.{registry.key}",
            " | ".join(repr(n) for n in names) + " | a plugin's name",
            repr(default),
            "",
            f"which {registry.kind}; the keys beside it are that {registry.kind}'s parameters",
        )
    ]
    for name in names:
        _, params = registry.entry(name, f"{path}.{registry.key}")
        rows.extend(model_keys(params, f"{path}.({registry.key}: {name}) "))
    return rows


def keys() -> list[Key]:
    """Every key of an experiment config, in schema order."""
    return model_keys(ExperimentConfig, "")


def sweep_keys() -> list[Key]:
    """Every key of a sweep file, in schema order."""
    return model_keys(SweepConfig, "")


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(rows: Optional[list[Key]] = None) -> str:
    """The reference as Markdown: the top-level keys in one table, then one table per section."""
    rows = keys() if rows is None else rows
    sections = {r.path.split(".")[0].split("[")[0] for r in rows if "." in r.path or "[" in r.path}
    groups: dict[str, list[Key]] = {"top-level keys": []}
    for row in rows:
        top = row.path.split(".")[0].split("[")[0]
        groups.setdefault(f"`{top}`" if top in sections else "top-level keys", []).append(row)
    out: list[str] = []
    for title, group in groups.items():
        out += ["", f"## {title}", "", "| key | type | default | bounds | description |", "|---|---|---|---|---|"]
        out += [
            f"| `{cell(r.path)}` | {cell(r.type)} | `{cell(r.default)}` | {cell(r.bounds)} | {cell(r.description)} |"
            for r in group
        ]
    return "\n".join(out).lstrip("\n") + "\n"
