"""The seed-style pipeline both benchmarks compare against.

What the usual FER2013 demo scripts do on every photo or frame: OpenCV's Haar
cascade with default settings on the full image, then ``model.predict`` once per
face. Given the same trained model, only the pipeline differs from ours.
"""

import cv2
import numpy as np


def seed_style(model):
    """A function rgb uint8 (H, W, 3) -> list of (7,) probability rows, one per face."""
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def analyze(rgb):
        grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        results = []
        for x, y, w, h in cascade.detectMultiScale(grey):
            face = cv2.resize(grey[y:y + h, x:x + w], (48, 48)).astype(np.float32)
            results.append(model.predict(face[None, :, :, None], verbose=0)[0])
        return results
    return analyze
