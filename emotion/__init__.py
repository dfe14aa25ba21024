"""facemood's library: find faces, read their emotions, train the model that does it.

>>> from emotion import EmotionRecognizer
>>> for face in EmotionRecognizer().analyze("photo.jpg"):
...     print(face.box, face.label, f"{face.score:.0%}")
"""

from .classifier import DEFAULT_MODEL, EmotionClassifier, ModelError, default_model_path
from .data import Dataset, DatasetError, load_dataset
from .detect import BlazeFaceDetector, HaarDetector, YuNetDetector, detection_scores, make_detector
from .imageio import ImageError, load_image
from .labels import FACE_SIZE, LABELS
from .recognizer import EmotionRecognizer, FaceResult, photo_report

__all__ = ["LABELS", "FACE_SIZE", "EmotionClassifier", "EmotionRecognizer", "FaceResult",
           "BlazeFaceDetector", "HaarDetector", "YuNetDetector", "make_detector", "detection_scores", "load_image", "load_dataset",
           "Dataset", "DatasetError", "ImageError", "ModelError", "DEFAULT_MODEL",
           "default_model_path", "photo_report"]
