"""Does aligning faces by their eye landmarks (turned level, scaled to a fixed eye distance)
before the emotion model raise its accuracy on faces cut from pictures by our own detector?

Labelled faces are FER2013's (no labelled real photos exist here). Each face is made into a
picture as ``emotion.shifts.detector_crops`` does (enlarged 4x, set in a frame of its reflected
borders), then turned by 0, +15 or -15 degrees (a tilted head, common in real photos and video,
rare in FER2013's aligned crops), found by the built-in detector and cut out two ways: the
pipeline's crop of the detector box (what the app does), and the aligned crop from the keypoint
model's eye landmarks. Accuracy is over the faces found (the same faces for both crops).

``--measure`` first measures where the eyes sit in the pipeline's crop on PublicTest faces
(``emotion.keypoints.ALIGN_EYES``); the accuracy is on PrivateTest.

    python bench/bench_alignment.py [--faces 600] [--measure]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from emotion import EmotionClassifier  # noqa: E402
from emotion.data import load_dataset  # noqa: E402
from emotion.detect import BlazeFaceDetector  # noqa: E402
from emotion.keypoints import aligned_crops, eye_centres, shared_model  # noqa: E402
from emotion.pipeline import crop_box, crop_faces, detect_faces  # noqa: E402

FER2013 = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"
UPSCALE = 4


def pictures(faces: np.ndarray, angle: float):
    """Each face as a picture (enlarged, framed, turned by ``angle``) and its centre."""
    side = 48 * UPSCALE
    pad = side // 2
    for face in faces:
        big = cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC)
        framed = cv2.copyMakeBorder(big, pad, pad, pad, pad, cv2.BORDER_REFLECT_101)
        centre = (framed.shape[1] / 2, framed.shape[0] / 2)
        if angle:
            matrix = cv2.getRotationMatrix2D(centre, angle, 1.0)
            framed = cv2.warpAffine(framed, matrix, framed.shape[::-1], flags=cv2.INTER_LINEAR,
                                    borderMode=cv2.BORDER_REFLECT_101)
        yield framed, centre


def found_faces(detector, faces: np.ndarray, angle: float):
    """(index, grey picture, box) of every face the detector finds at the picture's centre."""
    for i, (grey, (cx, cy)) in enumerate(pictures(faces, angle)):
        boxes = detect_faces(detector, cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), 32)
        central = [b for b in boxes if b[0] <= cx <= b[0] + b[2] and b[1] <= cy <= b[1] + b[3]]
        if central:
            yield i, grey, max(central, key=lambda b: b[2] * b[3])


def measure_eyes(detector, landmarks, faces: np.ndarray) -> tuple[float, float, float]:
    """Median eye midpoint (x, y) and eye distance in the pipeline's crop, as fractions of its side."""
    rows = []
    for _, grey, box in found_faces(detector, faces, 0.0):
        points = landmarks.locate(grey, box[None])
        first, second = eye_centres(points)
        x, y, w, h = crop_box(box)
        middle = ((first + second) / 2)[0]
        rows.append([(middle[0] - x) / w, (middle[1] - y) / h, float(np.hypot(*(second - first)[0])) / w])
    return tuple(np.round(np.median(rows, axis=0), 3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=600)
    parser.add_argument("--measure", action="store_true")
    args = parser.parse_args()
    data = load_dataset(FER2013)
    detector = BlazeFaceDetector()
    landmarks = shared_model()
    classifier = EmotionClassifier.load()
    eyes = None
    if args.measure:
        eyes = measure_eyes(detector, landmarks, data.split("PublicTest").images[:args.faces])
        print(f"eyes in the pipeline's crop (PublicTest, median): midpoint x {eyes[0]}, y {eyes[1]}, "
              f"distance {eyes[2]} of the side")
    test = data.split("PrivateTest")
    faces, labels = test.images[:args.faces], test.labels[:args.faces]
    print(f"\n{'turned':<10}{'found':>7}{'pipeline crop':>15}{'aligned crop':>14}")
    totals = {"plain": [], "aligned": []}
    for angle in (0.0, 15.0, -15.0):
        kept, plain, aligned = [], [], []
        for i, grey, box in found_faces(detector, faces, angle):
            points = landmarks.locate(grey, box[None])
            kept.append(i)
            plain.append(crop_faces(grey, box[None])[0])
            aligned.append(aligned_crops(grey, points, eyes=eyes)[0] if eyes else aligned_crops(grey, points)[0])
        truth = labels[np.array(kept)]
        right_plain = classifier.predict_proba(np.array(plain)).argmax(1) == truth
        right_aligned = classifier.predict_proba(np.array(aligned)).argmax(1) == truth
        totals["plain"] += right_plain.tolist()
        totals["aligned"] += right_aligned.tolist()
        print(f"{angle:+.0f} deg{'':<4}{len(kept):>7}{right_plain.mean():>15.1%}{right_aligned.mean():>14.1%}",
              flush=True)
    print(f"{'all':<10}{len(totals['plain']):>7}{np.mean(totals['plain']):>15.1%}"
          f"{np.mean(totals['aligned']):>14.1%}")


if __name__ == "__main__":
    main()
