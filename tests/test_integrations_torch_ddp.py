"""make_train_step under torch DistributedDataParallel: two CPU processes (gloo, localhost).

Each rank trains on its half of every batch with output, parameter and activity
penalties and a transform. After the run the parameters must be identical on
both ranks; every step's metrics must come from one all-reduce and one host
transfer, be equal on both ranks, and equal a single-process run on the
concatenated batch (the penalties are means over the batch, as DDP's gradient
averaging assumes).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Callable
from typing import Any

import pytest

WORLD_SIZE = 2
STEPS = 4

COMMON = r"""
import functools

import torch

from arraypenalties import Pipeline, l1
from arraypenalties import transforms as T
from arraypenalties.integrations.torch import make_train_step


def model():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


def batches():
    generator = torch.Generator().manual_seed(7)
    return [
        (
            torch.randn(16, 4, generator=generator, dtype=torch.float64),
            torch.randn(16, 3, generator=generator, dtype=torch.float64),
        )
        for _ in range(STEPS)
    ]


def train_step(net):
    return make_train_step(
        net,
        torch.nn.functional.mse_loss,
        torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9),
        penalties=Pipeline()
        .add("l1", "l1", weight=0.01, opts={"reduction": "mean"})
        .add("l2", "l2", weight=0.1, opts={"reduction": "mean"}),
        parameter_penalties={"decay": ("l2", 1e-3, {"exclude": "bias$"})},
        activity={"1": (functools.partial(l1, reduction="mean"), 0.05)},
        transforms=T.chain(
            T.clip_by_global_norm(max_norm=0.3), T.add_gradient_noise(variance=1e-4, seed=2)
        ),
        weight_schedules={"l2": {"kind": "linear", "init": 0.0, "end": 0.1, "steps": 2}},
        track_every=2,
    )
"""

WORKER = r"""
import json
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from arraypenalties.backends import primitives

rank, world_size, store, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
STEPS = int(sys.argv[5])
exec(open(sys.argv[6]).read())
torch.set_num_threads(1)
dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
net = model()
step = train_step(DistributedDataParallel(net))
counts = {"all_reduce": 0, "to_floats": 0}
real_all_reduce, real_to_floats = dist.all_reduce, primitives.to_floats


def all_reduce(*args, **kwargs):
    counts["all_reduce"] += 1
    return real_all_reduce(*args, **kwargs)


def to_floats(values):
    counts["to_floats"] += 1
    return real_to_floats(values)


dist.all_reduce, primitives.to_floats = all_reduce, to_floats
history = []
for x, y in batches():
    half = slice(8 * rank, 8 * rank + 8)
    history.append(step(x[half], y[half]))
dist.all_reduce, primitives.to_floats = real_all_reduce, real_to_floats
params = {name: p.detach().tolist() for name, p in net.named_parameters()}
with open(out, "w") as file:
    json.dump({"metrics": history, "counts": counts, "params": params}, file)
dist.destroy_process_group()
print(f"rank {rank}: done")
"""


def _single_process() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    namespace: dict[str, Any] = {"STEPS": STEPS}
    exec(COMMON, namespace)
    net = namespace["model"]()
    step = namespace["train_step"](net)
    history = [step(x, y) for x, y in namespace["batches"]()]
    return history, {name: p.detach().tolist() for name, p in net.named_parameters()}


def _arguments(rank: int, store: str, out: pathlib.Path, common: pathlib.Path) -> list[str]:
    return [str(rank), str(WORLD_SIZE), store, str(out), str(STEPS), str(common)]


@pytest.mark.slow  # two processes importing torch: ~5 s idle, ~15 s on a busy machine
@pytest.mark.backend("torch")
def test_ddp_train_step_matches_a_single_process_on_the_whole_batch(
    tmp_path: pathlib.Path, run_processes: Callable[[list[list[str]]], list[str]]
) -> None:
    import numpy as np
    import torch.distributed

    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("this torch build has no torch.distributed gloo backend")
    common, script = tmp_path / "common.py", tmp_path / "worker.py"
    common.write_text(COMMON)
    script.write_text(WORKER)
    store = str(tmp_path / "store")
    outs = [tmp_path / f"rank{rank}.json" for rank in range(WORLD_SIZE)]
    run_processes(
        [[str(script), *_arguments(rank, store, outs[rank], common)] for rank in range(WORLD_SIZE)]
    )
    ranks = [json.loads(out.read_text()) for out in outs]
    for result in ranks:  # one collective and one host transfer per step
        assert result["counts"] == {"all_reduce": STEPS, "to_floats": STEPS}
    assert ranks[0]["params"] == ranks[1]["params"]  # identical, not merely close
    assert ranks[0]["metrics"] == ranks[1]["metrics"]
    history, params = _single_process()
    assert "l1_grad_norm" in history[0] and "l1_grad_norm" in ranks[0]["metrics"][2]
    for index, (ours, alone) in enumerate(zip(ranks[0]["metrics"], history, strict=True)):
        assert list(ours) == list(alone)
        for key, value in alone.items():
            if "grad_norm" in key:  # a mean of per-rank norms is not the norm of the mean
                continue
            assert ours[key] == pytest.approx(value, rel=1e-9, abs=1e-12), (index, key)
    for name, value in params.items():
        np.testing.assert_allclose(ranks[0]["params"][name], value, rtol=1e-9, atol=1e-12)
