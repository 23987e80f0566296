"""Reading samples' files: images (`idv.imaging`, shared with serving) and the error policy."""

from __future__ import annotations

from typing import Literal

from idv.imaging import ImageReadError, read_image

__all__ = ["ImageReadError", "OnError", "read_image"]

OnError = Literal["fail", "skip"]
