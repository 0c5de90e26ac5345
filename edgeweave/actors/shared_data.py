"""A sweep's data sets, loaded and put in the object store once while its trials use them.

Each trial would otherwise load (decode, generate) its data set and put its own copy: N trials
at once held N copies. The store is one actor beside the sweep's own process (so it lives as
long as the sweep); a trial asks it for the reference of its data set, which the store loads on
the first request and keeps while any trial holds it; a trial gives it back when it ends, and a
data set no trial holds is dropped (freed once no process has its reference). Requests wait in
turn, so two trials never load the same data. Ray copies the object to each node that reads it,
once per node.
"""

from __future__ import annotations

import json
import os
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from edgeweave.platform.config.schema import ExperimentConfig
from edgeweave.platform.data import load_dataset

RELEASE_TIMEOUT = 60.0  # seconds a trial waits for the store to take its data set back


class DataStore:
    """Object references of data sets by (data section, seed): what `load_dataset` would return.

    Holders are trial ids, not a count: a trial Tune runs again after its process was lost asks
    again without having given back, and still holds its data set once.
    """

    def __init__(self, working_dir: str) -> None:
        os.chdir(working_dir)  # configs name data folders relative to where the sweep started
        self.refs: dict[str, Any] = {}  # key -> ref, for the data sets some trial holds
        self.holding: dict[str, str] = {}  # trial id -> the key of the data set it holds
        self.loads = 0

    def dataset(self, cfg: ExperimentConfig, trial: str) -> list[Any]:
        """[ref] to the config's data set, held for `trial` (in a list, so Ray hands over the reference,
        not the data)."""
        key = json.dumps([cfg.data.model_dump(mode="json"), cfg.seed], sort_keys=True)
        if key not in self.refs:
            self.refs[key] = ray.put(load_dataset(cfg.data, cfg.seed))
            self.loads += 1
        self.holding[trial] = key
        return [self.refs[key]]

    def release(self, trial: str) -> None:
        """`trial` is done with its data set; one that no trial holds any more is dropped."""
        key = self.holding.pop(trial, None)
        if key is not None and key not in self.holding.values():
            del self.refs[key]

    def loaded(self) -> int:
        """How many times the store has loaded a data set."""
        return self.loads

    def held(self) -> int:
        """How many data sets the store holds now (one copy each)."""
        return len(self.refs)


RemoteDataStore = ray.remote(num_cpus=0)(DataStore)


def data_store() -> Any:
    """A new store on this process's node, for one sweep."""
    node = ray.get_runtime_context().get_node_id()
    return RemoteDataStore.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False)).remote(
        os.getcwd()
    )


def shared_dataset(store: Any, cfg: ExperimentConfig, trial: str) -> Any:
    """The ref of the config's data set from the sweep's store, held for `trial` until `release_dataset`; the
    store's error (a bad data section) as the trial's own."""
    try:
        return ray.get(store.dataset.remote(cfg, trial), timeout=cfg.ray.round_timeout)[0]
    except ray.exceptions.RayTaskError as e:
        raise (e.cause if isinstance(e.cause, Exception) else e) from None


def release_dataset(store: Any, trial: str) -> None:
    """Give `trial`'s data set back to the sweep's store (waited for: the trial's process may end next)."""
    ray.get(store.release.remote(trial), timeout=RELEASE_TIMEOUT)
