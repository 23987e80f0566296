"""The project's own error type: every refusal of bad input derives from `IdvError`.

Each loader raises a subclass that also derives from the builtin a caller would expect
(`ManifestError` is a ValueError, `ImageReadError` an OSError, ...), and its message names the
file and the row, sample id or key at fault. A caller, a CLI or a fuzz test can therefore tell
"the input is bad, and here is where" (IdvError) from a bug (anything else). Standard library
only: the serving side uses it too.
"""

from __future__ import annotations


class IdvError(Exception):
    """Bad input, refused with a message that names the file and the row or key at fault."""


class InputError(IdvError, ValueError):
    """An input serving cannot use as given (an image too small, an array that is no RGB uint8
    image); the message names the item."""
