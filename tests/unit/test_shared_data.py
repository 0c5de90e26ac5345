"""The sweep's data store as a plain class: one copy of a data set while trials use it, none after."""

import os

from edgeweave.actors import shared_data
from edgeweave.actors.shared_data import DataStore


def test_a_data_set_is_shared_while_trials_hold_it_and_released_after(make_config, monkeypatch):
    loads = []
    monkeypatch.setattr(shared_data, "load_dataset", lambda data, seed: loads.append(seed) or object())
    monkeypatch.setattr(shared_data.ray, "put", lambda value: value)  # the ref is the value itself here
    store = DataStore(os.getcwd())
    cfg = make_config()
    other = cfg.model_copy(update={"seed": cfg.seed + 1})  # another seed draws other data

    [a] = store.dataset(cfg, "t0")
    assert store.dataset(cfg, "t1") == [a] and store.dataset(other, "t2") != [a]  # trials at once share a copy
    assert store.loaded() == 2 and store.held() == 2
    store.release("t0")
    assert store.dataset(cfg, "t3") == [a] and store.dataset(cfg, "t1") == [a]  # t1 run again holds it once
    store.release("t1")
    store.release("t3")
    assert store.held() == 1  # no trial needs cfg's data any more: the store drops its copy
    store.release("t2")
    store.release("t2")  # twice (a trial that was lost and ran again) is harmless
    assert store.held() == 0 and store.loaded() == 2
    [again] = store.dataset(cfg, "t4")
    assert again is not a and store.loaded() == 3  # asked again later, it is loaded again
