"""Array files of the store (weights, margins, masks): written atomically, read with checks.

They live in ``<db stem>.files/`` beside the database, named by the rows that own them. A failed
write (disk full, no permission) leaves no file behind; a damaged file (truncated, overwritten)
is reported as such, naming it, instead of NumPy's or torch's internal error.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import warnings
from collections.abc import Callable
from pathlib import Path

from core.common.errors import StoreError
from core.store import check as store_check

# What torch and NumPy say when a file holds a pickle of Python objects, which they refuse
_PICKLE_REFUSED = ("unsupported global", "object arrays cannot be loaded")


def sync(path: Path) -> None:
    """``fsync`` a file or a folder (its entries): without it, a power loss after the row that
    names a file was committed could leave that file empty or missing (the rename and the data
    reach the disk in any order). Folders cannot be opened for syncing on Windows: skipped."""
    if path.is_dir() and os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ArrayFiles:
    """Mixed into ``Store``: needs ``files_dir``."""

    files_dir: Path

    def file_path(self, rel: str) -> Path:
        """``files_dir / rel``, refused (``StoreError``) unless it stays inside ``files_dir``.

        ``rel`` comes from a row of the database; a damaged or hand-edited row naming an
        absolute path, ``..`` or a symlink that leads out of the folder is never followed.
        """
        root = self.files_dir.resolve()
        path = root / rel
        if Path(rel).is_absolute() or not path.resolve().is_relative_to(root):
            raise StoreError(
                f"refused the file name {str(rel)[:200]!r} from the database: it leads outside "
                f"the store's files folder {root}"
            )
        return path

    def write_file(self, rel: str, write: Callable[[Path], None]) -> str:
        """Write a file atomically and durably (temp name, fsync, rename, fsync of its folder)
        under the files folder, so it is whole on the disk before a row names it.

        A failed write (disk full, no permission) leaves no file behind and raises
        ``StoreError`` naming it.
        """
        dest = self.file_path(rel)
        tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
        try:
            new_dirs = [p for p in (dest.parent, *dest.parent.parents) if not p.exists()]
            dest.parent.mkdir(parents=True, exist_ok=True)
            write(tmp)
            sync(tmp)  # its bytes on the disk before the name: never a whole name, empty file
            os.replace(tmp, dest)
            for folder in (dest.parent, *(p.parent for p in new_dirs)):
                sync(folder)  # the rename (and any new folder) on the disk before the row
        except OSError as err:
            raise self._write_error(dest, err) from err
        except RuntimeError as err:  # torch.save reports a failed write as "unexpected pos …"
            text = str(err).lower()
            if "unexpected pos" in text or "write" in text and "fail" in text:
                raise self._write_error(dest, err) from err
            raise
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        return rel

    @staticmethod
    def _write_error(dest: Path, err: Exception) -> StoreError:
        what = "nothing was recorded in the database"
        if isinstance(err, OSError) and err.errno == errno.EFBIG:
            return store_check.too_large(dest, f"the file was not written and {what}")
        if isinstance(err, OSError) and err.errno not in (None, errno.ENOSPC, errno.EDQUOT):
            return StoreError(f"cannot write {dest}: {err.strerror or err}; {what}")
        return store_check.no_space(dest, f"the file was not written and {what}")

    @staticmethod
    def _read_error(path: Path, kind: str, err: Exception) -> StoreError:
        """One line for a file that cannot be loaded; a pickle of objects is *refused*."""
        if any(m in str(err).lower() for m in _PICKLE_REFUSED):
            return StoreError(
                f"refused to load the {kind} file {path}: it holds Python objects, not plain "
                "numbers (a pickle that could run code when loaded), so the lab did not write "
                "it; it was not loaded. Delete it, or the model set or evaluation that owns it"
            )
        if isinstance(err, pickle.UnpicklingError):  # torch's text would suggest the unsafe way
            reason = "not the archive of tensors the lab writes"
        else:
            reason = (str(err).splitlines() or [type(err).__name__])[0][:120]
        return StoreError(
            f"the {kind} file {path} is damaged or unreadable ({reason}); it was not loaded. "
            "Delete the model set or evaluation that owns it and build it again"
        )

    def save_array(self, rel: str, arr) -> str:
        """Save a NumPy array as ``.npy`` (atomically); returns ``rel`` for the owning row."""
        import numpy as np

        def write(p: Path) -> None:
            with open(p, "wb") as fh:
                np.save(fh, arr, allow_pickle=False)

        return self.write_file(rel, write)

    def load_array(self, rel: str):
        """An array saved by ``save_array``; ``StoreError`` if missing, truncated or garbage."""
        import numpy as np

        path = self.file_path(rel)
        if not path.exists():
            raise StoreError(f"the array file {path} named by the database is missing")
        try:
            return np.load(path, allow_pickle=False)
        except (ValueError, EOFError, OSError, pickle.UnpicklingError) as err:
            raise self._read_error(path, "array", err) from err

    def save_tensors(self, rel: str, tensors: dict) -> str:
        """Save a dict of tensors with ``torch.save`` (loaded back with ``weights_only=True``)."""
        import torch

        return self.write_file(rel, lambda p: torch.save(tensors, p))

    def load_tensors(self, rel: str, device=None) -> dict:
        """Tensors saved by ``save_tensors``; ``StoreError`` if missing, truncated or garbage."""
        import torch

        path = self.file_path(rel)
        if not path.exists():
            raise StoreError(f"the weights file {path} named by the database is missing")
        try:
            with warnings.catch_warnings():  # torch warns of a foreign pickle before refusing it
                warnings.simplefilter("ignore", UserWarning)
                return torch.load(path, map_location=device or "cpu", weights_only=True)
        except (EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
            raise self._read_error(path, "weights", err) from err
        except RuntimeError as err:  # a damaged zip container; other RuntimeErrors are not ours
            if "PytorchStreamReader" in str(err) or "zip" in str(err).lower():
                raise self._read_error(path, "weights", err) from err
            raise

    def remove_files(self, rel_dir: str) -> None:
        """Delete a folder of array files (after its rows are gone)."""
        import shutil

        shutil.rmtree(self.file_path(rel_dir), ignore_errors=True)
