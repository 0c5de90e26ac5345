"""A sweep's data sets, loaded and put in the object store once, whatever the number of trials.

Each trial would otherwise load (decode, generate) its data set and put its own copy: N trials
at once held N copies. The store is one actor beside the sweep's own process (so it lives as
long as the sweep); a trial asks it for the reference of its data set, which the store loads on
the first request and keeps. Requests wait in turn, so two trials never load the same data.
Ray copies the object to each node that reads it, once per node.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from edgeweave.platform.config import ExperimentConfig
from edgeweave.platform.data import load_dataset


class DataStore:
    """Object references of data sets by (data section, seed): what `load_dataset` would return."""

    def __init__(self, working_dir: str) -> None:
        os.chdir(working_dir)  # configs name data folders relative to where the sweep started
        self.refs: dict[str, Any] = {}
        self.loads = 0

    def dataset(self, cfg: ExperimentConfig) -> list[Any]:
        """[ref] to the config's data set (in a list, so Ray hands over the reference, not the data)."""
        key = json.dumps([cfg.data.model_dump(mode="json"), cfg.seed], sort_keys=True)
        if key not in self.refs:
            self.refs[key] = ray.put(load_dataset(cfg.data, cfg.seed))
            self.loads += 1
        return [self.refs[key]]

    def loaded(self) -> int:
        """How many data sets the store has loaded (each once)."""
        return self.loads


RemoteDataStore = ray.remote(num_cpus=0)(DataStore)


def data_store() -> Any:
    """A new store on this process's node, for one sweep."""
    node = ray.get_runtime_context().get_node_id()
    return RemoteDataStore.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
        os.getcwd())


def shared_dataset(store: Any, cfg: ExperimentConfig) -> Any:
    """The ref of the config's data set from the sweep's store; the store's error (a bad data section) as
    the trial's own."""
    try:
        return ray.get(store.dataset.remote(cfg), timeout=cfg.ray.round_timeout)[0]
    except ray.exceptions.RayTaskError as e:
        raise (e.cause if isinstance(e.cause, Exception) else e) from None
