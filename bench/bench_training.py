"""Training throughput (images per second) per architecture, and whether the input
pipeline keeps up, measured in one run.

For each architecture it times, on real FER2013 Training faces:

* **input pipeline**: what feeds every training step without the network: a shuffled
  numpy batch (gather, float32, one-hot labels) and the augmentation layers (flip,
  rotation, shift, zoom, brightness, as ``train()`` uses them, compiled);
* **training step**: ``model.fit`` on the same kind of batches: the input pipeline,
  the forward and backward pass and the optimizer update (AdamW, as ``train()``).

The input pipeline is not the bottleneck when it delivers many more images per
second than the training step consumes. A few hundred batches at most.

    python bench/bench_training.py [--batches 30] [--pipeline-batches 200] [--architectures small vgg resnet]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

FER2013 = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def numpy_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, batches: int, seed: int = 0):
    """Shuffled float32 batches and one-hot labels, as fit() gets them from train()."""
    rng = np.random.default_rng(seed)
    eye = np.eye(7, dtype=np.float32)
    order = rng.permutation(len(images))
    for i in range(batches):
        pick = order[(i * batch_size) % len(images):][:batch_size]
        if len(pick) < batch_size:
            order = rng.permutation(len(images))
            pick = order[:batch_size]
        yield images[pick].astype(np.float32)[..., None], eye[labels[pick]]


def augmenter():
    """The augmentation layers of train()'s default, compiled for the backend in use."""
    import keras

    from emotion.model import Augmentation

    model = keras.Sequential([keras.Input((48, 48, 1)), *Augmentation().layers()])
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        step = tf.function(lambda x: model(x, training=True), reduce_retracing=True)
        return lambda x: step(x).numpy()
    return lambda x: keras.ops.convert_to_numpy(model(x, training=True))


class Clock:
    """Wall-clock and CPU seconds (all threads of this process) of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *_):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu

    def rates(self, images: int) -> tuple[float, float]:
        """(images per wall-clock second, images per CPU second)."""
        return images / self.wall, images / max(self.cpu, 1e-9)


def pipeline_rate(images, labels, batch_size: int, batches: int) -> tuple[tuple, tuple]:
    """Rates (wall, CPU) of numpy batching alone, and of batching + augmentation."""
    for _ in numpy_batches(images, labels, batch_size, 5):
        pass
    with Clock() as batching:
        for _ in numpy_batches(images, labels, batch_size, batches):
            pass
    augment = augmenter()
    for x, _ in numpy_batches(images, labels, batch_size, 3):
        augment(x)  # trace
    with Clock() as augmented:
        for x, _ in numpy_batches(images, labels, batch_size, batches):
            augment(x)
    return batching.rates(batches * batch_size), augmented.rates(batches * batch_size)


def training_rate(architecture: str, images, labels, batch_size: int, batches: int) -> tuple[tuple, int]:
    """(rates (wall, CPU) of model.fit, parameters) after a warm-up that traces the step."""
    import keras

    from emotion.model import Augmentation, build_model
    from emotion.train import TrainConfig, _compile

    config = TrainConfig(architecture=architecture)
    model = build_model(architecture, Augmentation(), config.dropout, config.width)
    _compile(model, config)
    n = batches * batch_size
    x = images[:n].astype(np.float32)[..., None]
    y = np.eye(7, dtype=np.float32)[labels[:n]]
    model.fit(x[:2 * batch_size], y[:2 * batch_size], batch_size=batch_size, epochs=1, verbose=0)
    with Clock() as clock:
        model.fit(x, y, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
    keras.backend.clear_session()
    return clock.rates(n), int(model.count_params())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=30, help="training batches timed per architecture")
    parser.add_argument("--pipeline-batches", type=int, default=200, help="input-pipeline batches timed")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--architectures", nargs="+", default=["small", "vgg", "resnet"])
    args = parser.parse_args()
    if not FER2013.is_file():
        sys.exit(f"FER2013 not found: {FER2013} (the shared data belongs beside the repository)")

    import keras

    from emotion.data import load_dataset

    train = load_dataset(FER2013).split("Training")
    images, labels = train.images, train.labels
    print(f"backend {keras.backend.backend()}; {os.cpu_count()} CPU cores; batch size {args.batch_size}; "
          f"{len(train):,} FER2013 Training faces", flush=True)
    print("images per wall-clock second (per CPU second of this process, which is what counts "
          "when other work shares the machine)")
    print(f"{'architecture':<13}{'parameters':>11}{'training step':>16}{'input pipeline':>18}"
          f"{'numpy only':>24}{'pipeline/train':>16}", flush=True)
    for architecture in args.architectures:
        # Measured back to back, so both see the same load on the machine.
        batching, augmented = pipeline_rate(images, labels, args.batch_size, args.pipeline_batches)
        rate, parameters = training_rate(architecture, images, labels, args.batch_size, args.batches)
        cells = "".join(f"{f'{wall:,.0f} ({cpu:,.0f})':>{width}}"
                        for (wall, cpu), width in ((rate, 16), (augmented, 18), (batching, 24)))
        print(f"{architecture:<13}{parameters:>11,}{cells}{augmented[1] / rate[1]:>15.1f}x", flush=True)
    print("input pipeline: shuffled numpy batches + the augmentation layers; numpy only: no augmentation; "
          "pipeline/train: per CPU second")


if __name__ == "__main__":
    main()
