"""An RL-style Tinker step with data-aware regularizers, run offline through the real SDK.

Each datum carries top-K candidates per completion position (2-D target tokens
[T, K], column 0 the sampled token), a per-position advantage, the reference
model's log-probs of the same candidates and ``weights`` that are 0 on prompt
positions. The custom loss is a policy-gradient term plus a k3 KL to the
reference and an entropy bonus over the K candidates, with gradient norms
tracked. ``TrainingClient.forward_backward_custom`` runs its real path against a
fake server in this process (``arraypenalties.tinker.testing``): no network.

Run: python examples/tinker_custom_loss.py   (needs torch and the tinker SDK)
"""

import importlib.util
import json
import sys


def main() -> None:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("tinker") is None:
        print("this example needs torch and tinker: pip install 'arraypenalties[tinker]'")
        return
    import numpy as np
    import tinker

    from arraypenalties import tinker as apt
    from arraypenalties.tinker.testing import offline_training_client

    rng = np.random.default_rng(0)
    top_k = 4

    def fake_model(tokens, index):
        """The server's log-probs for each candidate: a softmax over K, per position."""
        logits = np.sin(tokens * 0.7 + index)
        return (logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))).astype(np.float32)

    data = []
    for index, (length, prompt) in enumerate([(7, 3), (5, 2), (9, 4)]):
        tokens = rng.integers(1, 1000, size=(length, top_k)).astype(np.int64)
        weights = np.zeros((length, top_k), dtype=np.float32)
        weights[prompt:] = 1.0
        reference = fake_model(tokens, index) + rng.normal(0, 0.1, size=(length, top_k))
        data.append(
            tinker.Datum(
                model_input=tinker.ModelInput.from_ints(list(range(1, length + 1))),
                loss_fn_inputs={
                    "target_tokens": tokens,
                    "weights": weights,
                    "advantages": rng.normal(size=length).astype(np.float32),
                    "ref_logprobs": reference.astype(np.float32),
                },
            )
        )

    def policy_gradient(data, logprobs_list):
        """-Σ w·A·log π(sampled token) / Σ w (column 0 is the sampled token)."""
        num, den = 0.0, 0.0
        for datum, logprobs in zip(data, logprobs_list, strict=True):
            w = datum.loss_fn_inputs["weights"].to_torch()[:, 0]
            advantages = datum.loss_fn_inputs["advantages"].to_torch()
            num = num + (w * advantages * logprobs[:, 0]).sum()
            den = den + w.sum()
        loss = -num / den
        return loss, {"mean_logprob": sum(lp[:, 0].mean() for lp in logprobs_list) / 3}

    reports = []
    loss_fn = apt.as_custom_loss_fn(
        policy_gradient,
        [
            apt.kl_to_reference("ref_logprobs", weight=0.05, estimator="k3"),
            apt.entropy(weight=0.01, objective="maximize"),
        ],
        track_grad_norms=True,
        report_sink=reports.append,
    )
    with offline_training_client(fake_model) as server:
        result = server.client.forward_backward_custom(data, loss_fn).result()
        weights_sent = server.backward_weights

    print(json.dumps(reports[0].to_dict(), indent=2))
    print("metrics Tinker returns:")
    for key, value in sorted(result.metrics.items()):
        print(f"  {key}: {value:.6f}")
    prompt_weights = [
        w[:prompt].tolist() for w, prompt in zip(weights_sent, (3, 2, 4), strict=True)
    ]
    if any(any(any(row) for row in rows) for rows in prompt_weights):
        sys.exit("unexpected: a prompt position received a gradient")
    if abs(result.metrics["loss:sum"] - reports[0].loss_total) > 1e-5:
        sys.exit("unexpected: Tinker's loss:sum differs from the report's loss_total")


if __name__ == "__main__":
    main()
