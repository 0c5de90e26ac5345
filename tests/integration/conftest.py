"""Integration fixtures: one real local Ray per test module, always shut down."""

import logging
from contextlib import contextmanager

import pytest
import ray


@contextmanager
def local_cluster(num_cpus: int):
    """A fresh local Ray with `num_cpus` logical CPUs, shut down whatever happens."""
    ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def local_ray():
    with local_cluster(2):
        yield
