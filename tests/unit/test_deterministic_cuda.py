"""A worker that trains on CUDA turns TF32 off and asks for deterministic kernels; checked on the CPU."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from torch import nn

from edgeweave.platform.run import client


@pytest.fixture
def restored(monkeypatch):
    """The process-wide switches as they were, whatever the test sets."""
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    flags = cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32
    mode = torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled()
    yield
    cudnn.allow_tf32, cudnn.benchmark, cudnn.deterministic, matmul.allow_tf32 = flags
    torch.use_deterministic_algorithms(mode[0], warn_only=mode[1])


def test_deterministic_cuda_turns_tf32_off_and_asks_for_deterministic_kernels(restored):
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = torch.backends.cudnn.benchmark = True
    client.deterministic_cuda()
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    assert not torch.backends.cudnn.benchmark and torch.backends.cudnn.deterministic
    assert torch.are_deterministic_algorithms_enabled()
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] in (":4096:8", ":16:8")  # what deterministic cuBLAS needs


def test_a_worker_picks_cuda_with_the_settings_and_the_cpu_without(restored, make_config, monkeypatch):
    calls = []
    monkeypatch.setattr(client, "deterministic_cuda", lambda: calls.append(True))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert client.pick_device(make_config(ray={"gpus_per_worker": 0.5})) == torch.device("cuda")
    assert calls == [True]
    assert client.pick_device(make_config()) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert client.pick_device(make_config(ray={"gpus_per_worker": 0.5})) == torch.device("cpu")
    assert calls == [True]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_twice_on_cuda_gives_the_same_bits(restored):
    client.deterministic_cuda()

    def train() -> np.ndarray:
        torch.manual_seed(0)
        model = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1),
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(16 * 8 * 8, 10),
        ).cuda()
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        g = torch.Generator().manual_seed(1)
        x, y = torch.randn(64, 3, 16, 16, generator=g).cuda(), torch.randint(0, 10, (64,), generator=g).cuda()
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
        return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).cpu().numpy()

    assert np.array_equal(train(), train())
