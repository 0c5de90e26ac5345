"""Random streams: one named constant per purpose, the index of a draw a key word of its own."""

import ast
import importlib
from pathlib import Path

import numpy as np
import pytest

import edgeweave

PACKAGE = Path(edgeweave.__file__).parent


def stream_arguments() -> list[tuple[str, ast.expr]]:
    """Every call of `rng` or `torch_generator` in the package (but their own module), with the expression it
    passes as its stream."""
    found = []
    for path in sorted(set(PACKAGE.rglob("*.py")) - {PACKAGE / "platform" / "core" / "seeding.py"}):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) in ("rng", "torch_generator"):
                stream = (
                    node.args[3]
                    if len(node.args) > 3
                    else next((k.value for k in node.keywords if k.arg == "stream"), None)
                )
                if stream is not None:
                    where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                    found.append((where, stream))
    return found


def draws(*key: int) -> np.ndarray:
    from edgeweave.platform.core.seeding import rng

    return rng(*key).integers(0, 2**63, size=4)


def test_no_caller_computes_its_stream():
    """A stream computed by arithmetic (`400 + k`) meets another purpose's constant (`500` at k = 100)."""
    computed = [
        f"{where}: {ast.unparse(e)}"
        for where, e in stream_arguments()
        if not isinstance(e, (ast.Attribute, ast.Name, ast.Constant))
    ]
    assert computed == []


def test_every_stream_used_is_one_named_distinct_constant():
    from edgeweave.platform.core.seeding import Stream

    values = [s.value for s in Stream]
    assert len(set(values)) == len(values)
    for where, e in stream_arguments():
        if isinstance(e, ast.Attribute):
            assert isinstance(e.value, ast.Name) and e.value.id == "Stream" and e.attr in Stream.__members__, where
            continue
        if isinstance(e, ast.Name):  # a module's own constant
            module = importlib.import_module(where.split(":")[0].removesuffix(".py").replace("/", "."))
            value = getattr(module, e.id)
        else:
            value = e.value
        assert value in values, f"{where}: stream {value} is no Stream constant"


def test_the_streams_that_collided_draw_apart():
    """Task-wise thinning at mini-batch 100 once drew the task draw's numbers (400 + 100 = 500); likewise
    DISTREAL's step 100 and task-wise thinning's first (300 + 100), FD's layer 100 and FjORD's widths
    (100 + 100), the DSE's step 10 and its first population (70 + 10)."""
    from edgeweave.platform.core.seeding import SERVER, Stream

    pairs = [
        ((Stream.TASKWISE_THIN, 100), (Stream.TASKWISE_TASKS, 0)),
        ((Stream.DISTREAL_DROPOUT, 100), (Stream.TASKWISE_THIN, 0)),
        ((Stream.FD_CHANNELS, 100), (Stream.FJORD_WIDTHS, 0)),
        ((Stream.DSE_DROPOUT, 10), (Stream.DSE_POPULATION, 0)),
    ]
    for a, b in pairs:
        assert not np.array_equal(draws(0, 3, 2, *a), draws(0, 3, 2, *b))
        assert not np.array_equal(draws(0, -1, SERVER, *a), draws(0, -1, SERVER, *b))


def test_key_words_are_one_word_each_so_no_two_keys_alias():
    """NumPy splits an int into as many 32-bit words as it needs and pads keys shorter than 4 words with
    zeros: a seed of 2**32 (words 0, 1) would meet seed 0 with every later field moved one word along, and
    an index of 0 must not meet a key without one."""
    assert not np.array_equal(draws(0, 0, 0, 0), draws(0, 0, 0, 0, 0))
    assert not np.array_equal(draws(5, 1, 2, 3, 7), draws(5, 1, 2, 3, 8))
    for key in [(-1, 0, 0), (0, -2, 0), (0, 0, -2), (2**32, 0, 0), (0, 0, 0, 0, 2**32), (0, 0, 0, 0, -1)]:
        with pytest.raises(ValueError, match="out of range"):
            draws(*key)


def test_draws_without_an_index_are_the_ones_runs_have_always_made():
    """Data splits, partitions, sampling and batch orders keep their keys: the measured figures stay valid."""
    assert np.array_equal(draws(3, 4, 5, 6), np.random.default_rng([3, 5, 6, 6]).integers(0, 2**63, size=4))
