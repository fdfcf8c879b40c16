"""dSprites (Matthey, Higgins, Hassabis & Lerchner 2017, github.com/deepmind/dsprites-dataset), re-generated.

This is NOT DeepMind's ``dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz`` (it is not available here): the images
are drawn by :func:`render` from the published factor specification, and their pixels differ from the original's
wherever the original's exact sprite outlines (not published) differ from the ones chosen below.

Factors (disentanglement_lib's five; the original's ``color`` has one value, white, and is dropped):

=============  ====  ==========================================================================================
shape          3     square, ellipse, heart
scale          6     linspace(0.5, 1, 6)
orientation    40    linspace(0, 2 pi, 40), both ends included: the first and last coincide, as in the original
pos_x          32    linspace(0, 1, 32), left to right
pos_y          32    linspace(0, 1, 32), top to bottom
=============  ====  ==========================================================================================

737,280 binary 64x64 images, every combination once, in the original's order (pos_y fastest, then pos_x,
orientation, scale, shape): the row-major index over ``FACTOR_SIZES`` is the original's image index.

Geometry (lengths in units of the canvas side, 1 = 64 px; a pixel is on iff its centre is inside the sprite):

- The sprite's centre (its area centroid) is at x = 0.25 + 0.5 pos_x (columns, rightwards) and
  y = 0.25 + 0.5 pos_y (rows, downwards): 16 to 48 px, steps of 32/31 px, so every sprite stays inside the
  canvas with at least one blank pixel at each border (the largest reaches 13.6 px from its centre).
- At scale 1: square of side 0.30 (19.2 px); ellipse with semi-axes 0.18 x 0.09 (long axis horizontal at
  orientation 0); heart ``(u^2 + v^2 - 1)^3 <= u^2 v^3`` scaled by 0.30 / 2.278 (0.30 wide, lobes up, point
  down at orientation 0). ``scale`` multiplies every length (area ~ scale^2).
- ``orientation`` turns the sprite counter-clockwise on screen about its centroid. The square's 4-fold and the
  ellipse's 2-fold symmetry make their images repeat, as in the original.

With these sizes the mean pixel over the whole set is 0.0403 (0.043 is quoted for the original: its sprites are
probably a little larger, or drawn differently).

The set is generated once, vectorised (the 1,024 positions of one (shape, scale, orientation) at a time) and cached
as packed bits, 512 bytes a row, in ``dsprites_v1.bin`` (377,487,360 bytes) beside ``dsprites_v1.json`` (version,
count and sha256). Measured on the 2-core CPU here, one thread, both cores busy with other jobs: generation 3.3 to
3.9 s (260 MB peak memory), load with its sha256 check 0.2 s, a served batch of 64 0.17 ms.

The cache lives in ``data.dir`` (the set's folder or its parent), else ``$VAEKIT_DATA/dsprites``, else the user cache;
a folder that cannot be written, or whose mode has no write bit (a shared data folder), falls back to the user cache.
Every load checks size, version and checksum: a corrupt cache is a :class:`~vaekit.data.files.DataError` naming the
file (delete it to regenerate). Batches unpack only their own rows, so the 3 GB of unpacked pixels are never held.

For the disentanglement metrics the built splits carry the :class:`DSprites` object as ``Splits.ground_truth``;
:func:`ground_truth` gives it for a data config without building the splits.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge
from numpy.lib.stride_tricks import sliding_window_view
from torch import Tensor

from vaekit.data.batches import BatchServing, index_on
from vaekit.data.files import DataError, cache_dir, read_manifest, writable
from vaekit.data.ground_truth import GroundTruthData
from vaekit.data.registry import DataConfig, Splits, register_data

FACTOR_NAMES = ("shape", "scale", "orientation", "pos_x", "pos_y")
FACTOR_SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
SCALES = np.linspace(0.5, 1.0, 6)
ORIENTATIONS = np.linspace(0.0, 2 * np.pi, 40)
POSITIONS = np.linspace(0.0, 1.0, 32)
COUNT = int(np.prod(FACTOR_SIZES))  # 737,280
SIDE = 64
ROW_BYTES = SIDE * SIDE // 8  # one packed image

# The geometry (canvas units): bump VERSION whenever it, and so the images, change.
VERSION = 1
CENTRE_MIN, CENTRE_RANGE = 0.25, 0.5
SQUARE_HALF = 0.15
ELLIPSE_AXES = (0.18, 0.09)
HEART_UNIT = 0.30 / 2.278  # the implicit heart is 2.278 units wide
HEART_CENTROID = 0.29348  # its area centroid, above the origin of (u^2 + v^2 - 1)^3 = u^2 v^3
WINDOW = 32  # pixels evaluated around each centre: sprites reach at most 13.6 px from it
# sha256 of dsprites_v1.bin as generated here (numpy 2.4, x86-64); another platform's last-bit differences in
# cos/sin could flip a boundary pixel: that gives a warning, not an error (the cache's own checksum still holds).
REFERENCE_SHA256 = "11131aeb7d63b4d4938b1b9014b0e945f67f45f84bb752703625a3af6f04506a"

FILE_STEM = f"dsprites_v{VERSION}"


def factor_values(factors: np.ndarray) -> dict[str, np.ndarray]:
    """The values of factor indices [n, 5]: shape index, scale, orientation (radians), pos_x, pos_y."""
    f = np.asarray(factors, dtype=np.int64).reshape(-1, len(FACTOR_SIZES))
    return {"shape": f[:, 0], "scale": SCALES[f[:, 1]], "orientation": ORIENTATIONS[f[:, 2]],
            "pos_x": POSITIONS[f[:, 3]], "pos_y": POSITIONS[f[:, 4]]}


def render(shape: Any, scale: Any, orientation: Any, pos_x: Any, pos_y: Any) -> np.ndarray:
    """Binary images bool [n, 64, 64] of sprites given by factor *values* (broadcast to a common length n):
    shape index (0 square, 1 ellipse, 2 heart), scale, orientation in radians, pos_x and pos_y in [0, 1].

    Each pixel centre is mapped into the sprite's own frame (translated, rotated, divided by scale) and tested
    against the shape's inside; only a 32 x 32 window about the centre is evaluated. The generator renders the
    whole set with this function."""
    shape, scale, orientation, pos_x, pos_y = np.broadcast_arrays(
        np.asarray(shape, dtype=np.int64), *(np.asarray(a, dtype=np.float64) for a in (scale, orientation, pos_x,
                                                                                          pos_y)))
    shape, scale, orientation, pos_x, pos_y = (a.reshape(-1) for a in (shape, scale, orientation, pos_x, pos_y))
    if ((shape < 0) | (shape >= len(SHAPES))).any():
        raise ValueError(f"shape indices must be in 0..{len(SHAPES) - 1}")
    n = len(shape)
    cx = (CENTRE_MIN + CENTRE_RANGE * pos_x) * SIDE  # pixels
    cy = (CENTRE_MIN + CENTRE_RANGE * pos_y) * SIDE
    x0 = np.clip(np.floor(cx + 0.5).astype(np.int64) - WINDOW // 2, 0, SIDE - WINDOW)
    y0 = np.clip(np.floor(cy + 0.5).astype(np.int64) - WINDOW // 2, 0, SIDE - WINDOW)
    offs = np.arange(WINDOW) + 0.5
    size = scale * SIDE  # pixels per sprite unit
    dx = (x0[:, None] + offs - cx[:, None]) / size[:, None]  # [n, W] sprite units, rightwards
    dy = (cy[:, None] - y0[:, None] - offs) / size[:, None]  # [n, W] upwards
    theta = np.mod(orientation, 2 * np.pi)
    c, s = np.cos(theta)[:, None], np.sin(theta)[:, None]
    window = np.zeros((n, WINDOW, WINDOW), dtype=bool)
    for k in range(len(SHAPES)):
        sel = np.flatnonzero(shape == k)
        if not len(sel):
            continue
        # u = c dx + s dy (along the sprite's first axis), v = c dy - s dx: rows [n, W, 1] + columns [n, 1, W].
        ux, uy = (c[sel] * dx[sel]), (s[sel] * dy[sel])
        vx, vy = (-s[sel] * dx[sel]), (c[sel] * dy[sel])
        if k == 0:
            h = SQUARE_HALF
            ux, uy, vx, vy = ux / h, uy / h, vx / h, vy / h
        elif k == 1:
            a, b = ELLIPSE_AXES
            ux, uy, vx, vy = ux / a, uy / a, vx / b, vy / b
        else:
            ux, uy, vx, vy = ux / HEART_UNIT, uy / HEART_UNIT, vx / HEART_UNIT, vy / HEART_UNIT + HEART_CENTROID
        u = ux.astype(np.float32)[:, None, :] + uy.astype(np.float32)[:, :, None]
        v = vx.astype(np.float32)[:, None, :] + vy.astype(np.float32)[:, :, None]
        if k == 0:
            np.abs(u, out=u)
            np.abs(v, out=v)
            np.maximum(u, v, out=u)
            window[sel] = u <= 1
        elif k == 1:
            u *= u
            v *= v
            u += v
            window[sel] = u <= 1
        else:
            u2 = u * u
            q = v * v
            q += u2
            q -= 1
            u2 *= v
            u2 *= v
            u2 *= v  # u^2 v^3
            v = q * q
            v *= q  # q^3
            window[sel] = v <= u2
    out = np.zeros((n, SIDE, SIDE), dtype=bool)
    view = sliding_window_view(out, (WINDOW, WINDOW), axis=(1, 2), writeable=True)  # [n, 33, 33, W, W]
    view[np.arange(n), y0, x0] = window
    return out


def render_factors(factors: np.ndarray) -> np.ndarray:
    """Binary images bool [n, 64, 64] of factor indices [n, 5]."""
    v = factor_values(factors)
    return render(v["shape"], v["scale"], v["orientation"], v["pos_x"], v["pos_y"])


# ----------------------------------------------------------------------------------------------------------- cache


def _folder_for(base: str | os.PathLike) -> Path:
    d = Path(base).expanduser()
    if (d / f"{FILE_STEM}.json").exists() or d.name == "dsprites":
        return d
    return d / "dsprites"


def cache_folders(data_dir: str | os.PathLike | None = None) -> tuple[Path, Path]:
    """(preferred folder, fallback folder) of the cache: ``data_dir`` (the set's folder or its parent), else
    ``$VAEKIT_DATA``; the fallback, and the default, is the user cache."""
    fallback = cache_dir() / "dsprites"
    base = data_dir if data_dir is not None else os.environ.get("VAEKIT_DATA") or None
    return (_folder_for(base) if base is not None else fallback), fallback


def _progress(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm comes with lightning
        return None
    return tqdm(total=total, unit="img", unit_scale=True, desc="generating dSprites", mininterval=1.0)


def generate(folder: str | os.PathLike, count: int = COUNT, progress: bool = True) -> Path:
    """Render the first ``count`` images of the set (all of it by default; fewer only for tests) into
    ``folder/dsprites_v1.bin`` as packed bits, with ``dsprites_v1.json`` beside it. Returns the .bin path.

    Written to temporary files and renamed, so an interrupted or concurrent run never leaves a half file."""
    if not 0 < count <= COUNT:
        raise ValueError(f"count must be in 1..{COUNT}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path, meta_path = folder / f"{FILE_STEM}.bin", folder / f"{FILE_STEM}.json"
    block = FACTOR_SIZES[3] * FACTOR_SIZES[4]  # the positions of one (shape, scale, orientation)
    sha = hashlib.sha256()
    bar = _progress(count, progress)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{FILE_STEM}-", suffix=".bin.part")
    try:
        with os.fdopen(fd, "wb") as f:
            for start in range(0, count, block):
                idx = np.arange(start, min(start + block, count))
                images = render_factors(np.stack(np.unravel_index(idx, FACTOR_SIZES), axis=1))
                rows = np.packbits(images.reshape(len(idx), -1), axis=1)
                sha.update(rows.data)
                f.write(rows.data)
                if bar is not None:
                    bar.update(len(idx))
        meta = {"format": "vaekit dSprites (re-generated, packed bits, row-major, MSB first)", "version": VERSION,
                "count": count, "row_bytes": ROW_BYTES, "factor_names": list(FACTOR_NAMES),
                "factor_sizes": list(FACTOR_SIZES), "sha256": sha.hexdigest()}
        os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; the cache is data like any other
        os.replace(tmp, path)
        fdj, tmpj = tempfile.mkstemp(dir=folder, prefix=f".{FILE_STEM}-", suffix=".json.part")
        with os.fdopen(fdj, "w") as f:
            json.dump(meta, f, indent=1)
        os.chmod(tmpj, 0o644)
        os.replace(tmpj, meta_path)
    finally:
        if bar is not None:
            bar.close()
        Path(tmp).unlink(missing_ok=True)
    if count == COUNT and REFERENCE_SHA256 and meta["sha256"] != REFERENCE_SHA256:
        import warnings

        warnings.warn(f"{path}: sha256 {meta['sha256']} differs from the reference {REFERENCE_SHA256} "
                      "(floating-point differences of this platform?)", stacklevel=2)
    return path


_VERIFIED: set[tuple[str, int, int, str]] = set()


def load_packed(path: str | os.PathLike, count: int = COUNT, verify: bool = True) -> np.ndarray:
    """The packed rows of a cache, uint8 [count, 512], memory-mapped; its size, version and sha256 checked
    against the .json beside it (once per process and file)."""
    path = Path(path)
    meta_path = path.with_suffix(".json")
    hint = "delete it (and its .json) to regenerate"
    meta = read_manifest(meta_path, "the dSprites cache", hint)
    if not isinstance(meta, dict) or meta.get("version") != VERSION:
        raise DataError(f"{meta_path}: cache version {meta.get('version') if isinstance(meta, dict) else None!r}, "
                        f"this vaekit writes version {VERSION}; {hint}")
    if meta.get("count") != count or meta.get("row_bytes") != ROW_BYTES \
            or meta.get("factor_sizes") != list(FACTOR_SIZES):
        raise DataError(f"{meta_path}: describes {meta.get('count')} images of {meta.get('row_bytes')} bytes, "
                        f"expected {count} of {ROW_BYTES}; {hint}")
    try:
        st = path.stat()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; {hint}") from None
    if st.st_size != count * ROW_BYTES:
        raise DataError(f"{path}: {st.st_size} bytes, expected {count * ROW_BYTES} (truncated or corrupt); {hint}")
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, str(meta.get("sha256")))
    if verify and key not in _VERIFIED:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        if h.hexdigest() != meta.get("sha256"):
            raise DataError(f"{path}: sha256 is {h.hexdigest()}, its {meta_path.name} says {meta.get('sha256')} "
                            f"(corrupt); {hint}")
        _VERIFIED.add(key)
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(count, ROW_BYTES))


def locate(data_dir: str | os.PathLike | None = None, generate_missing: bool = True, progress: bool = True) -> Path:
    """The cache file, generating it if it is missing (into the preferred folder, or the user cache when that
    folder cannot be written)."""
    preferred, fallback = cache_folders(data_dir)
    for folder in dict.fromkeys((preferred, fallback)):
        if (folder / f"{FILE_STEM}.json").exists() or (folder / f"{FILE_STEM}.bin").exists():
            return folder / f"{FILE_STEM}.bin"
    if not generate_missing:
        raise DataError(f"{preferred / (FILE_STEM + '.bin')}: file not found (the dSprites cache is generated on "
                        "first use)")
    target = preferred
    if not writable(preferred):
        print(f"dSprites: {preferred} is not writable; generating the cache in {fallback} instead")
        target = fallback
    print(f"dSprites: generating {COUNT:,} images into {target / (FILE_STEM + '.bin')} (once)")
    return generate(target, progress=progress)


class DSprites(GroundTruthData):
    """The re-generated dSprites set, read from its packed-bit cache.

    Constructing it is free: the cache is found (or generated) and verified when the first observation is asked
    for, or when :attr:`packed` is read. ``path`` names a cache file directly; ``count`` < 737,280 reads a partial
    cache written by ``generate(folder, count)`` (tests only: indices beyond it are out of range)."""

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    observation_shape = (1, SIDE, SIDE)

    def __init__(self, data_dir: str | os.PathLike | None = None, path: str | os.PathLike | None = None,
                 verify: bool = True, progress: bool = True, count: int = COUNT) -> None:
        self.data_dir, self.verify, self.progress, self.count = data_dir, verify, progress, count
        self.path = Path(path) if path is not None else None
        self._packed: np.ndarray | None = None

    @property
    def packed(self) -> np.ndarray:
        """The packed rows, uint8 [count, 512] (memory-mapped)."""
        if self._packed is None:
            if self.path is None:
                self.path = locate(self.data_dir, progress=self.progress)
            self._packed = load_packed(self.path, self.count, verify=self.verify)
        return self._packed

    def images_at(self, index: np.ndarray) -> Tensor:
        """Images of indices as uint8 0/1 [n, 1, 64, 64]."""
        rows = self.packed[np.asarray(index, dtype=np.int64).reshape(-1)]
        bits = np.unpackbits(rows, axis=1)
        return torch.from_numpy(bits).view(-1, 1, SIDE, SIDE)

    def observations_at(self, index: np.ndarray) -> Tensor:
        """Float 0/1 [n, 1, 64, 64] of indices."""
        return self.images_at(index).float()

    def observations(self, factors: np.ndarray) -> Tensor:
        return self.observations_at(self.index(factors))


# --------------------------------------------------------------------------------------------------- the data set


class GroundTruthExamples(BatchServing):
    """The examples of a ground-truth set at given indices, served as ``{"x": float [B, C, H, W], "factors": long
    [B, num_factors]}``; ``fetch`` turns set indices into observations, batch by batch."""

    def __init__(self, data: GroundTruthData, indices: np.ndarray, fetch: Callable[[np.ndarray], Tensor]) -> None:
        self.data, self.indices, self.fetch = data, np.asarray(indices, dtype=np.int64), fetch

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.observation_shape)

    def __getitems__(self, idx: list[int]) -> dict[str, Tensor]:
        g = self.indices[np.asarray(idx, dtype=np.int64)]
        return {"x": self.fetch(g), "factors": torch.from_numpy(self.data.factors_of(g))}

    def subset(self, n: int) -> GroundTruthExamples:
        """The first n examples, served the same way."""
        return GroundTruthExamples(self.data, self.indices[:n], self.fetch)

    def to(self, device: torch.device | str) -> BatchServing:
        """dSprites' packed bits held on ``device`` (512 bytes a sprite: 0.38 GB for the whole set); other
        ground-truth sets (3D Shapes is rendered per batch, on the host) stay where they are."""
        if isinstance(self.data, DSprites) and self.fetch == self.data.observations_at:
            return ResidentSprites(self.data, self.indices, torch.device(device))
        return self


class ResidentSprites(BatchServing):
    """The dSprites examples at ``indices`` held on ``device`` as packed bits (512 bytes an image) with their
    factors: a batch is an index slice there, unpacked there, the batches :class:`GroundTruthExamples` serves."""

    def __init__(self, data: DSprites, indices: np.ndarray, device: torch.device) -> None:
        self.data, self.indices = data, np.asarray(indices, dtype=np.int64)
        self.packed = torch.from_numpy(np.ascontiguousarray(data.packed[self.indices])).to(device)
        self.factors = torch.from_numpy(data.factors_of(self.indices)).to(device)
        # np.unpackbits' order: the most significant bit is the first pixel
        self.shifts = torch.arange(7, -1, -1, dtype=torch.uint8, device=device)

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.observation_shape)

    def __getitems__(self, idx: list[int]) -> dict[str, Tensor]:
        index = index_on(idx, self.packed.device)
        rows = self.packed.index_select(0, index)  # [B, 512]
        bits = rows.unsqueeze(-1).bitwise_right_shift(self.shifts).bitwise_and_(1)  # [B, 512, 8]
        return {"x": bits.view(-1, 1, SIDE, SIDE).float(), "factors": self.factors.index_select(0, index)}


def split_indices(count: int, val_size: int, test_size: int, seed: int, name: str) -> tuple[np.ndarray, ...]:
    """(train, val, test) indices of a fixed seeded permutation of 0..count-1: test first, then validation."""
    if val_size + test_size >= count:
        raise DataError(f"data.val_size + data.test_size = {val_size + test_size} must be below the {count:,} "
                        f"examples of {name}")
    perm = torch.randperm(count, generator=torch.Generator().manual_seed(seed)).numpy()
    return perm[val_size + test_size:], perm[test_size:test_size + val_size], perm[:test_size]


@dataclass
class GroundTruthSplitConfig(DataConfig):
    """A full factor grid cut into test / validation / train by one fixed permutation of its indices."""

    val_size: Annotated[int, Ge(0)] = 10000
    test_size: Annotated[int, Ge(0)] = 10000
    split_seed: int = 1234


@dataclass
class DSpritesConfig(GroundTruthSplitConfig):
    name: str = "dsprites"


def ground_truth(cfg: DSpritesConfig | None = None) -> DSprites:
    """The :class:`DSprites` ground truth of a data config (its cache folder), for the disentanglement metrics."""
    return DSprites(None if cfg is None else cfg.dir)


@register_data("dsprites", DSpritesConfig)
def build_dsprites(cfg: DSpritesConfig) -> Splits:
    """dSprites, re-generated (Matthey et al. 2017): 737,280 binary 64x64 sprites, 5 factors; batches carry them."""
    data = ground_truth(cfg)
    data.packed  # noqa: B018  (find, generate if needed, and verify the cache now rather than at the first batch)
    train, val, test = split_indices(len(data), cfg.val_size, cfg.test_size, cfg.split_seed, "dSprites")
    sets = [GroundTruthExamples(data, i, data.observations_at) for i in (train, val, test)]
    return Splits(train=sets[0], val=sets[1], test=sets[2], observation="binary",
                  defaults={"input_shape": (1, SIDE, SIDE)}, ground_truth=data)
