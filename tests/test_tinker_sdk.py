"""The adapter through the real ``tinker`` SDK: ``TrainingClient.forward_backward_custom`` offline.

The fake server (``arraypenalties.tinker.testing``) answers forward requests with
canned log-probs and records the backward request, whose ``weights`` the SDK
sets to ``-∂loss/∂logprobs``; they are compared with gradients written out in
closed form in numpy float64 here. Also: the adapter without ``tinker``.
"""

from __future__ import annotations

import pathlib
import subprocess
import sys
import textwrap
from typing import Any

import numpy as np
import pytest
import torch

tinker = pytest.importorskip("tinker", reason="the Tinker SDK is in requirements/test.in")

from arraypenalties import tinker as apt  # noqa: E402
from arraypenalties.tinker.testing import offline_training_client  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]


def tokens_logprobs(tokens: Any, index: int) -> np.ndarray:
    """Canned log-probs: distinct values per position and datum, float32."""
    tokens = np.asarray(tokens)
    return (-(0.3 + 0.15 * ((tokens * 7 + 3 * index) % 11))).astype(np.float32)


def make_datum(tokens: np.ndarray, **fields: np.ndarray) -> Any:
    return tinker.Datum(
        model_input=tinker.ModelInput.from_ints(list(range(1, tokens.shape[0] + 1))),
        loss_fn_inputs={"target_tokens": tokens, **fields},
    )


def rl_batch() -> tuple[list[Any], list[np.ndarray]]:
    """Three ragged datums: prompt positions weighted 0, advantages, reference log-probs."""
    rng = np.random.default_rng(7)
    data, logprobs = [], []
    for index, (length, prompt) in enumerate([(6, 2), (3, 1), (8, 3)]):
        tokens = rng.integers(1, 50, size=length).astype(np.int64)
        weights = np.r_[np.zeros(prompt), np.ones(length - prompt)].astype(np.float32)
        advantages = rng.normal(size=length).astype(np.float32)
        lp = tokens_logprobs(tokens, index)
        ref = (lp + rng.normal(scale=0.3, size=length)).astype(np.float32)
        data.append(make_datum(tokens, weights=weights, advantages=advantages, ref_logprobs=ref))
        logprobs.append(lp)
    return data, logprobs


def policy_loss(data: Any, logprobs_list: list[torch.Tensor]) -> Any:
    num = sum(
        (
            lp * d.loss_fn_inputs["weights"].to_torch() * d.loss_fn_inputs["advantages"].to_torch()
        ).sum()
        for d, lp in zip(data, logprobs_list, strict=True)
    )
    den = sum(d.loss_fn_inputs["weights"].to_torch().sum() for d in data)
    return -num / den


def test_rl_step_weights_are_minus_the_gradient_of_the_total() -> None:
    data, logprobs = rl_batch()
    reports: list[apt.CustomLossOutput] = []
    loss_fn = apt.as_custom_loss_fn(
        policy_loss,
        [apt.kl_to_reference("ref_logprobs", weight=0.1, estimator="k3")],
        track_grad_norms=True,
        report_sink=reports.append,
    )
    with offline_training_client(tokens_logprobs) as server:
        result = server.client.forward_backward_custom(data, loss_fn).result()
        sent = server.backward_weights

    # independent: d/dlp of -Σ w·a·lp/Σw + 0.1 · Σ w·k3(lp, ref)/Σw, k3 = e^r - 1 - r, r = ref - lp
    den = sum(float(d.loss_fn_inputs["weights"].to_numpy().sum()) for d in data)
    expected_total = 0.0
    for datum, lp, got in zip(data, logprobs, sent, strict=True):
        w = datum.loss_fn_inputs["weights"].to_numpy().astype(np.float64)
        a = datum.loss_fn_inputs["advantages"].to_numpy().astype(np.float64)
        r = datum.loss_fn_inputs["ref_logprobs"].to_numpy().astype(np.float64) - lp
        grad = -w * a / den + 0.1 * w * (1.0 - np.exp(r)) / den
        np.testing.assert_allclose(got, -grad, rtol=1e-5, atol=1e-6)
        expected_total += float(
            np.sum(-w * a * lp) / den + 0.1 * np.sum(w * (np.expm1(r) - r)) / den
        )

    report = reports[0]
    assert report.loss_total == pytest.approx(expected_total, rel=1e-5)
    assert result.metrics["loss:sum"] == pytest.approx(expected_total, rel=1e-5)
    assert "surrogate_loss:sum" in result.metrics
    ours = {k: v for k, v in result.metrics.items() if ":" not in k}
    assert ours == report.to_metrics()
    assert all(type(v) is float for v in ours.values())
    assert {
        "loss_total",
        "reg/kl_divergence/value",
        "reg/kl_divergence/grad_norm",
        "total_grad_norm",
        "base/grad_norm",
    } <= set(ours)
    flat = np.concatenate([-g for g in sent])  # -weights = ∂total/∂logprobs
    assert ours["total_grad_norm"] == pytest.approx(float(np.linalg.norm(flat)), rel=1e-5)
    # the forward request carried only target_tokens and weights; the loss saw every field
    assert set(server.requests[0].inputs[0]) == {"target_tokens", "weights"}


def topk_batch() -> tuple[list[Any], list[np.ndarray]]:
    """Two datums with 2-D targets of different T and K; [T, K] weights zero the prompt rows."""
    data, logprobs = [], []
    for index, (t, k, prompt) in enumerate([(4, 3, 1), (2, 5, 0)]):
        tokens = (np.arange(t * k).reshape(t, k) + 1 + index).astype(np.int64)
        weights = np.ones((t, k), dtype=np.float32)
        weights[:prompt] = 0.0
        lp = tokens_logprobs(tokens, index)
        ref = tokens_logprobs(tokens[:, ::-1], index + 1)
        data.append(make_datum(tokens, weights=weights, ref_topk=np.ascontiguousarray(ref)))
        logprobs.append(lp)
    return data, logprobs


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_two_dimensional_ragged_targets() -> None:
    data, logprobs = topk_batch()
    loss_fn = apt.as_custom_loss_fn(
        None,
        [
            apt.entropy(weight=0.2, objective="maximize"),
            apt.kl_to_reference("ref_topk", weight=0.5, estimator="full"),
        ],
    )
    with offline_training_client(tokens_logprobs) as server:
        result = server.client.forward_backward_custom(data, loss_fn).result()
        sent = server.backward_weights

    rows = sum(int((d.loss_fn_inputs["weights"].to_numpy()[:, 0] != 0).sum()) for d in data)
    for datum, lp, got in zip(data, logprobs, sent, strict=True):
        row_w = datum.loss_fn_inputs["weights"].to_numpy().mean(axis=-1)[:, None]
        p = _softmax(lp.astype(np.float64))
        q = _softmax(datum.loss_fn_inputs["ref_topk"].to_numpy().astype(np.float64))
        entropy = -np.sum(p * np.log(p), axis=-1, keepdims=True)
        kl = np.sum(p * (np.log(p) - np.log(q)), axis=-1, keepdims=True)
        grad_bonus = p * (np.log(p) + entropy)  # ∂(−H)/∂z for p = softmax(z)
        grad_kl = p * (np.log(p) - np.log(q) - kl)
        grad = row_w * (0.2 * grad_bonus + 0.5 * grad_kl) / rows
        assert got.shape == lp.shape
        np.testing.assert_allclose(got, -grad, rtol=1e-4, atol=1e-6)
    assert type(result.metrics["reg/entropy/value"]) is float


def test_regularizer_reading_some_datums_never_loses_a_gradient() -> None:
    data, _ = rl_batch()
    first_only = apt.RegularizerSpec(lambda d, lps: (lps[0] ** 2).sum(), 1.0, "first")
    for track in (False, True):
        loss_fn = apt.as_custom_loss_fn(None, [first_only], track_grad_norms=track)
        with offline_training_client(tokens_logprobs) as server:
            server.client.forward_backward_custom(data, loss_fn).result()
            sent = server.backward_weights
        lp0 = tokens_logprobs(data[0].loss_fn_inputs["target_tokens"].to_numpy(), 0)
        np.testing.assert_allclose(sent[0], -2 * lp0, rtol=1e-6)
        assert [g.tolist() for g in sent[1:]] == [[0.0] * 3, [0.0] * 8]


def test_the_offline_client_reproduces_no_gradient_computed() -> None:
    # the same term written as a bare loss fn: the SDK refuses it (the failure compose avoids)
    data, _ = rl_batch()
    with offline_training_client(tokens_logprobs) as server:
        future = server.client.forward_backward_custom(
            data, lambda d, lps: ((lps[0] ** 2).sum(), {})
        )
        with pytest.raises(ValueError, match="No gradient computed"):
            future.result()


BLOCK_TINKER = textwrap.dedent(
    """
    import sys

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name == "tinker" or name.startswith("tinker."):
                raise ImportError("tinker is blocked in this test")
            return None

    sys.meta_path.insert(0, Refuse())
    import numpy as np
    import torch
    from arraypenalties import tinker as apt

    class Datum:
        def __init__(self, **inputs):
            self.loss_fn_inputs = inputs

    data = [
        Datum(weights=np.asarray([0.0, 1.0, 1.0], dtype=np.float32), ref=torch.zeros(3)),
        Datum(ref=np.asarray([-1.0, -1.0], dtype=np.float32)),
    ]
    lps = [torch.tensor([-1.0, -2.0, -3.0], requires_grad=True),
           torch.tensor([-1.0, -1.0], requires_grad=True)]
    loss_fn = apt.as_custom_loss_fn(
        None, [apt.kl_to_reference("ref", weight=1.0, estimator="k1", reduction="sum")],
        track_grad_norms=True,
    )
    loss, metrics = loss_fn(data, lps)
    loss.backward()
    assert "tinker" not in sys.modules
    print(loss.item(), lps[0].grad.tolist(), lps[1].grad.tolist())
    """
)


def test_works_without_tinker() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BLOCK_TINKER],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # k1 = lp - ref summed over kept positions: (-2 - 0) + (-3 - 0) + 0 + 0 = -5
    assert done.stdout.split()[0] == "-5.0"
    assert "[0.0, 1.0, 1.0] [1.0, 1.0]" in done.stdout
