"""Decoding image files, the one way training and serving both do it (Pillow and numpy only,
so the torch-free scorer uses it too): the full image, EXIF orientation applied, RGB uint8."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np


class ImageReadError(OSError):
    """An image that cannot be decoded; the message names the file."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to an RGB uint8 array (H, W, 3), EXIF orientation applied.

    Truncated and corrupt files raise ImageReadError naming the file: PIL would otherwise
    decode lazily and fail (or silently pad) much later, far from the cause.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()  # force the full decode now, so truncation is caught here
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot decode image ({err})") from err
