"""The config reference is written from the schema: every key with its type, default, bounds and description."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from edgeweave.platform.config.reference import Key, keys, model_keys, sweep_keys
from edgeweave.platform.config.schema import PLUGGABLE
from edgeweave.platform.config.sweep import SweepConfig
from edgeweave.platform.core.registries import BUILT_IN
from edgeweave.platform.core.registry import Params


class Inner(Params):
    """A nested section: its docstring's first paragraph describes it.

    Not this paragraph."""

    depth: float = Field(2.5, gt=0, le=10)  # how deep


class Toy(Params):
    # said above,
    # over two lines
    count: int = Field(3, ge=1)
    mode: Literal["a", "b"] = "a"  # said beside
    cap: Optional[int] = None
    inner: Inner = Inner()
    items: list[Inner] = Field(default_factory=lambda: [Inner(), Inner()], min_length=1)  # a list


def test_rows_carry_type_default_bounds_and_the_comment_beside_or_above():
    assert model_keys(Toy, "toy.") == [
        Key("toy.count", "integer", "3", ">= 1", "said above, over two lines"),
        Key("toy.mode", "'a' | 'b'", '"a"', "", "said beside"),
        Key("toy.cap", "integer | null", "null", "", ""),
        Key("toy.inner", "mapping", "see below", "", "A nested section: its docstring's first paragraph describes it."),
        Key("toy.inner.depth", "number", "2.5", "> 0, <= 10", "how deep"),
        Key("toy.items", "list of mapping", '[{"depth": 2.5}, {"depth": 2.5}]', "length >= 1", "a list"),
        Key("toy.items[].depth", "number", "2.5", "> 0, <= 10", "how deep"),
    ]


def test_every_key_of_the_schema_says_what_it_is():
    rows = keys()
    assert len({r.path for r in rows}) == len(rows)
    assert [r.path for r in rows if not (r.type and r.description)] == []
    sweep = sweep_keys()
    assert [r.path for r in sweep if not (r.type and r.description)] == []
    assert {r.path.split(".")[0] for r in sweep} == set(SweepConfig.model_fields)


def test_every_built_in_part_is_named_and_its_parameters_listed_under_its_name():
    rows = {r.path: r for r in keys()}
    for path, (registry, _) in PLUGGABLE.items():
        section = ".".join(path)
        for name in BUILT_IN[registry]:
            assert repr(name) in rows[f"{section}.{registry.key}"].type
            params = registry.entry(name, section)[1]
            listed = {p.rsplit(" ", 1)[1] for p in rows if p.startswith(f"{section}.({registry.key}: {name}) ")}
            assert listed == set(params.model_fields), (section, name)
