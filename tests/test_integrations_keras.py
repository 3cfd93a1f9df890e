"""The Keras 3 Regularizer: config round trip, bad input, model.fit on the jax / torch backends."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from arraypenalties import InvalidTypeError, InvalidValueError, UnknownNameError, l1

keras = pytest.importorskip("keras", reason="keras is an optional test dependency")

from arraypenalties.integrations.keras import Regularizer  # noqa: E402


def _my_penalty(x: object) -> object:
    return l1(x)


def test_config_round_trip_and_values() -> None:
    reg = Regularizer("elastic_net", weight=0.5, l1_ratio=0.25)
    config = reg.get_config()
    assert config == {"penalty": "elastic_net", "weight": 0.5, "opts": {"l1_ratio": 0.25}}
    again = Regularizer.from_config(config)
    x = np.array([1.0, -2.0])
    # 0.5 · (0.25·Σ|x| + 0.75·Σx²) = 0.5 · (0.75 + 3.75)
    np.testing.assert_allclose(float(again(x)), 2.25, rtol=1e-7)
    assert keras.regularizers.get(keras.saving.serialize_keras_object(reg)).get_config() == config
    # a function given directly is accepted (the built-in itself gets its name back)
    assert Regularizer(l1, weight=2.0).get_config()["penalty"] == "l1"


def test_unnamed_function_raises_at_get_config_naming_it() -> None:
    reg = Regularizer(_my_penalty, weight=1.0)
    np.testing.assert_allclose(float(reg(np.array([1.0, -2.0]))), 3.0)
    with pytest.raises(InvalidValueError, match="_my_penalty"):
        reg.get_config()


def test_from_config_imports_and_calls_nothing() -> None:
    for name in ("os:system", "arraypenalties.penalties:l1", "builtins.eval", "kl"):
        with pytest.raises(UnknownNameError, match="not a known penalty name"):
            Regularizer.from_config({"penalty": name, "weight": 1.0, "opts": {}})
    with pytest.raises(InvalidValueError, match="must have keys"):
        Regularizer.from_config({"penalty": "l1", "fn": "os:system"})
    with pytest.raises(InvalidTypeError, match="must be a penalty name"):
        Regularizer.from_config({"penalty": print, "weight": 1.0, "opts": {}})
    with pytest.raises(InvalidValueError, match=r"\['lamda'\] are not options of l2"):
        Regularizer.from_config({"penalty": "l2", "weight": 1.0, "opts": {"lamda": 0.1}})
    with pytest.raises(InvalidTypeError, match="`weight`"):
        Regularizer("l2", weight="big")
    with pytest.raises(InvalidTypeError, match="`penalty` must be"):
        Regularizer(3)


FIT = textwrap.dedent(
    """
    import os, sys, numpy as np, keras
    from arraypenalties.integrations.keras import Regularizer
    assert keras.backend.backend() == sys.argv[1]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="relu", name="hidden",
                           kernel_regularizer=Regularizer("l2", weight=1e-3),
                           activity_regularizer=Regularizer("l1", weight=1e-4)),
        keras.layers.Dense(1, name="out"),
    ])
    model.compile(optimizer="sgd", loss="mse")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 1)).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    kernel = keras.ops.convert_to_numpy(model.get_layer("hidden").kernel.value)
    kernel = kernel.astype(np.float64)
    expected = 1e-3 * (kernel ** 2).sum()
    def weight_terms(model):  # eager backends also keep the last call's activity term
        values = [float(keras.ops.convert_to_numpy(v)) for v in model.losses]
        return [v for v in values if abs(v - expected) <= 1e-5 * expected]
    assert len(weight_terms(model)) == 1, (model.losses, expected)
    # the activity term: Keras divides our weight · Σ|h| by the batch size
    model(x[:4])
    hidden = keras.Model(model.inputs, model.get_layer("hidden").output)
    h = np.asarray(keras.ops.convert_to_numpy(hidden(x[:4])), np.float64)
    activity = [float(keras.ops.convert_to_numpy(v)) for v in model.get_layer("hidden").losses]
    assert any(abs(a - 1e-4 * np.abs(h).sum() / 4) < 1e-7 for a in activity), (activity, h.sum())
    path = os.path.join(sys.argv[2], "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = loaded.get_layer("hidden")
    assert type(layer.kernel_regularizer) is Regularizer, type(layer.kernel_regularizer)
    assert layer.kernel_regularizer.get_config() == {"penalty": "l2", "weight": 1e-3, "opts": {}}
    assert layer.activity_regularizer.get_config()["penalty"] == "l1"
    assert len(weight_terms(loaded)) == 1, (loaded.losses, expected)
    loaded.fit(x, y, epochs=1, batch_size=16, verbose=0)
    print("ok")
    """
)


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fit_save_and_load_on_each_keras_backend(backend: str, tmp_path: pathlib.Path) -> None:
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"the {backend} Keras backend needs {backend}, which is not installed")
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run(
        [sys.executable, "-c", FIT, backend, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
