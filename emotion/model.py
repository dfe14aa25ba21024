"""The CNN architectures, in backend-neutral Keras 3.

Every model takes float grey faces of shape (N, 48, 48, 1) with raw 0..255
values (it rescales them itself) and returns softmax probabilities (N, 7) in
LABELS order. Augmentation layers sit at the front of the model, as in the
keras.io examples: they act in ``fit`` and are the identity in inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import layers

from .labels import FACE_SIZE, LABELS

ARCHITECTURES = ("small", "vgg", "resnet")


@dataclass
class Augmentation:
    flip: bool = True
    rotation: float = 10.0    # degrees, either way
    shift: float = 0.1        # fraction of the side, either way
    zoom: float = 0.1         # fraction, in or out
    brightness: float = 0.2   # fraction of the 0..255 range, either way
    contrast: float = 0.0     # fraction, either way
    erasing: float = 0.0      # probability of blanking a random patch (2-33 % of the face)
    blur: float = 0.0         # probability of a Gaussian blur (sigma 0.2-1.5 px, one a batch)
    jpeg: float = 0.0         # probability of JPEG compression (quality 20-95)

    @classmethod
    def none(cls) -> "Augmentation":
        return cls(flip=False, rotation=0, shift=0, zoom=0, brightness=0)

    def layers(self) -> list[layers.Layer]:
        steps = []
        if self.flip:
            steps.append(layers.RandomFlip("horizontal"))
        if self.rotation:
            steps.append(layers.RandomRotation(self.rotation / 360.0, fill_mode="reflect"))
        if self.shift:
            steps.append(layers.RandomTranslation(self.shift, self.shift, fill_mode="reflect"))
        if self.zoom:
            steps.append(layers.RandomZoom(self.zoom, fill_mode="reflect"))
        if self.brightness:
            steps.append(layers.RandomBrightness(self.brightness, value_range=(0, 255)))
        if self.contrast:
            steps.append(layers.RandomContrast(self.contrast, value_range=(0, 255)))
        if self.erasing:
            # Occlusions (hands, glasses, hair) are common in real faces and rare in FER2013.
            steps.append(layers.RandomErasing(self.erasing, value_range=(0, 255)))
        if self.blur:
            # Webcams and photos blur a face (focus, motion, a small face scaled up) and
            # FER2013's crops are mostly sharp: unseen blur cost 3 points of accuracy.
            steps.append(layers.RandomGaussianBlur((self.blur, self.blur), kernel_size=5,
                                                   sigma=(0.2, 1.5), value_range=(0, 255)))
        if self.jpeg:
            # Webcams and photo sites compress; at quality 30 the soup lost 10 points.
            steps.append(RandomJPEG(self.jpeg))
        return steps


# JPEG's luminance quantisation table at quality 50 (ITU-T T.81, Annex K), and the 8x8
# orthonormal DCT-II matrix: D @ block @ D.T is the transform JPEG applies to each block.
_JPEG_TABLE = np.array([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
    [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
    [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], np.float32)
_DCT = np.array([[np.sqrt((1 if k == 0 else 2) / 8) * np.cos(np.pi * (2 * n + 1) * k / 16)
                  for n in range(8)] for k in range(8)], np.float32)


@keras.saving.register_keras_serializable(package="facemood")
class RandomJPEG(layers.Layer):
    """JPEG's loss on grey faces, in ``keras.ops`` (so on any backend): each 8x8 block's DCT
    is divided by the luminance table of a quality drawn in ``quality``, rounded and
    transformed back, as a JPEG encoder and decoder do. Each face of a batch is compressed
    with probability ``rate``; (N, H, W, 1) with H and W multiples of 8, 0..255 values.
    The identity in inference."""

    def __init__(self, rate: float, quality: tuple[int, int] = (20, 95), seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.rate, self.quality, self.seed = rate, tuple(quality), seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def compress(self, images, quality):
        """``images`` (N, H, W, 1) as JPEG at ``quality`` (N,) (IJG's scaling of the table)."""
        ops = keras.ops
        n, h, w = ops.shape(images)[0], images.shape[1], images.shape[2]
        scale = ops.where(quality < 50, 5000.0 / quality, 200.0 - 2.0 * quality)[:, None, None, None, None]
        table = ops.clip(ops.floor((_JPEG_TABLE * scale + 50.0) / 100.0), 1.0, 255.0)
        blocks = ops.transpose(ops.reshape(images - 128.0, (n, h // 8, 8, w // 8, 8)), (0, 1, 3, 2, 4))
        dct = ops.convert_to_tensor(_DCT)
        coefficients = ops.matmul(ops.matmul(dct, blocks), ops.transpose(dct))
        coefficients = ops.round(coefficients / table) * table
        blocks = ops.matmul(ops.matmul(ops.transpose(dct), coefficients), dct)
        pixels = ops.reshape(ops.transpose(blocks, (0, 1, 3, 2, 4)), (n, h, w, 1)) + 128.0
        return ops.clip(ops.round(pixels), 0.0, 255.0)

    def call(self, images, training=False):
        if not training:
            return images
        images = keras.ops.cast(images, "float32")
        n = keras.ops.shape(images)[0]
        quality = keras.random.uniform((n,), *self.quality, seed=self.seed_generator)
        chosen = keras.random.uniform((n,), seed=self.seed_generator) < self.rate
        return keras.ops.where(chosen[:, None, None, None], self.compress(images, quality), images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "quality": self.quality, "seed": self.seed}


def build_model(architecture: str = "vgg", augmentation: Augmentation | None = None,
                dropout: float = 0.4, width: int = 32) -> keras.Model:
    """A fresh, uncompiled model of the named architecture.

    ``width`` is the channel count of the first stage; each later stage doubles it.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {ARCHITECTURES}")
    inputs = keras.Input((FACE_SIZE, FACE_SIZE, 1), name="face")
    x = inputs
    for step in (augmentation or Augmentation.none()).layers():
        x = step(x)
    x = layers.Rescaling(1.0 / 255.0)(x)
    body = {"small": _small, "vgg": _vgg, "resnet": _resnet}[architecture]
    x = body(x, width, dropout)
    outputs = layers.Dense(len(LABELS), activation="softmax", name="probs")(x)
    return keras.Model(inputs, outputs, name=f"fer_{architecture}")


def _conv_bn(x, filters: int, kernel: int = 3, strides: int = 1, activate: bool = True):
    x = layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x) if activate else x


def _head(x, units: int, dropout: float):
    x = layers.Flatten()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(units, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    return layers.Dropout(dropout)(x)


def _small(x, width: int, dropout: float):
    """Three single-conv stages: fast to train, a few points less accurate."""
    for stage in range(3):
        x = _conv_bn(x, width * 2 ** stage)
        x = layers.MaxPooling2D()(x)
    return _head(x, 128, dropout / 2)


def _vgg(x, width: int, dropout: float):
    """Four stages of two 3x3 convolutions (48 -> 24 -> 12 -> 6 -> 3)."""
    for stage in range(4):
        x = _conv_bn(x, width * 2 ** stage)
        x = _conv_bn(x, width * 2 ** stage)
        x = layers.MaxPooling2D()(x)
        x = layers.SpatialDropout2D(0.1 * stage)(x) if stage else x
    return _head(x, 256, dropout)


def residual_stages(x, width: int, blocks=(2, 2, 2, 2)):
    """Basic residual blocks (two 3x3 convolutions and a shortcut), ``blocks[i]`` of them in
    stage ``i`` with ``width * 2**i`` filters; every stage after the first halves the size.
    Shared by the emotion ResNet and the keypoint model (``emotion.keypoints``)."""
    for stage, count in enumerate(blocks):
        filters = width * 2 ** stage
        for block in range(count):
            strides = 2 if stage and block == 0 else 1
            shortcut = x
            y = _conv_bn(x, filters, strides=strides)
            y = _conv_bn(y, filters, activate=False)
            if strides != 1 or shortcut.shape[-1] != filters:
                shortcut = _conv_bn(shortcut, filters, kernel=1, strides=strides, activate=False)
            x = layers.Activation("relu")(layers.Add()([y, shortcut]))
    return x


def _resnet(x, width: int, dropout: float):
    """A small pre-activation-free ResNet: two basic blocks a stage, stride-2 between."""
    x = residual_stages(_conv_bn(x, width), width)
    x = layers.GlobalAveragePooling2D()(x)
    return layers.Dropout(dropout)(x)
