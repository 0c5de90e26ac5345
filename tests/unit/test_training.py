import numpy as np
import pytest
import torch
from torch import nn

from edgeweave.platform.train.sgd import SGDSettings
from edgeweave.platform.train.training import batch_order, evaluate, train_local


def blobs(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=g)
    x = torch.randn(n, 1, 2, 2, generator=g) + (y.float() * 3 - 1.5)[:, None, None, None]
    return x, y


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))


def test_batch_order_covers_each_epoch_once():
    s = SGDSettings(lr=0.1, batch_size=4, epochs=2)
    batches = batch_order(10, s, torch.Generator().manual_seed(0))
    assert [len(b) for b in batches] == [4, 4, 2, 4, 4, 2]
    assert sorted(torch.cat(batches[:3]).tolist()) == list(range(10))


def test_batch_order_gives_exactly_the_steps_asked():
    s = SGDSettings(lr=0.1, batch_size=4, steps=7)
    assert len(batch_order(10, s, torch.Generator().manual_seed(0))) == 7


def test_local_training_learns_and_reports():
    x, y = blobs()
    model = tiny_model()
    before, _ = evaluate(model, x.numpy(), y.numpy())
    res = train_local(
        model, x, y, SGDSettings(lr=0.2, momentum=0.9, batch_size=8, epochs=5), torch.Generator().manual_seed(0)
    )
    after, loss = evaluate(model, x.numpy(), y.numpy())
    assert res.steps == 5 * 8 and res.samples == 5 * 64
    assert after > 0.95 and after > before
    assert loss < 0.3


def test_local_training_repeats_for_the_same_generator():
    x, y = blobs()
    outs = []
    for _ in range(2):
        model = tiny_model()
        train_local(
            model,
            x,
            y,
            SGDSettings(lr=0.1, batch_size=8, weight_decay=1e-3),
            torch.Generator().manual_seed(7),
            augment=False,
        )
        outs.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(outs[0], outs[1])


def test_evaluate_counts_hand_made_predictions():
    model = nn.Sequential(nn.Flatten(), nn.Linear(2, 2, bias=False))
    with torch.no_grad():
        model[1].weight.copy_(torch.eye(2))
    x = np.array([[1, 0], [0, 1], [1, 0], [0, 2]], np.float32).reshape(4, 1, 1, 2)
    y = np.array([0, 1, 1, 1])
    acc, _ = evaluate(model, x, y, batch_size=3)
    assert acc == 0.75


@pytest.mark.parametrize("momentum,weight_decay", [(0.0, 0.0), (0.9, 0.0), (0.9, 1e-3), (0.0, 5e-4)])
def test_sgd_step_gives_torch_optims_very_numbers(momentum, weight_decay):
    import copy

    import torch.nn.functional as F

    from edgeweave.platform.train.training import sgd_step

    g = torch.Generator().manual_seed(0)
    ours = torch.nn.Sequential(torch.nn.Linear(20, 30), torch.nn.ReLU(), torch.nn.Linear(30, 5))
    theirs = copy.deepcopy(ours)
    opt = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=momentum, weight_decay=weight_decay)
    params, buffers = list(ours.parameters()), [None] * 4
    for _ in range(5):
        x, y = torch.randn(8, 20, generator=g), torch.randint(0, 5, (8,), generator=g)
        opt.zero_grad()
        F.cross_entropy(theirs(x), y).backward()
        opt.step()
        ours.zero_grad()
        F.cross_entropy(ours(x), y).backward()
        sgd_step(params, [p.grad for p in params], buffers, SGDSettings(0.1, momentum, weight_decay))
    assert all(torch.equal(a, b) for a, b in zip(ours.parameters(), theirs.parameters()))
