"""A penalty curriculum: weights that change over epochs, in a PyTorch training loop.

Exploration first, sparsity later: an entropy bonus on the predictions decays
along a cosine over the run while an L1 penalty on a hidden layer's activity
ramps up from epoch 2, with a constant L2 weight decay. The curriculum is
written in epochs (``weight_schedule``) and handed to ``make_train_step`` as a
function of the step, so every step sees the weights of its fractional epoch.

Run: python examples/curriculum.py [--epochs N]   (needs torch; default 8 epochs)
"""

import argparse
import importlib.util
import sys

STEPS_PER_EPOCH = 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8, help="epochs (default 8)")
    epochs = parser.parse_args(argv).epochs
    if importlib.util.find_spec("torch") is None:
        print("this example needs torch: pip install 'arraypenalties[torch]'")
        return 0
    import torch

    from arraypenalties import Pipeline, entropy
    from arraypenalties.integrations.torch import make_train_step
    from arraypenalties.schedules import cosine, linear, weight_schedule

    def entropy_bonus(logits: torch.Tensor) -> torch.Tensor:
        return entropy(torch.log_softmax(logits, dim=-1), mode="bonus")

    curriculum = weight_schedule(
        {
            "entropy": cosine(0.05),  # over the whole run
            "activity/1": linear(0.0, 1e-3, steps=4, begin=2),  # epochs 2 to 6
            "param/decay": 1e-4,
        }
    )

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    centres = 2.0 * torch.randn(3, 8, generator=generator)
    labels = torch.randint(0, 3, (384,), generator=generator)
    inputs = centres[labels] + torch.randn(384, 8, generator=generator)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    step = make_train_step(
        model,
        torch.nn.functional.cross_entropy,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        penalties=Pipeline().add("entropy", entropy_bonus, weight=0.0),
        parameter_penalties={"decay": ("l2", 0.0, {"exclude": "bias$"})},
        activity={"1": ("l1", 0.0)},
        weight_schedules=lambda step, total: curriculum(step / STEPS_PER_EPOCH, epochs),
    )

    print("epoch  entropy w  sparsity w   base loss   Σ|activity|   (weights at the epoch's start)")
    per_epoch = []
    for epoch in range(epochs):
        rows = []
        for _ in range(STEPS_PER_EPOCH):
            batch = torch.randint(0, 384, (48,), generator=generator)
            rows.append(step(inputs[batch], labels[batch]))
        weights = curriculum(epoch, epochs)
        base = sum(row["base_loss"] for row in rows) / len(rows)
        activity = sum(row["activity/1"] for row in rows) / len(rows)
        per_epoch.append(base)
        print(
            f"{epoch:5d}  {weights['entropy']:9.4f}  {weights['activity/1']:10.5f}"
            f"  {base:10.4f}  {activity:12.2f}"
        )
    if not per_epoch[-1] < per_epoch[0]:
        print("unexpected: the loss did not fall", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
