"""Integration fixtures: one real local Ray (2 CPUs) per test module, always shut down."""

import logging

import pytest
import ray


@pytest.fixture(scope="module")
def local_ray():
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()
