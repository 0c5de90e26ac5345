"""Integration fixtures: one real local Ray per test module, always shut down."""

from contextlib import contextmanager

import pytest
import ray

from edgeweave.actors.session import start_local


@contextmanager
def local_cluster(num_cpus: int):
    """A fresh local Ray with `num_cpus` logical CPUs on the loopback address, as runs start it; shut down
    whatever happens."""
    start_local(num_cpus=num_cpus)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_ray():
    with local_cluster(2):
        yield
