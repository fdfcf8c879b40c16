"""The IDX format of MNIST (LeCun et al.): a magic number naming the value type and the number of dimensions,
the sizes as big-endian 32-bit integers, then the values. Read from gzip or plain files, checked as read."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from vaekit.data.files import DataError

_UBYTE = 0x08  # IDX type code for unsigned bytes


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: corrupt or truncated gzip ({e})") from None


def read_idx(path: Path, expected_shape: tuple[int, ...] | None = None) -> np.ndarray:
    """Parse an IDX file (gzip or plain), checking magic number, dimension count, shape and length."""
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: {len(raw)} bytes, too short for an IDX header")
    zero, dtype, ndim = raw[0] << 8 | raw[1], raw[2], raw[3]
    if zero != 0 or dtype != _UBYTE or ndim not in (1, 3, 4):
        raise DataError(f"{path}: bad IDX magic number {raw[:4].hex()} "
                        "(expected 00000801, 00000803 or 00000804: unsigned bytes)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if expected_shape is not None and tuple(shape) != tuple(expected_shape):
        raise DataError(f"{path}: header says shape {tuple(shape)}, expected {tuple(expected_shape)}")
    n = int(np.prod(shape))
    if len(raw) - header != n:
        raise DataError(f"{path}: truncated: {len(raw) - header} data bytes, header promises {n}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
