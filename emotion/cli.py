"""``python -m emotion``: predict, evaluate and train from the terminal.

Exit codes: 0 success, 1 bad input (one line on stderr says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _silence_native_logs() -> None:
    """Send what C++ libraries write to fd 2 to /dev/null; Python's stderr stays.

    TensorFlow 2.21 prints oneDNN/CUDA start-up lines through absl whatever
    TF_CPP_MIN_LOG_LEVEL says; a bad input must still read as one line.
    Set FACEMOOD_DEBUG=1 to see them.
    """
    if os.environ.get("FACEMOOD_DEBUG"):
        return
    sys.stderr.flush()
    sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)


class InputError(Exception):
    """Bad input reported as one line, exit code 1."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m emotion", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    predict = commands.add_parser("predict", help="find faces and their emotions in photos")
    predict.add_argument("photos", nargs="+", metavar="PHOTO")
    predict.add_argument("--json", action="store_true", help="print JSON instead of text")
    predict.add_argument("--annotate", metavar="OUT_DIR", help="write annotated copies here")
    predict.add_argument("--emoji", action="store_true",
                         help="with --annotate: cover each face with its emotion's emoji")
    predict.add_argument("--model", help="a .keras model (default: the shipped one)")
    predict.add_argument("--detector", help="a YuNet .onnx face detector of your own (default: the built-in BlazeFace)")
    predict.add_argument("--keypoints", action="store_true",
                         help="add each face's 68 landmarks (x, y in the photo's pixels) to the JSON and drawings")
    predict.add_argument("--align", action="store_true",
                         help="turn each face level by its eye landmarks before reading its emotion "
                              "(implies --keypoints)")

    evaluate = commands.add_parser("evaluate", help="score a model on a FER2013 split")
    evaluate.add_argument("--data", required=True, help="FER2013 CSV (.csv or .csv.gz) or image folders")
    evaluate.add_argument("--split", default="PrivateTest", help="Training, PublicTest or PrivateTest")
    evaluate.add_argument("--model", help="a .keras model (default: the shipped one)")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of text")
    evaluate.add_argument("--tta", action="store_true",
                          help="test-time averaging over 5 shifted views (each with its mirror)")
    evaluate.add_argument("--shifts", action="store_true",
                          help="also report accuracy under crop, rotation, light, blur and JPEG shifts, "
                               "and on faces re-found and cropped by the built-in detector")
    evaluate.add_argument("--reliability", metavar="PNG", help="write a reliability (calibration) plot")

    batch = commands.add_parser("batch", help="analyse many photos and videos (folders, globs) into Parquet")
    batch.add_argument("inputs", nargs="+", metavar="INPUT", help="photos, videos, folders (recursive) or globs")
    batch.add_argument("--out", required=True, help="the Parquet folder to write, e.g. results.parquet")
    batch.add_argument("--csv", action="store_true", help="also write OUT's faces and files tables as CSV beside it")
    batch.add_argument("--workers", type=int, help="worker processes (default: one per core); with --ray, the most actors")
    batch.add_argument("--ray", metavar="auto|ADDRESS", help="run on Ray: auto (join or start a local instance) "
                                                             "or a cluster's address")
    batch.add_argument("--every", type=int, default=1, metavar="K", help="analyse every K-th video frame")
    batch.add_argument("--resume", action="store_true", help="skip the files already in --out")
    batch.add_argument("--model", help="a .keras model (default: the shipped one)")

    train = commands.add_parser("train", help="train a model on FER2013 and save it with its card")
    train.add_argument("--data", required=True, help="FER2013 CSV (.csv or .csv.gz) or image-folder dataset")
    train.add_argument("--out", required=True, help="where to write the model, e.g. models/mine.keras")
    # Options left out keep the --config file's value, or TrainConfig's default.
    train.add_argument("--config", help="a JSON file of training options (TrainConfig fields); "
                                        "the options below override it")
    train.add_argument("--resume", action="store_true",
                       help="continue the run whose checkpoint is in --run-dir (same configuration)")
    train.add_argument("--epochs", type=int)
    train.add_argument("--limit", type=int, help="train on the first N training faces only")
    train.add_argument("--architecture", help="small, vgg or resnet")
    train.add_argument("--width", type=int, help="channels of the first stage")
    train.add_argument("--batch-size", type=int)
    train.add_argument("--optimizer", choices=("adam", "sgd"))
    train.add_argument("--learning-rate", type=float)
    train.add_argument("--weight-decay", type=float)
    train.add_argument("--schedule", choices=("cosine", "constant"))
    train.add_argument("--class-weight", choices=("none", "sqrt"))
    train.add_argument("--early-stopping", type=int, help="patience in epochs; 0: off")
    train.add_argument("--no-augment", action="store_true", help="train without augmentation")
    train.add_argument("--run-dir", help="checkpoint folder (default runs/<name>)")
    train.add_argument("--seed", type=int)
    train.add_argument("--init-from", help="start from this trained model's weights (same architecture "
                                           "and width), e.g. a gentler second schedule")

    export = commands.add_parser("export", help="write a model's TFLite twin beside it, checked against Keras")
    export.add_argument("model", metavar="MODEL.keras")
    export.add_argument("--format", default="tflite", choices=("tflite", "tflite-int8", "onnx"),
                        help="tflite: float, the same probabilities (the app uses it when current); "
                             "tflite-int8: int8 weights, faster, a little less exact (the live video's)")
    export.add_argument("--data", help="FER2013 CSV whose PublicTest faces check the twin against Keras "
                                       "(default: ../shared/data/fer2013/fer2013.csv.gz when present)")
    export.add_argument("--check", type=int, default=512, help="how many faces to check on")

    for kind, averages in (("soup", "the weights of models warm-started from one model (a model soup)"),
                           ("ensemble", "the predictions of models trained apart (an ensemble in one model file)")):
        combine = commands.add_parser(kind, help=f"average {averages}, chosen on PublicTest")
        combine.add_argument("models", nargs="+", metavar="MODEL.keras",
                             help="two or more models " + ("of one architecture" if kind == "soup" else "of the same labels"))
        combine.add_argument("--data", required=True, help="FER2013 CSV (or pack): PublicTest chooses, every split scores")
        combine.add_argument("--out", required=True, help=f"the {kind}'s .keras file")
        combine.add_argument("--uniform", action="store_true",
                             help="average every model (default: greedy, keep a model only if PublicTest does not drop)")

    finetune = commands.add_parser("finetune", help="fine-tune the active model on a personal dataset")
    finetune.add_argument("--data", required=True, metavar="DST",
                          help="DST/train/<label>/ and DST/test/<label>/ (what `dataset` writes)")
    finetune.add_argument("--out", required=True, help="the new model, e.g. models/mine.keras "
                                                       "(never the shipped model)")
    finetune.add_argument("--epochs", type=int, default=5, help="default 5")
    finetune.add_argument("--freeze", type=int, default=0, metavar="N",
                          help="keep the first N layers that learn as they are (default 0)")
    finetune.add_argument("--lr", type=float, help="learning rate (default 0.0001; 0.001 for a dataset "
                                                  "with labels of its own, whose new output layer starts "
                                                  "from scratch)")
    finetune.add_argument("--model", help="the model to start from (default: the active one)")

    capture = commands.add_parser("capture", help="save face crops from a camera or a video under DATASET/<label>/")
    capture.add_argument("--emotion", required=True, metavar="LABEL",
                         help="the label: one of the seven emotions or a name of your own, e.g. smile")
    capture.add_argument("--count", type=int, default=200, help="how many crops to save (default 200)")
    source = capture.add_mutually_exclusive_group()
    source.add_argument("--camera", type=int, metavar="INDEX", help="a local camera (default 0)")
    source.add_argument("--video", metavar="FILE", help="a video file instead of a camera")
    capture.add_argument("--out", metavar="DATASET_DIR", help="the dataset folder (default datasets/mine in the project)")
    capture.add_argument("--gap", type=float, default=0.5, metavar="SECONDS",
                         help="at least this long between two saves, so the crops differ (default 0.5; "
                              "a video's own time)")

    dataset = commands.add_parser("dataset", help="make a training set (grey faces, train/test split) from SRC/<label>/")
    dataset.add_argument("src", metavar="SRC", help="captured crops or face photos in SRC/<label>/")
    dataset.add_argument("--out", required=True, metavar="DST", help="the new dataset (a folder, or a .csv file)")
    dataset.add_argument("--size", type=int, default=48, help="face side in pixels (default 48)")
    dataset.add_argument("--test", type=float, default=0.2, help="share of each label kept for testing (default 0.2)")
    dataset.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    dataset.add_argument("--format", choices=("folders", "csv"), default="folders",
                         help="DST/train/<label>/ and DST/test/<label>/ PNGs, or a FER2013-format CSV")

    pack = commands.add_parser("pack", help="write a dataset's faces as compact WebP mosaics, to train "
                                            "where the data is not (a GPU machine)")
    pack.add_argument("--data", required=True, help="FER2013 CSV (.csv or .csv.gz) or image folders")
    pack.add_argument("--out", required=True, help="the pack's folder (e.g. packs/fer2013, git-ignored)")
    pack.add_argument("--splits", nargs="+", default=["Training", "PublicTest"],
                      choices=("Training", "PublicTest", "PrivateTest"),
                      help="default: Training and PublicTest (train and choose; PrivateTest is scored here)")
    pack.add_argument("--quality", type=int, default=95, help="WebP quality, 1-100 (100: lossless); default 95")

    video = commands.add_parser("video", help="analyse a video file: the annotated video and a per-frame CSV")
    video.add_argument("input", metavar="IN", help="the video file (MP4, WebM, MOV, AVI, ...)")
    video.add_argument("--out", help="write the annotated video here (.mp4, .webm, .mkv or .mov)")
    video.add_argument("--csv", help="write one row per frame and face here")
    video.add_argument("--every", type=int, default=1, metavar="K",
                       help="analyse every K-th frame (the others show the faces found last); default 1")
    video.add_argument("--emoji", action="store_true", help="with --out: cover each face with its emotion's emoji")
    video.add_argument("--model", help="a .keras model (default: the shipped one)")
    return parser


def _predict(args) -> int:
    from PIL import Image

    from .classifier import EmotionClassifier
    from .detect import make_detector
    from .imageio import ImageError, load_image
    from .recognizer import EmotionRecognizer, photo_report

    if args.emoji and not args.annotate:
        raise InputError("--emoji draws on the annotated copies: give --annotate OUT_DIR too")
    detector = make_detector("yunet", args.detector) if args.detector else make_detector()
    recognizer = EmotionRecognizer(EmotionClassifier.load(args.model), detector)
    if args.keypoints or args.align:
        from .keypoints import KeypointModel, analyze_aligned, with_keypoints

        landmarks = KeypointModel.load()
    out_dir = Path(args.annotate) if args.annotate else None
    if out_dir:
        out_dir.mkdir(parents=True, exist_ok=True)
    report, failed = [], 0
    for photo in args.photos:
        try:
            rgb = load_image(photo)
        except ImageError as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        if args.align:
            results = analyze_aligned(recognizer, landmarks, rgb)
        else:
            results = recognizer.analyze_rgb(rgb)
        if args.keypoints and not args.align:
            results = with_keypoints(landmarks, rgb, results)
        report.append(photo_report(photo, results))
        if out_dir:
            target = out_dir / f"{Path(photo).stem}-annotated.png"
            Image.fromarray(recognizer.annotate(rgb, results, emoji=args.emoji)).save(target)
        if not args.json:
            print(f"{photo}: " + (f"{len(results)} face(s)" if results else "no face found"))
            for r in results:
                x, y, w, h = r.box
                print(f"  {r.label:<9}{r.score:6.1%}  at x={x} y={y} w={w} h={h}")
    if args.json:
        print(json.dumps(report, indent=1))
    return 1 if failed else 0


def _evaluate(args) -> int:
    from .classifier import EmotionClassifier
    from .data import SPLITS, load_dataset
    from .metrics import calibration, classification_report, format_report
    from .shifts import predict, shift_report

    if args.split not in SPLITS:
        raise InputError(f"unknown split {args.split!r}; choose from {', '.join(SPLITS)}")
    classifier = EmotionClassifier.load(args.model)
    data = load_dataset(args.data).split(args.split)
    if len(data) == 0:
        raise InputError(f"{args.data} has no {args.split} faces")
    probs = predict(classifier, data.images, args.tta)
    report = {"model": classifier.name, "split": args.split, "tta": args.tta,
              **classification_report(data.labels, probs)}
    if args.shifts:
        from . import EmotionRecognizer
        from .shifts import detector_crops

        report["shifts"] = shift_report(classifier, data.images, data.labels, args.tta)
        crops, found = detector_crops(EmotionRecognizer(classifier), data.images)
        everyone = classification_report(data.labels, crops)
        report["shifts"]["our detector's crop"] = {
            "accuracy": everyone["accuracy"], "macro_f1": everyone["macro_f1"], "found": float(found.mean()),
            "accuracy_of_found": classification_report(data.labels[found], crops[found])["accuracy"]
            if found.any() else 0.0}
    if args.reliability:
        from .plots import reliability_figure, save_figure

        save_figure(reliability_figure(calibration(data.labels, probs),
                                       f"{classifier.name} on {args.split}"), args.reliability)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"model: {classifier.name}\nsplit: {args.split}" + (" (test-time averaging)" if args.tta else "")
          + "\n" + format_report(report))
    if args.shifts:
        print("\naccuracy under shifts")
        for name, row in report["shifts"].items():
            extra = (f"  (face found in {row['found']:.1%}; {row['accuracy_of_found']:.4f} of those found)"
                     if "found" in row else "")
            print(f"  {name:<24}{row['accuracy']:8.4f}{extra}")
    if args.reliability:
        print(f"wrote {args.reliability}")
    return 0


CONFIG_OPTIONS = ("epochs", "limit", "architecture", "width", "batch_size", "optimizer",
                  "learning_rate", "weight_decay", "schedule", "class_weight", "early_stopping", "seed",
                  "init_from")


def _train_config(args):
    """The TrainConfig of ``train``: the --config file, then the options given."""
    from dataclasses import asdict

    from .model import Augmentation
    from .train import TrainConfig

    values = {}
    if args.config:
        try:
            values = json.loads(Path(args.config).read_text())
        except json.JSONDecodeError as error:
            raise InputError(f"{args.config} is not valid JSON ({error.msg}, line {error.lineno})") from None
        if not isinstance(values, dict):
            raise InputError(f"{args.config} must hold a JSON object of training options")
    values = asdict(TrainConfig.from_dict(values))
    values.update({key: getattr(args, key) for key in CONFIG_OPTIONS if getattr(args, key) is not None})
    if args.no_augment:
        values["augmentation"] = asdict(Augmentation.none())
    return TrainConfig.from_dict(values)


def _train(args) -> int:
    from .data import load_dataset
    from .train import discard_run, train

    config = _train_config(args)
    if config.epochs < 1:
        raise InputError("--epochs must be at least 1")
    data = load_dataset(args.data)

    from .jobs import TerminalBar
    from .plots import save_training_figures

    # A progress bar on a terminal; one line per epoch either way.
    result = train(data, config, args.out, run_dir=args.run_dir, progress=TerminalBar(sys.stdout),
                   resume=args.resume)
    metrics = result.card["metrics"]
    summary = ", ".join(f"{split} {m['accuracy']:.4f}" for split, m in metrics.items())
    print(f"saved {result.model_path} (best epoch {result.card['training']['best_epoch']}; "
          f"accuracy: {summary})")
    for figure in save_training_figures(result.model_path, result.card):
        print(f"wrote {figure}")
    discard_run(result.run_dir)  # the model and its card now hold everything the run made
    return 0


def _capture(args) -> int:
    from .access import DATASETS_DIR
    from .capture import Capturer, camera_frames, video_frames

    capturer = Capturer(args.out or DATASETS_DIR / "mine", args.emotion, args.count, gap_s=args.gap, started=True)
    frames = video_frames(args.video) if args.video else camera_frames(args.camera or 0)
    print(f"saving {capturer.count} crops of the largest face in {capturer.folder}" + ("" if args.video else
          "; Ctrl-C stops"), flush=True)
    seen = 0
    try:
        for seconds, rgb in frames:
            seen += 1
            path = capturer.offer(rgb, now=seconds if args.video else None)
            if path is not None:
                print(f"{capturer.saved}/{capturer.count} {path.name}", flush=True)
            if capturer.done:
                break
    except KeyboardInterrupt:
        print(f"interrupted: saved {capturer.saved} of {capturer.count} crops in {capturer.folder}", flush=True)
        return 130
    problem = capturer.status().problem
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
    if capturer.done:
        print(f"done: saved {capturer.saved} crops in {capturer.folder}")
        return 0
    ended = f"the video ended after {seen} frames" if args.video else "the camera stopped"
    if capturer.saved == 0:
        raise InputError(f"{ended} and no face was found: nothing was saved")
    print(f"{ended}: saved {capturer.saved} of {capturer.count} crops in {capturer.folder}")
    return 0


def _dataset(args) -> int:
    from .dataset import create_dataset, format_summary

    def progress(done, total, name):
        if done % 50 == 0 or done == total:
            print(f"\r{done}/{total} pictures", end="\n" if done == total else "", file=sys.stderr, flush=True)

    print(format_summary(create_dataset(args.src, args.out, size=args.size, test=args.test, seed=args.seed,
                                        fmt=args.format, progress=progress)))
    return 0


def _video(args) -> int:
    from .classifier import EmotionClassifier
    from .live import LiveSettings
    from .video import VIDEO_MIN_FACE, TerminalProgress, analyse_video, check_output, check_video

    if not args.out and not args.csv:
        raise InputError("say what to write: --out VIDEO, --csv TABLE, or both")
    if args.emoji and not args.out:
        raise InputError("--emoji draws on the annotated video: give --out VIDEO too")
    if args.every < 1:
        raise InputError("--every must be at least 1")
    check_output(args.out)
    info = check_video(args.input)  # a bad video is reported before the model loads
    classifier = EmotionClassifier.load(args.model)
    bar = TerminalProgress(sys.stderr)
    try:
        settings = LiveSettings(min_face=VIDEO_MIN_FACE, show_ids=True, emoji=args.emoji)
        summary = analyse_video(args.input, args.out, args.csv, classifier=classifier, settings=settings,
                                every=args.every, progress=bar)
    finally:
        bar.done()
    print(f"{args.input}: {summary.frames} frames ({info.width}x{info.height}"
          + (f", {summary.fps:.2f} fps" if summary.fps else "") + f"), {summary.analysed} analysed, "
          f"{summary.faces} face(s) followed, {summary.frames_per_second:.1f} frames/s")
    for path in (args.out, args.csv):
        if path:
            print(f"wrote {path}")
    return 0


def _pack(args) -> int:
    import numpy as np

    from .data import Dataset, load_dataset, write_pack

    data = load_dataset(args.data)
    keep = np.isin(data.usage, args.splits)
    record = write_pack(Dataset(data.images[keep], data.labels[keep], data.usage[keep], data.source),
                        args.out, args.quality)
    for mosaic in record["mosaics"]:
        print(f"{Path(args.out) / mosaic['file']}: {mosaic['faces']} {mosaic['split']} faces, "
              f"{mosaic['bytes'] / 2**20:.1f} MiB")
    print(f"wrote {Path(args.out) / 'pack.json'}: grey levels off by {record['mean_abs_error']:.2f} on average "
          f"(at most {record['max_abs_error']}); train on it with --data {args.out}")
    return 0


def _batch(args) -> int:
    import signal

    from .batch import BatchError, TerminalProgress, analyze, write_csv

    def stop(signum, frame):
        raise KeyboardInterrupt  # `kill` stops as Ctrl-C does: finished files written, Ray's head stopped

    signal.signal(signal.SIGTERM, stop)
    try:
        result = analyze(args.inputs, workers=args.workers, ray=args.ray, every=args.every, out=args.out,
                         resume=args.resume, model=args.model, progress=TerminalProgress(sys.stderr))
    except BatchError as error:
        raise InputError(str(error)) from None
    files, errors = result.files, result.errors
    for line in errors["error"].head(20):
        print(f"error: {line}", file=sys.stderr)
    if len(errors) > 20:
        print(f"error: ... and {len(errors) - 20} more (the files table lists them all)", file=sys.stderr)
    print(f"{args.out}: {len(files)} files ({len(errors)} could not be analysed), "
          f"{int(files['faces'].fillna(0).sum())} faces, {int(files['frames'].fillna(0).sum())} frames")
    if args.csv:
        for path in write_csv(result, args.out):
            print(f"wrote {path}")
    if result.interrupted:
        print("interrupted: the files finished so far are written; the same command with --resume "
              "continues", file=sys.stderr)
        return 130
    return 1 if len(errors) else 0


def _export(args) -> int:
    from .data import load_dataset
    from .export import ExportError, export

    if args.format == "onnx":
        raise InputError("ONNX export is not supported: tf2onnx/onnxruntime are not installed, and the "
                         "TFLite twin already runs a face in under a millisecond; use --format tflite")
    import zipfile

    model = Path(args.model)
    if not model.is_file():  # these before the data loads
        raise InputError(f"model file not found: {model}")
    if model.suffix != ".keras" or not zipfile.is_zipfile(model):
        raise InputError(f"{model.name} is not a Keras model file (.keras)")
    data = Path(args.data) if args.data else Path(__file__).resolve().parents[2] / "shared/data/fer2013/fer2013.csv.gz"
    faces = labels = None
    if args.data or data.is_file():
        check = load_dataset(data).split("PublicTest").head(args.check)
        if len(check) == 0:
            raise InputError(f"{data} has no PublicTest faces to check the export on")
        faces, labels = check.images, check.labels
    try:
        entry = export(model, args.format, faces, labels)
    except ExportError as error:
        raise InputError(str(error)) from None
    print(f"wrote {model.with_name(entry['file'])} ({entry['bytes'] / 1e6:.1f} MB, {entry['quantization']})")
    if "check" in entry:
        c = entry["check"]
        print(f"checked on {c['faces']} PublicTest faces: largest probability difference {c['max_abs_diff']:.2g} "
              f"(mirror-averaged {c['max_abs_diff_mirror_averaged']:.2g}), same label {c['same_label']:.1%}, "
              f"accuracy {c['accuracy']:.2%} (Keras {c['keras_accuracy']:.2%})")
    else:
        print("not checked against Keras: no FER2013 data (give --data)")
    return 0


def _soup(args) -> int:
    from .data import load_dataset
    from .plots import save_training_figures
    from .soup import make_soup

    for model in args.models:  # before the data loads
        if not Path(model).is_file():
            raise InputError(f"model file not found: {model}")
    result = make_soup(args.models, load_dataset(args.data), args.out, greedy=not args.uniform,
                       report=lambda line: print(line, flush=True),
                       average="predictions" if args.command == "ensemble" else "weights")
    summary = ", ".join(f"{split} {m['accuracy']:.4f}" for split, m in result.card["metrics"].items())
    print(f"saved {result.model_path}, the mean of {', '.join(p.name for p in result.kept)}'s "
          f"{'predictions' if args.command == 'ensemble' else 'weights'} (accuracy: {summary})")
    for figure in save_training_figures(result.model_path, result.card):
        print(f"wrote {figure}")
    return 0


def _finetune(args) -> int:
    from .finetune import describe, finetune
    from .jobs import TerminalBar

    try:
        result = finetune(args.data, args.out, epochs=args.epochs, freeze=args.freeze, learning_rate=args.lr,
                          base=args.model, progress=TerminalBar(sys.stdout))
    except RuntimeError as error:  # stopped before an epoch ended
        raise InputError(str(error)) from None
    print(describe(result))
    from .plots import save_training_figures

    for figure in save_training_figures(result.model_path, result.card):
        print(f"wrote {figure}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from .classifier import ModelError
    from .data import DatasetError

    args = _parser().parse_args(argv)
    _silence_native_logs()
    handlers = {"batch": _batch, "video": _video, "predict": _predict, "evaluate": _evaluate, "train": _train, "finetune": _finetune, "capture": _capture, "dataset": _dataset, "export": _export, "pack": _pack, "soup": _soup, "ensemble": _soup}
    try:
        return handlers[args.command](args)
    except (InputError, DatasetError, ModelError, ValueError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted" + ("; the same command with --resume continues the run"
                               if args.command == "train" else ""), file=sys.stderr)
        return 130
