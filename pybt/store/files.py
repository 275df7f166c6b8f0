"""Checkpoint files: member states as uncompressed NumPy ``.npz`` archives, written atomically,
read back only when their SHA-256 matches the journal's, never with pickle, and never inflated.

A run folder is untrusted input. A checkpoint is read only if its name is one PyBT makes (so
it lies inside the folder's ``checkpoints/``), its hash matches, every entry in the archive is
stored uncompressed, and every array's header declares no more bytes than the entry holds: a
"zip bomb" or a header claiming terabytes is refused before anything is allocated.

Writes go to a temporary file that is flushed and renamed into place; a failed write (disk
full, file too large, no permission) removes its temporary file and leaves the previous file
as it was. Temporary files left by a process that died mid-write are removed on the next start.
"""

from __future__ import annotations

import errno
import hashlib
import io
import math
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pybt.errors import PyBTError

CHECKPOINT_NAME = re.compile(r"member-\d{4,9}-seq-\d{8,18}\.npz")
_TEMPORARY = re.compile(r"\..+\.\d+\.tmp")
_REASONS = {
    errno.ENOSPC: "the disk is full",
    errno.EFBIG: "the file is larger than this process may write",
    errno.EDQUOT: "the disk quota is used up",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "the file system is read-only",
}


class StoreWriteError(PyBTError, OSError):
    """A file of the run folder could not be written; what was there before is intact."""


RESUME_HINT = "Free space or fix the permissions, then run again: it resumes from the last checkpoint."


def write_failure(path: Path, error: OSError, hint: str = RESUME_HINT) -> StoreWriteError:
    reason = _REASONS.get(error.errno or 0, error.strerror or str(error))
    return StoreWriteError(f"could not write {path} ({reason}); what was there before is intact. {hint}")


def npz_bytes(state: Mapping[str, np.ndarray]) -> bytes:
    """An uncompressed ``.npz`` of ``state`` (numeric arrays only: no pickled objects)."""
    buffer = io.BytesIO()
    arrays = {key: np.asarray(value) for key, value in state.items()}
    for key, array in arrays.items():
        if array.dtype.hasobject:
            raise PyBTError(
                f"State entry {key!r} holds Python objects; checkpoints take numeric arrays only."
            )
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def write_atomically(path: Path, data: bytes, hint: str = RESUME_HINT) -> None:
    """Write ``data`` to ``path`` so that ``path`` is either the old file or all of the new one.

    A link at ``path`` is replaced, never followed."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise write_failure(path, error, hint) from error


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files PyBT's writes leave when a process dies mid-write."""
    removed = []
    if folder.is_dir():
        for file in folder.iterdir():
            if _TEMPORARY.fullmatch(file.name) and not file.is_symlink() and file.is_file():
                file.unlink(missing_ok=True)
                removed.append(file)
    return removed


def checkpoint_path(folder: Path, name: str) -> Path | None:
    """``folder/name`` for a checkpoint name PyBT makes, else None (a path, ``..``, a link)."""
    if not isinstance(name, str) or not CHECKPOINT_NAME.fullmatch(name):
        return None
    path = folder / name
    return None if path.is_symlink() else path


def read_checkpoint(path: Path, sha256: str) -> dict[str, np.ndarray] | None:
    """The state in ``path``, or None when the file is missing, torn, altered or unsafe to load."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    return load_npz(data)


def load_npz(data: bytes) -> dict[str, np.ndarray] | None:
    """The arrays of an uncompressed ``.npz``, or None when it is not one or would inflate."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            entries = archive.infolist()
            if any(e.compress_type != zipfile.ZIP_STORED or e.file_size != e.compress_size for e in entries):
                return None  # PyBT never compresses: an inflating entry is not ours
            arrays = {}
            for entry in entries:
                if not entry.filename.endswith(".npy"):
                    return None
                with archive.open(entry) as stream:
                    array = _read_array(stream, entry.file_size)
                if array is None:
                    return None
                arrays[entry.filename[: -len(".npy")]] = array
            return arrays
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError):
        return None


def _read_array(stream: io.BufferedIOBase, size: int) -> np.ndarray | None:
    """One ``.npy`` from ``stream``, if its header declares no more data than the entry holds."""
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
    else:
        return None
    if dtype.hasobject:
        return None
    count = math.prod(shape)  # Python integers: a hostile shape cannot overflow the check
    if count * dtype.itemsize > size:
        return None
    data = stream.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        return None
    array = np.frombuffer(data, dtype=dtype, count=count).copy()
    return array.reshape(shape, order="F" if fortran else "C")
