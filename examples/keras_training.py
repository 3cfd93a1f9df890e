"""Training a Keras 3 model with arraypenalties regularizers, then saving and reloading it.

A small MLP classifies three Gaussian blobs with ``model.fit``. The regularizers:

- L2 on the hidden kernels (``kernel_regularizer=``);
- L1 on the first hidden activation (``activity_regularizer=``; Keras divides
  activity terms by the batch size);
- an entropy bonus on the output log-probabilities (``activity_regularizer=``
  on the output layer, ``mode="bonus"``).

The model is saved as ``.keras`` and reloaded: the regularizers come back by
name, with their weights and options. Keras picks its backend at import: this
script uses jax unless ``KERAS_BACKEND`` says otherwise (``torch`` works too).

Run: python examples/keras_training.py               (shortened: 4 epochs)
     python examples/keras_training.py --epochs 30   (the full run; needs keras)
"""

import argparse
import importlib.util
import os
import sys
import tempfile


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="epochs (full run: 30)")
    args = parser.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", "jax")
    backend = os.environ["KERAS_BACKEND"]
    if importlib.util.find_spec("keras") is None or importlib.util.find_spec(backend) is None:
        print(f"this example needs keras and {backend}: pip install 'arraypenalties[keras]'")
        return
    import keras
    import numpy as np

    from arraypenalties.integrations.keras import Regularizer

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 8)) * 2.0
    labels = rng.integers(0, 3, size=1024)
    inputs = (centers[labels] + rng.normal(size=(1024, 8))).astype("float32")

    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(
                32,
                activation="relu",
                name="hidden",
                kernel_regularizer=Regularizer("l2", weight=1e-4),
                activity_regularizer=Regularizer("l1", weight=1e-5),
            ),
            keras.layers.Dense(
                32,
                activation="relu",
                name="hidden2",
                kernel_regularizer=Regularizer("l2", weight=1e-4),
            ),
            keras.layers.Dense(
                3,
                activation="log_softmax",
                name="out",
                activity_regularizer=Regularizer("entropy", weight=1e-2, mode="bonus"),
            ),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(1e-2, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    print(f"keras {keras.__version__} on {keras.backend.backend()}")
    print("| epoch | loss (with penalties) | accuracy | weight penalties |")
    print("|---:|---:|---:|---:|")
    losses = []
    for epoch in range(args.epochs):
        history = model.fit(inputs, labels, epochs=1, batch_size=64, verbose=0)
        losses.append(history.history["loss"][-1])
        weight_terms = sum(
            float(keras.ops.convert_to_numpy(layer.kernel_regularizer(layer.kernel)))
            for layer in model.layers
            if layer.kernel_regularizer is not None
        )
        accuracy = history.history["accuracy"][-1]
        print(f"| {epoch} | {losses[-1]:.4f} | {accuracy:.2%} | {weight_terms:.3g} |")

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
    print("reloaded:", loaded.get_layer("out").activity_regularizer)
    same = np.allclose(
        keras.ops.convert_to_numpy(loaded(inputs[:8])),
        keras.ops.convert_to_numpy(model(inputs[:8])),
    )
    if not same:
        sys.exit("unexpected: the reloaded model computes something else")
    if not losses[-1] < losses[0]:
        sys.exit("unexpected: the loss did not fall")


if __name__ == "__main__":
    main()
