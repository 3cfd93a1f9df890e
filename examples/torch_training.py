"""Train a small PyTorch classifier with penalties, a weight warm-up and gradient transforms.

One ``make_train_step`` call wires it all: an entropy bonus on the predicted
distribution (warmed up linearly over the first steps), L2 on the weights
(biases and the LayerNorm excluded), L1 on the activity of a hidden layer,
global-norm clipping followed by adaptive (unit-wise) gradient clipping, and the
output penalties' gradient norms every 10 steps, printed as shares of the
penalties' total pull on the logits.

Run: python examples/torch_training.py [--steps N]   (needs torch; default 60 steps)
"""

import argparse
import importlib.util
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps (default 60)")
    steps = parser.parse_args(argv).steps
    if importlib.util.find_spec("torch") is None:
        print("this example needs torch: pip install 'arraypenalties[torch]'")
        return 0
    import torch

    from arraypenalties import Pipeline, entropy
    from arraypenalties.integrations.torch import make_train_step
    from arraypenalties.schedules import warmup
    from arraypenalties.transforms import adaptive_gradient_clipping, chain, clip_by_global_norm

    def entropy_bonus(logits: torch.Tensor) -> torch.Tensor:
        """−H of the softmax: adding it to the loss rewards less confident predictions."""
        return entropy(torch.log_softmax(logits, dim=-1), mode="bonus")

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    centres = 2.0 * torch.randn(4, 16, generator=generator)
    labels = torch.randint(0, 4, (512,), generator=generator)
    inputs = centres[labels] + torch.randn(512, 16, generator=generator)

    model = torch.nn.Sequential(
        torch.nn.Linear(16, 64),
        torch.nn.LayerNorm(64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 64),
        torch.nn.ReLU(),
        torch.nn.Linear(64, 4),
    )
    ramp, logits_weight = warmup(0.05, steps=20), 1e-5
    step = make_train_step(
        model,
        torch.nn.functional.cross_entropy,
        torch.optim.Adam(model.parameters(), lr=3e-3),
        penalties=Pipeline()
        .add("entropy", entropy_bonus, weight=0.0)
        .add("logits_l2", "l2", weight=logits_weight),
        parameter_penalties={"weights_l2": ("l2", 1e-4, {"exclude": r"bias$|^1\."})},
        activity={"4": ("l1", 1e-5)},  # the second ReLU
        transforms=chain(clip_by_global_norm(max_norm=1.0), adaptive_gradient_clipping()),
        weight_schedules={"entropy": ramp},
        track_every=10,
    )

    print("step   loss    base   entropy w   share entropy   share logits_l2")
    history = []
    for index in range(steps):
        batch = torch.randint(0, 512, (64,), generator=generator)
        metrics = step(inputs[batch], labels[batch])
        history.append(metrics["base_loss"])
        if "total_grad_norm" in metrics:
            # each penalty's pull on the logits: weight · ‖∇ penalty‖
            pulls = {
                "entropy": ramp(index) * metrics["entropy_grad_norm"],
                "logits_l2": logits_weight * metrics["logits_l2_grad_norm"],
            }
            whole = sum(pulls.values()) or 1.0
            print(
                f"{index:4d}  {metrics['loss']:.3f}  {metrics['base_loss']:.3f}  "
                f"{ramp(index):9.4f}  "
                f"{pulls['entropy'] / whole:14.1%}  {pulls['logits_l2'] / whole:16.1%}"
            )
    first, last = sum(history[:5]) / 5, sum(history[-5:]) / 5
    print(f"base loss: first 5 steps {first:.3f}, last 5 steps {last:.3f}")
    if not last < first:
        print("unexpected: the loss did not fall", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
