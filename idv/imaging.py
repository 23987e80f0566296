"""Decoding image files, the one way training and serving both do it (Pillow and numpy only,
so the torch-free scorer uses it too): the full image, EXIF orientation applied, RGB uint8.

Every Pillow mode is converted on purpose, never by a bare ``convert("RGB")`` (which clips a
16-bit grey PNG to 255 almost everywhere and turns a float TIFF in 0..1 black):

- ``RGB``; ``L`` and ``1`` (grey, bilevel) repeated on three channels;
- 16-bit grey (``I;16`` and its byte orders) and 32-bit integer grey (``I``, read as 16-bit
  levels 0..65535, Pillow's mode for 16-bit TIFFs) scaled to 8 bits (/257, rounded); an ``I``
  image outside 0..65535 is refused;
- float grey (``F``): values in 0..1 are scaled by 255, values in 0..255 (with one above 1)
  taken as 8-bit levels; a NaN, an infinity or a value outside 0..255 is refused;
- alpha (``RGBA``, ``LA``, ``PA``, a palette with transparency): composited over black, the
  colour of the padding everywhere else in the project (alignment borders), so a transparent
  background never invents texture;
- palette (``P``), ``CMYK``, ``YCbCr``, ``LAB``, ``HSV``: Pillow's conversion to RGB;
- any other mode is refused by name.
Decoding errors of any kind (Pillow's plugins raise OSError, ValueError, struct.error,
EOFError, ...), corrupt EXIF blocks, truncation and decompression bombs (Pillow's pixel
limit) raise `ImageReadError` naming the file; a missing file or a directory is a
FileNotFoundError, a permission error stays one (the caller's problem, not the image's).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from idv.errors import IdvError

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")
CONVERTED = ("P", "CMYK", "YCbCr", "LAB", "HSV")
WITH_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")


class ImageReadError(IdvError, OSError):
    """An image that cannot be decoded; the message names the file."""


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Decode an image file to an RGB uint8 array (H, W, 3), EXIF orientation applied.

    Truncated and corrupt files raise ImageReadError naming the file: PIL would otherwise
    decode lazily and fail (or silently pad) much later, far from the cause.
    """
    from PIL import Image, ImageOps

    path = Path(path)
    if not path.is_file():  # a wrong path is the caller's error, not an undecodable image
        raise FileNotFoundError(f"{path}: image file not found (or not a file)")
    try:
        with Image.open(path) as image:
            image.load()  # force the full decode now, so truncation is caught here
            try:
                image = ImageOps.exif_transpose(image)
            except Exception as err:  # noqa: BLE001 - Pillow's EXIF parser raises struct.error, ...
                raise ImageReadError(
                    f"{path}: corrupt EXIF block ({type(err).__name__}: {err})"
                ) from err
            return to_rgb(image, str(path))
    except ImageReadError:
        raise
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"{path}: image too large to decode safely ({err})") from err
    except (PermissionError, MemoryError):
        raise
    except Exception as err:  # noqa: BLE001 - any decoder failure (UnidentifiedImageError, ...)
        raise ImageReadError(f"{path}: cannot decode image ({type(err).__name__}: {err})") from err


def to_rgb(image, source: str = "image") -> np.ndarray:
    """An RGB uint8 (H, W, 3) array from a decoded PIL image of any supported mode (see the
    module docstring); ImageReadError naming `source` for the others."""
    mode = image.mode
    if mode == "RGB":
        return np.asarray(image)
    if mode in ("L", "1"):
        return _grey(np.asarray(image.convert("L")))
    if mode in SIXTEEN_BIT or mode == "I":
        levels = np.asarray(image).astype(np.int64)
        if levels.size and (levels.min() < 0 or levels.max() > 65535):
            raise ImageReadError(
                f"{source}: {mode} image with values {levels.min()}..{levels.max()}, outside "
                "the 16-bit range 0..65535 this reader scales to 8 bits"
            )
        return _grey(np.round(levels / 257.0).astype(np.uint8))
    if mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if not np.isfinite(values).all():
            raise ImageReadError(f"{source}: float image with NaN or infinite values")
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
        if low < 0 or high > 255:
            raise ImageReadError(
                f"{source}: float image with values {low:g}..{high:g}; expected 0..1 (scaled "
                "by 255) or 0..255"
            )
        scale = 255.0 if high <= 1.0 else 1.0
        return _grey(np.round(values * scale).astype(np.uint8))
    if mode in WITH_ALPHA or (mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA")).astype(np.float64)
        alpha = rgba[..., 3:] / 255.0
        return np.round(rgba[..., :3] * alpha).astype(np.uint8)
    if mode in CONVERTED:
        return np.asarray(image.convert("RGB"))
    raise ImageReadError(
        f"{source}: unsupported image mode {mode!r} (supported: RGB, L, 1, 16-bit and 32-bit "
        f"integer grey, float grey, alpha modes, {', '.join(CONVERTED)})"
    )


def _grey(levels: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(levels[..., None], 3, axis=2))
