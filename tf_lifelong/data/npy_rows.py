"""A .npy array's rows, read a slice at a time: never the whole array in memory.

    rows = NpyRows.in_file("day1.npy")              # a plain .npy file
    rows = NpyRows.in_npz("day1.npz", "images")     # a member of an .npz (stored or deflated)
    rows.shape, rows.dtype
    block = rows.read(1000, 2000)                   # rows 1000..1999, an ndarray

`np.load` on an .npz decompresses a whole member, and even `mmap_mode` does not
apply inside an archive. Here the member's .npy header is parsed with
`numpy.lib.format` from the zip member's file object, then the rows asked for
are read from it: in order, a read costs only its own rows (plus the zip
decoder's buffers); a later start skips forward in small blocks (a deflated
member is decompressed and discarded up to there); an earlier one reopens the
member. The rows of a C-ordered array are contiguous on disk, which is what
makes this possible: a Fortran-ordered or object array is refused.
"""

from __future__ import annotations

import math
import os
import zipfile
import zlib

import numpy as np

from tf_lifelong.data.splits import DataError, first_line

_BLOCK = 1 << 16
"""Bytes read at a time (into a chunk's buffer, or dropped when skipping forward)."""
_HEADER_READERS = {
  (1, 0): np.lib.format.read_array_header_1_0,
  (2, 0): np.lib.format.read_array_header_2_0,
}


class NpyRows:
  """Rows of one C-ordered .npy array; `read(start, stop)` materialises only those rows."""

  def __init__(self, opener, where: str):
    """`opener()` returns a new binary file object at the start of the .npy bytes;
    `where` names the array in messages ('PATH' or 'PATH, array images')."""
    self._opener = opener
    self.where = where
    self._file = None
    self._position = 0
    """The next row the open file object would read."""
    self.shape, self.dtype, self._offset = _header(self._opened(), where)
    self.row_bytes = math.prod(self.shape[1:]) * self.dtype.itemsize
    self.rows_read = 0
    """Rows materialised so far (a bound the tests check)."""

  @classmethod
  def in_file(cls, path: str) -> NpyRows:
    """The rows of the .npy file at `path`."""
    return cls(lambda: open(path, "rb"), path)

  @classmethod
  def in_npz(cls, path: str, member: str) -> NpyRows:
    """The rows of array `member` of the .npz archive at `path`."""

    return cls(lambda: _Member(path, member + ".npy"), f"{path}, array {member}")

  def __len__(self) -> int:
    return self.shape[0]

  def _opened(self):
    try:
      return self._opener()
    except FileNotFoundError:
      raise DataError(f"{self.where.split(', ')[0]} not found") from None
    except (OSError, zipfile.BadZipFile, zlib.error, KeyError) as e:
      raise DataError(f"{self.where} is unreadable ({first_line(e)})") from None

  def read(self, start: int, stop: int) -> np.ndarray:
    """Rows start..stop-1 as an array [stop - start, *shape[1:]] of the stored dtype.

    Raises:
      DataError: the file is truncated or corrupt there (names the rows).
    """
    stop = min(stop, len(self))
    count = max(0, stop - start)
    try:
      if self._file is None or start < self._position:
        self.close()
        self._file = self._opened()
        self._skip(self._offset)
        self._position = 0
      self._skip((start - self._position) * self.row_bytes)
      data = self._read_exact(count * self.row_bytes)
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
      self.close()
      raise DataError(
        f"{self.where}: rows {start}..{stop - 1} are unreadable ({first_line(e)}); "
        "the file is corrupt"
      ) from None
    if len(data) != count * self.row_bytes:
      self.close()
      raise DataError(
        f"{self.where}: the file ends inside rows {start}..{stop - 1} (its header announces "
        f"{len(self)} rows); it is truncated"
      )
    self._position = stop
    self.rows_read += count
    return np.frombuffer(data, self.dtype).reshape((count, *self.shape[1:]))

  def _read_exact(self, size: int) -> bytearray:
    """Up to `size` bytes in one buffer, filled a block at a time (no joined copies)."""
    out = bytearray(size)
    view, filled = memoryview(out), 0
    while filled < size:
      data = self._file.read(min(size - filled, _BLOCK))
      if not data:
        break
      view[filled : filled + len(data)] = data
      filled += len(data)
    view.release()
    return out if filled == size else out[:filled]

  def _skip(self, count: int) -> None:
    """Moves the open file `count` bytes forward (seek where it can, else read and drop)."""
    if count <= 0:
      return
    if isinstance(self._file, _Member):
      while count > 0:  # ZipExtFile.seek would read up to 16 MiB at a time.
        got = len(self._file.read(min(count, _BLOCK)))
        if got == 0:
          return
        count -= got
    else:
      self._file.seek(count, os.SEEK_CUR)

  def close(self) -> None:
    """Closes the open file object (the next read reopens it)."""
    if self._file is not None:
      self._file.close()
    self._file = None


class _Member:
  """One member of a zip archive as a file object that closes its archive with it."""

  def __init__(self, path: str, name: str):
    self._archive = zipfile.ZipFile(path)
    try:
      self._member = self._archive.open(name)
    except BaseException:
      self._archive.close()
      raise

  def read(self, size: int = -1) -> bytes:
    return self._member.read(size)

  def tell(self) -> int:
    return self._member.tell()

  def close(self) -> None:
    self._member.close()
    self._archive.close()


def _header(f, where: str) -> tuple[tuple[int, ...], np.dtype, int]:
  """(shape, dtype, offset of the first row) of the .npy bytes in `f`."""
  try:
    version = np.lib.format.read_magic(f)
    reader = _HEADER_READERS.get(version)
    if reader is None:
      raise ValueError(f"unsupported .npy format version {version}")
    shape, fortran, dtype = reader(f)
  except (ValueError, OSError, EOFError, zlib.error, zipfile.BadZipFile) as e:
    raise DataError(f"{where} is not a readable .npy array ({first_line(e)})") from None
  finally:
    offset = f.tell()
    f.close()
  if dtype.hasobject:
    raise DataError(f"{where} holds Python objects; save a numeric array (uint8 or float)")
  if fortran and len(shape) > 1:
    raise DataError(
      f"{where} is stored in Fortran order, whose rows are not contiguous; save it with "
      "np.ascontiguousarray(images)"
    )
  if not shape:
    raise DataError(f"{where} is a scalar, not an array of rows")
  return tuple(int(s) for s in shape), dtype, offset
