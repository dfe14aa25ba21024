"""The seven FER2013 emotions, in the dataset's index order."""

LABELS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

# Side length of the square grey faces the classifier takes, as in FER2013.
FACE_SIZE = 48
