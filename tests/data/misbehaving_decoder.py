"""A clip encoder that really crashes or hangs on chosen file names (for the isolation test).

It must be importable by the decoder's child process (``spawn``), so it lives in a module of its
own instead of inside the test.
"""

from __future__ import annotations

import ctypes
import time

from components.preprocess import ClipItem, EncodeSettings, encode_clip


def encode_or_misbehave(item: ClipItem, settings: EncodeSettings) -> tuple[bytes, int]:
    """``encode_clip``, except that ``*segfault.avi`` dies of SIGSEGV and ``*hang.avi`` hangs."""
    if item.path.endswith("segfault.avi"):
        ctypes.string_at(0)  # reads address 0: a real segmentation fault, as a C decoder bug
    if item.path.endswith("hang.avi"):
        time.sleep(3600)
    return encode_clip(item, settings)
