"""Image reading with EXIF orientation and clear errors for corrupt files."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

log = logging.getLogger(__name__)

OnError = Literal["fail", "skip"]


class ImageReadError(OSError):
    """An image that cannot be decoded; the message names the file."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to an RGB uint8 array (H, W, 3), EXIF orientation applied.

    Truncated and corrupt files raise ImageReadError naming the file: PIL would otherwise
    decode lazily and fail (or silently pad) much later, far from the cause.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()  # force the full decode now, so truncation is caught here
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageReadError(f"{path}: cannot decode image ({err})") from err
