"""Data files read as UTF-8 text, with the row and byte of the first byte that is not UTF-8.

Stdlib only: preprocessing runs in SageMaker's scikit-learn container, training and local batch
inference in this project's image, and each names a bad byte the same way.
"""

from __future__ import annotations

from pathlib import Path


class NotUtf8(ValueError):
    """The message names the file, the row (line number) and the byte offset, and how to fix it."""


def read_utf8(path: Path) -> str:
    """The file's text without a byte-order mark; NotUtf8 names where decoding stopped."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        row = data.count(b"\n", 0, error.start) + 1
        raise NotUtf8(
            f"{path}: row {row} (byte offset {error.start}) is not UTF-8 ({error.reason}); save the file as UTF-8 text"
        ) from None
    return text[1:] if text.startswith("\ufeff") else text
