"""Fuzzing the public surface: random options, types, shapes and dtypes (SPEC §0, §10).

Every public function of ``arraypenalties.__all__``, every transform factory and
``update``, and every schedule is called with random option values (right and
wrong types, NaN, ±inf, huge ints, strings, containers, numpy scalars) and random
arrays (0 to 3 dimensions, empty ones included; float16/32/64, int, bool, complex;
numpy and torch; sometimes not an array at all). A call may succeed or raise; the
only exceptions allowed are ``ArrayPenaltiesError`` subclasses whose message
names a parameter of the call in backticks.

Known failures in code this file does not fix are listed in :data:`KNOWN_FAILURES`
with the reason; each is matched by function, exception type and message, so any
other failure still fails the test. ``register_penalty`` and ``register_backend``
are left out: a random call that succeeds would change the process-wide registries
that the rest of the suite reads.
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import arraypenalties as ap
from arraypenalties import ArrayPenaltiesError
from arraypenalties import schedules as S
from arraypenalties import transforms as T

BACKENDS = ["numpy", "torch"]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))  # per target and backend (CI: 12)
DTYPES = ["float32", "float64", "float16", "int32", "bool", "complex64"]


@dataclass(frozen=True)
class Known:
    """A failure this file knows about: who fixes it and why it is not fixed here."""

    target: str
    error: str  # the exception class name
    message: str  # a regular expression searched in the message
    reason: str


# Empty: every failure the first fuzz runs found has been fixed (pipeline specs, extra_args,
# huge ints, untrusted xp=, array centers, get_backend and validate messages). Add an entry
# only with the reason and the owner of the fix.
KNOWN_FAILURES: list[Known] = []


@dataclass
class Stats:
    calls: int = 0
    returned: int = 0
    raised: Counter[str] = field(default_factory=Counter)
    known: Counter[str] = field(default_factory=Counter)


STATS = Stats()
# FUZZ_TRIAGE=1: record every unexpected failure instead of failing, and print them at the end
TRIAGE: dict[tuple[str, str], str] | None = {} if os.environ.get("FUZZ_TRIAGE") else None


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    classes = ", ".join(f"{name} {count}" for name, count in sorted(STATS.raised.items()))
    print(  # shown with `pytest -s`
        f"\nfuzz: {STATS.calls} calls, {STATS.returned} returned, raised: {classes}; "
        f"known failures hit: {dict(STATS.known)}"
    )
    for (target, kind), message in sorted((TRIAGE or {}).items()):
        print(f"UNEXPECTED {target}: {kind}: {message[:300]}")


# ---------------------------------------------------------------- strategies


def _junk() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.sampled_from([10**400, -1, 0, 2**63]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=4),
        st.lists(st.integers(-3, 3), max_size=3),
        st.dictionaries(st.text(max_size=3), st.integers(-3, 3), max_size=2),
        st.complex_numbers(max_magnitude=10, allow_nan=False),
        st.sampled_from([np.float64(0.5), np.int64(-1), np.float32(np.nan), object()]),
    )


def _option(good: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.sampled_from(good), _junk()) if good else _junk()


@st.composite
def _arrays(draw: Any, backend: str, shape: tuple[int, ...] | None = None) -> Any:
    if draw(st.integers(0, 9)) == 0:  # not an array at all
        return draw(st.sampled_from([None, "x", 3.0, [1.0, 2.0], {"a": 1}]))
    if shape is None:
        shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.normal(size=shape)
    special = draw(st.sampled_from([None, np.nan, np.inf, -np.inf, 0.0]))
    if special is not None and values.size:
        values.flat[0] = special
    with np.errstate(invalid="ignore"):  # NaN / inf cast to int or bool: any value will do
        host = values.astype(dtype)
    if backend == "torch":
        import torch

        return torch.asarray(host)
    return host


def _trees(backend: str) -> st.SearchStrategy[Any]:
    leaf = _arrays(backend)
    return st.one_of(
        st.dictionaries(st.sampled_from(["w", "b"]), leaf, min_size=1, max_size=2),
        st.lists(leaf, max_size=2),
        leaf,
    )


# ---------------------------------------------------------------- targets


def _square(x: Any) -> Any:
    return (x * x).sum()


_PIPELINE = ap.Pipeline().add("l1", "l1").add("ent", "entropy", weight=0.5)
# a pipeline's errors may name its entries or their functions' parameters
_PIPELINE_NAMES = frozenset(
    {"l1", "ent", "pipeline", "x", "logprobs", "reduction", "temperature", "name", "weight"}
)
_REDUCTIONS = ["mean", "sum", "none"]


@dataclass(frozen=True)
class Target:
    """A callable with ``arrays`` positional arrays after ``prefix`` and some options."""

    name: str
    fn: Callable[..., Any]
    arrays: int = 1
    options: dict[str, list[Any]] = field(default_factory=dict)
    prefix: tuple[Any, ...] = ()
    names: frozenset[str] = frozenset()  # more names a message may give (leaf paths, entries)


def _t(label: str, fn: Callable[..., Any], arrays: int = 1, /, **options: list[Any]) -> Target:
    return Target(label, fn, arrays, options)


FUNCTIONS = [
    _t("l1", ap.l1, lam=[0.5, 1.0], reduction=_REDUCTIONS, xp=[None]),
    _t("l2", ap.l2, lam=[1.0], reduction=_REDUCTIONS, center=[None, "mean", 0.5], clip=[None, 1.0]),
    _t("elastic_net", ap.elastic_net, lam=[1.0], l1_ratio=[0.0, 0.5, 1.0], reduction=_REDUCTIONS),
    _t(
        "output_magnitude_penalty", ap.output_magnitude_penalty, target=[1.0], reduction=_REDUCTIONS
    ),
    _t(
        "kl_divergence",
        ap.kl_divergence,
        2,
        reduction=_REDUCTIONS,
        direction=["forward", "reverse"],
        symmetric=[False, True],
        axis=[-1, 0],
        max_log_ratio=[None, 10.0],
        broadcast=[False, True],
    ),
    _t("js_divergence", ap.js_divergence, 2, reduction=_REDUCTIONS, axis=[-1], broadcast=[False]),
    _t(
        "entropy",
        ap.entropy,
        mode=["bonus", "penalty"],
        reduction=_REDUCTIONS,
        normalize=[False, True],
        temperature=[1.0, 2.0],
        axis=[-1],
    ),
    _t("entropy_value", ap.entropy_value, reduction=_REDUCTIONS, normalize=[True], axis=[-1]),
    _t(
        "kl_estimate",
        ap.kl_estimate,
        2,
        estimator=["k1", "k2", "k3"],
        mask=[None],
        reduction=_REDUCTIONS,
    ),
    _t(
        "orthogonality",
        ap.orthogonality,
        mode=["soft", "hard", "spectral"],
        normalize=[True, False],
        axis=["rows", "sequence", "vocabulary"],
    ),
    _t(
        "consistency",
        ap.consistency,
        2,
        metric=["mse", "l1", "cosine", "kl"],
        reduction=_REDUCTIONS,
        axis=[-1],
        broadcast=[False, True],
    ),
    Target("validate", ap.validate, 1, {"name": ["x", "weights"]}, (), frozenset({"weights"})),
    _t("is_finite", ap.is_finite),
    _t("get_backend", ap.get_backend),
    Target("grad_norm", ap.grad_norm, 1, {}, (_square,)),
    Target("gradient_penalty", ap.gradient_penalty, 1, {"target_norm": [1.0]}, (_square,)),
    Target(
        "interpolated_gradient_penalty",
        ap.interpolated_gradient_penalty,
        2,
        {"target_norm": [1.0], "batch_axis": [0, None], "rng": [None, 0]},
        (_square,),
    ),
    Target(
        "compute",
        ap.compute,
        1,
        {"extra_args": [None, {"temperature": 2.0}], "track_grad_norms": [False]},
        (_PIPELINE,),
        _PIPELINE_NAMES,
    ),
    Target(
        "compute_total", ap.compute_total, 1, {"extra_args": [None]}, (_PIPELINE,), _PIPELINE_NAMES
    ),
    Target("pipeline_grad_norms", ap.pipeline_grad_norms, 1, {}, (_PIPELINE,), _PIPELINE_NAMES),
    Target("total_grad_norm", ap.total_grad_norm, 1, {}, (_PIPELINE,), _PIPELINE_NAMES),
    Target(
        "pipeline",
        ap.pipeline,
        0,
        {"specs": [["l1"], [("l2", {"opts": {"lam": 0.1}})]], "name": ["p"]},
        (),
        frozenset({"fn", "opts", "weight", "enabled", "differentiable"}),
    ),
    _t("available_backends", ap.available_backends, 0),
]

TRANSFORM_FACTORIES = [
    _t("add_l2_decay", T.add_l2_decay, 0, decay=[0.01]),
    _t("add_l1_decay", T.add_l1_decay, 0, decay=[0.01]),
    _t("add_elastic_net_decay", T.add_elastic_net_decay, 0, decay=[0.01], l1_ratio=[0.5]),
    _t("clip_by_global_norm", T.clip_by_global_norm, 0, max_norm=[1.0, float("inf")]),
    _t("add_gradient_noise", T.add_gradient_noise, 0, variance=[0.01], decay=[0.55], seed=[0]),
    _t(
        "adaptive_gradient_clipping",
        T.adaptive_gradient_clipping,
        0,
        clip_factor=[0.01],
        eps=[1e-3],
        unit_axis=[0, -1],
    ),
    _t("centralize", T.centralize, 0, axes=[None, 0, (0, 1)]),
    _t("masked", T.masked, 0, transform=[T.add_l2_decay()], mask=[{"w": True, "b": False}]),
    _t("chain", T.chain, 0),
    _t("stateless", T.stateless, 0, fn=[_square]),
    _t("init_empty_state", T.init_empty_state, 0, params=[None]),
]

SCHEDULE_FACTORIES = [
    _t("constant", S.constant, 0, value=[0.5]),
    _t("linear", S.linear, 0, init=[0.0], end=[1.0], steps=[None, 10], begin=[0.0, 2]),
    _t("warmup", S.warmup, 0, peak=[1.0], steps=[4], init=[0.0], then=[None, S.cosine(1.0)]),
    _t(
        "exponential_decay",
        S.exponential_decay,
        0,
        init=[1.0],
        rate=[0.5],
        steps=[3],
        staircase=[False, True],
        end=[None, 0.1],
        begin=[0.0],
    ),
    _t("cosine", S.cosine, 0, init=[1.0], end=[0.0], steps=[None, 5]),
    _t("schedule", S.schedule, 0, kind=["cosine", "linear"], init=[1.0], end=[0.0], steps=[4]),
    _t("weight_schedule", S.weight_schedule, 0, specs=[{"l1": 0.1}, {"l1": {"kind": "cosine"}}]),
    _t("WeightSchedule.from_config", S.WeightSchedule.from_config, 0, config=[{"l1": 0.1}]),
    _t("Schedule.from_config", S.Schedule.from_config, 0, config=[{"kind": "constant"}]),
    _t(
        "apply_scheduled_weights",
        S.apply_scheduled_weights,
        0,
        pipeline=[_PIPELINE],
        weights=[{"l1": 0.5}, {"nope": 1.0}],
    ),
]

# configs and specs hold schedule options: their errors name the option inside
_SCHEDULE_OPTIONS = frozenset(
    name for target in SCHEDULE_FACTORIES[:5] for name in inspect.signature(target.fn).parameters
) | {"kind"}
for _index, _target in enumerate(SCHEDULE_FACTORIES):
    if _target.name in (
        "schedule",
        "weight_schedule",
        "WeightSchedule.from_config",
        "Schedule.from_config",
    ):
        SCHEDULE_FACTORIES[_index] = Target(
            _target.name, _target.fn, 0, _target.options, (), _SCHEDULE_OPTIONS
        )


def _parameter_names(target: Target) -> set[str]:
    try:
        names = set(inspect.signature(target.fn).parameters)
    except (TypeError, ValueError):
        names = set()
    return names | set(target.names) | set(target.options)


_BACKTICKED = re.compile(r"`([A-Za-z_]\w*)")


def _check(target: str, error: BaseException, allowed: set[str]) -> None:
    """Pass for a library error naming one of ``allowed`` in backticks, or a known failure."""
    kind, message = type(error).__name__, str(error)
    STATS.raised[kind] += 1
    for known in KNOWN_FAILURES:
        matches = known.target in ("*", target) and kind == known.error
        if matches and re.search(known.message, message):
            STATS.known[f"{target}: {kind}"] += 1
            return
    named = set(_BACKTICKED.findall(message))
    if TRIAGE is not None and not (isinstance(error, ArrayPenaltiesError) and named & allowed):
        TRIAGE.setdefault((target, kind), message)
        return
    assert isinstance(error, ArrayPenaltiesError), f"{target} raised {kind}: {message}"
    assert named & allowed, f"{target}: no parameter named in backticks: {message}"


def _call(target: Target, call: Callable[[], Any], allowed: set[str]) -> None:
    STATS.calls += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numpy overflow, finite differences: not the question
        try:
            call()
        except Exception as error:  # the point: every exception is examined
            _check(target.name, error, allowed)
        else:
            STATS.returned += 1


def _required(target: Target) -> set[str]:
    """Options without a default: always passed (a missing argument is Python's own error)."""
    try:
        parameters = inspect.signature(target.fn).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in parameters if p.default is p.empty and p.name in target.options}


def _positional_only(target: Target) -> list[str]:
    parameters = inspect.signature(target.fn).parameters.values()
    return [p.name for p in parameters if p.kind is p.POSITIONAL_ONLY]


def _draw_options(data: Any, target: Target) -> dict[str, Any]:
    chosen = data.draw(st.sets(st.sampled_from(sorted(target.options)))) if target.options else ()
    names = [name for name in target.options if name in set(chosen) | _required(target)]
    return {name: data.draw(_option(target.options[name])) for name in names}


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("target", FUNCTIONS, ids=lambda t: t.name)
@FUZZ
@given(data=st.data())
def test_public_functions(target: Target, backend: str, data: Any) -> None:
    if backend == "torch":
        pytest.importorskip("torch", reason="torch is an optional backend")
    first = data.draw(_arrays(backend), label="x") if target.arrays else None
    arrays = [first][: target.arrays]
    if target.arrays == 2:  # mostly the same shape as the first, sometimes another
        same = getattr(first, "shape", None) is not None and data.draw(st.booleans())
        shape = tuple(first.shape) if same else None
        arrays.append(data.draw(_arrays(backend, shape), label="y"))
    options = _draw_options(data, target)
    if target.name == "kl_estimate" and data.draw(st.booleans()):
        options["mask"] = data.draw(_arrays(backend))
    _call(target, lambda: target.fn(*target.prefix, *arrays, **options), _parameter_names(target))


@pytest.mark.parametrize("target", TRANSFORM_FACTORIES + SCHEDULE_FACTORIES, ids=lambda t: t.name)
@FUZZ
@given(data=st.data())
def test_factories(target: Target, data: Any) -> None:
    options = _draw_options(data, target)
    positional = [options.pop(name) for name in _positional_only(target) if name in options]
    if target.name == "schedule":  # `kind` is positional-only and required
        positional = [options.pop("kind", "cosine")]
    elif (
        not positional and options and data.draw(st.booleans())
    ):  # the main hyperparameter positionally
        first = next(iter(target.options))
        if first in options:
            positional.append(options.pop(first))
    _call(target, lambda: target.fn(*positional, **options), _parameter_names(target))


_BUILT = [
    T.add_l2_decay(),
    T.add_l1_decay(),
    T.add_elastic_net_decay(),
    T.clip_by_global_norm(),
    T.add_gradient_noise(),
    T.adaptive_gradient_clipping(),
    T.centralize(),
    T.masked(T.add_l2_decay(), {"w": True, "b": False}),
    T.chain(T.clip_by_global_norm(), T.add_l2_decay()),
]
_UPDATE_NAMES = {"updates", "params", "state", "mask", "axes", "unit_axis", "leaves", "tree"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("index", range(len(_BUILT)))
@FUZZ
@given(data=st.data())
def test_transform_updates(index: int, backend: str, data: Any) -> None:
    if backend == "torch":
        pytest.importorskip("torch", reason="torch is an optional backend")
    tx = _BUILT[index]
    updates = data.draw(_trees(backend), label="updates")
    params = data.draw(st.one_of(st.just(updates), _trees(backend), _junk()), label="params")
    target = Target(f"transform {index}.update", tx.update)

    def run() -> Any:
        use_init = data.draw(st.booleans(), label="state from init")
        state = tx.init(params) if use_init else data.draw(_junk(), label="state")
        return tx.update(updates, state, params)

    _call(target, run, _UPDATE_NAMES)


@pytest.mark.parametrize("index", range(5))  # the five schedule kinds
@FUZZ
@given(data=st.data())
def test_schedule_calls(index: int, data: Any) -> None:
    target = SCHEDULE_FACTORIES[index]
    built = target.fn(**{name: values[0] for name, values in target.options.items()})
    step, total = data.draw(_option([0, 3.5])), data.draw(_option([None, 10]))
    call = Target(f"{target.name}(...)(step, total)", built)
    _call(call, lambda: built(step, total), {"step", "total", "steps"})
