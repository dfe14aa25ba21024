"""How FER2013 frames a face, in terms of the built-in detector's box: the crop the model expects.

Each FER2013 face (PublicTest split, never the figure-quoting PrivateTest) is enlarged to 96
pixels and centred on a plain 192x192 canvas; the built-in detector finds the face's box there,
and the 48x48 frame is expressed as that box grown on each side by a fraction of its width
(left, right) or height (top, bottom). The medians are ``emotion.pipeline.CROP_FRAME``.

    python bench/crop_frame.py [--faces 800]
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

from emotion.data import load_dataset  # noqa: E402
from emotion.classifier import EmotionClassifier  # noqa: E402
from emotion.detect import BlazeFaceDetector  # noqa: E402
from emotion.pipeline import CROP_FRAME, crop_faces  # noqa: E402

FER2013 = ROOT.parent / "shared" / "data" / "fer2013" / "fer2013.csv.gz"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=800)
    args = parser.parse_args()
    data = load_dataset(FER2013).split("PublicTest")
    faces, labels = data.images[: args.faces], data.labels[: args.faces]
    detector = BlazeFaceDetector()
    side, offset = 96, 48
    frames, crops, kept = [], [], []
    for i, face in enumerate(faces):
        canvas = np.full((192, 192), int(np.median(face)), np.uint8)
        canvas[offset:offset + side, offset:offset + side] = cv2.resize(face, (side, side),
                                                                         interpolation=cv2.INTER_LINEAR)
        boxes = detector.detect(canvas)
        if len(boxes) == 0:
            continue
        x, y, w, h = boxes[0].astype(float)
        crops.append(crop_faces(canvas, boxes[:1])[0])
        kept.append(i)
        frames.append([(x - offset) / w, (y - offset) / h, (offset + side - x - w) / w,
                       (offset + side - y - h) / h])
    frames = np.array(frames)
    print(f"face found in {len(frames)} of {len(faces)} FER2013 PublicTest faces")
    print("frame beyond the box (left, top, right, bottom), median:", np.round(np.median(frames, axis=0), 3))
    print("                                  quartiles 25%:", np.round(np.percentile(frames, 25, axis=0), 3))
    print("                                            75%:", np.round(np.percentile(frames, 75, axis=0), 3))
    # The check: the model reads the pipeline's crops (with CROP_FRAME as it is now) about as
    # well as the original 48x48 faces.
    classifier = EmotionClassifier.load()
    kept = np.array(kept)
    direct = (classifier.predict_proba(faces[kept]).argmax(1) == labels[kept]).mean()
    cropped = (classifier.predict_proba(np.array(crops)).argmax(1) == labels[kept]).mean()
    print(f"accuracy on these faces: original 48x48 {direct:.3f}; detected and cropped with "
          f"CROP_FRAME {CROP_FRAME}: {cropped:.3f}")


if __name__ == "__main__":
    main()
