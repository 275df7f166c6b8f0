"""Checkpoint files: member states as NumPy ``.npz`` archives, written atomically, read back
only when their SHA-256 matches the journal's and never with pickle."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pybt.errors import PyBTError


def npz_bytes(state: Mapping[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    arrays = {key: np.asarray(value) for key, value in state.items()}
    for key, array in arrays.items():
        if array.dtype == object:
            raise PyBTError(
                f"State entry {key!r} holds Python objects; checkpoints take numeric arrays only."
            )
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or all of the new one."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def read_checkpoint(path: Path, sha256: str) -> dict[str, np.ndarray] | None:
    """The state in ``path``, or None when the file is missing, torn or altered."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError):
        return None
