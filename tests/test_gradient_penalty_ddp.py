"""The WGAN-GP penalty under torch DistributedDataParallel with train-mode BatchNorm.

Two CPU processes (gloo) each run one critic step through DDP; their averaged
parameter gradients must equal the average of hand-written
``torch.autograd.grad(create_graph=True)`` references computed without DDP.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest

WORLD_SIZE = 2

WORKER = r"""
import copy
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from arraypenalties import interpolated_gradient_penalty

rank, world_size, store = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world_size)
torch.set_num_threads(1)
torch.manual_seed(0)  # the same initial critic on every rank
critic = torch.nn.Sequential(
    torch.nn.Linear(3, 16), torch.nn.BatchNorm1d(16), torch.nn.Tanh(),
    torch.nn.Linear(16, 16), torch.nn.Softplus(), torch.nn.Linear(16, 1, bias=False),
).double().train()
reference = copy.deepcopy(critic)
ddp = DistributedDataParallel(critic)

data = torch.Generator().manual_seed(100 + rank)  # each rank its own batch
fake = torch.randn(8, 3, generator=data, dtype=torch.float64)
real = torch.randn(8, 3, generator=data, dtype=torch.float64)

gp = interpolated_gradient_penalty(lambda v: ddp(v).sum(), fake, real, rng=rank)
loss = ddp(fake).mean() - ddp(real).mean() + 10.0 * gp
loss.backward()

alpha = torch.rand((8, 1), generator=torch.Generator().manual_seed(rank), dtype=torch.float64)
interpolates = (alpha * fake + (1 - alpha) * real).requires_grad_(True)
(grads,) = torch.autograd.grad(reference(interpolates).sum(), interpolates, create_graph=True)
reference_gp = ((grads.norm(2, dim=1) - 1) ** 2).mean()
reference_loss = reference(fake).mean() - reference(real).mean() + 10.0 * reference_gp
expected = torch.autograd.grad(reference_loss, list(reference.parameters()))
for g in expected:
    dist.all_reduce(g)
    g /= world_size
for name, parameter, g in zip(
    [n for n, _ in critic.named_parameters()], critic.parameters(), expected
):
    torch.testing.assert_close(parameter.grad, g, rtol=1e-6, atol=1e-9, msg=name)
    assert torch.count_nonzero(g) > 0, name
torch.testing.assert_close(gp.detach(), reference_gp.detach(), rtol=1e-10, atol=0)
dist.destroy_process_group()
print(f"rank {rank}: DDP gradients match")
"""


@pytest.mark.slow  # two processes importing torch: ~5 s idle, ~15 s on a busy machine
@pytest.mark.backend("torch")
def test_ddp_batchnorm_critic_step_matches_hand_written(
    tmp_path: pathlib.Path, run_processes: Callable[[list[list[str]]], list[str]]
) -> None:
    import torch.distributed

    if not (torch.distributed.is_available() and torch.distributed.is_gloo_available()):
        pytest.skip("this torch build has no torch.distributed gloo backend")
    script = tmp_path / "ddp_worker.py"
    script.write_text(WORKER)
    store = str(tmp_path / "store")
    outputs = run_processes(
        [[str(script), str(rank), str(WORLD_SIZE), store] for rank in range(WORLD_SIZE)]
    )
    for rank, output in enumerate(outputs):
        assert f"rank {rank}: DDP gradients match" in output
