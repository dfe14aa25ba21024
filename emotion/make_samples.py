"""Make the sample photos in ``images/``: the average FER2013 face of each emotion.

The FER2013 photos themselves may not be redistributed; an average of thousands
of training faces is nobody's likeness, yet still reads as a face with a clear
expression that the detector finds and the model can label. Run once:

    python -m emotion.make_samples --data ../shared/data/fer2013/fer2013.csv.gz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

from .data import load_dataset
from .labels import LABELS

IMAGES_DIR = Path(__file__).resolve().parent.parent / "images"
TILE = 256          # pixels per face tile
FACE = 192          # side of the face inside its tile
BACKGROUND = 235


def mean_faces(images: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per emotion, the contrast-stretched average face as uint8 (FACE, FACE)."""
    faces = {}
    for index, label in enumerate(LABELS):
        mean = images[labels == index].astype(np.float64).mean(axis=0)
        mean = (mean - mean.min()) / max(mean.max() - mean.min(), 1e-9) * 255
        faces[label] = cv2.resize(mean.astype(np.uint8), (FACE, FACE), interpolation=cv2.INTER_CUBIC)
    return faces


def tile(face: np.ndarray) -> np.ndarray:
    canvas = np.full((TILE, TILE), BACKGROUND, np.uint8)
    offset = (TILE - FACE) // 2
    canvas[offset:offset + FACE, offset:offset + FACE] = face
    return canvas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data/fer2013/fer2013.csv.gz")
    parser.add_argument("--out", default=str(IMAGES_DIR))
    args = parser.parse_args()
    train = load_dataset(args.data).split("Training")
    faces = mean_faces(train.images, train.labels)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tiles = [tile(faces[label]) for label in LABELS] + [np.full((TILE, TILE), BACKGROUND, np.uint8)]
    grid = np.vstack([np.hstack(tiles[:4]), np.hstack(tiles[4:])])
    cv2.imwrite(str(out / "average-faces-all-emotions.png"), grid)
    for label in ("happy", "surprise"):
        cv2.imwrite(str(out / f"average-face-{label}.png"), tile(faces[label]))
    print(f"wrote sample photos to {out}")


if __name__ == "__main__":
    main()
