"""3D Shapes' factor grid (Burgess & Kim 2018, github.com/deepmind/3d-shapes), drawn by vaekit's own renderer.

These are NOT DeepMind's 3dshapes images (rendered with MuJoCo, in ``3dshapes.h5``): only the factor grid is the
same. Each scene is drawn here, deterministically from its factors, by a small ray caster: a floor plane, a back
wall, and one object at the centre, seen from a camera that orbits the object. Models, numbers and figures from
this set are not comparable with published 3dshapes results pixel for pixel; the factor structure is the same.

Factors, in the original's order (orientation fastest), with the values the original's ``labels`` array holds:

=============  ====  ==================================================================================
floor_hue      10    0, 0.1, ..., 0.9  (the README says "10 values linearly spaced in [0, 1]"; the file's
wall_hue       10    0, 0.1, ..., 0.9   labels stop at 0.9, since hue 1 is hue 0 again)
object_hue     10    0, 0.1, ..., 0.9
scale          8     linspace(0.75, 1.25, 8)  (the file's labels; the README says [0, 1])
shape          4     0 cube, 1 cylinder, 2 sphere, 3 capsule
orientation    15    linspace(-30, 30, 15) degrees
=============  ====  ==================================================================================

480,000 RGB 64x64 scenes. The scene (world units, y up; the object stands on the floor y = 0 at the origin):

- colours: HSV (hue, 1, 1); every surface is Lambert-shaded, ambient 0.45 plus 0.55 max(0, n.l) for one
  directional light from the upper left front, and the object casts a hard shadow on the floor and the wall;
- back wall: the plane z = -3; floor: y = 0 (both unbounded);
- object of size ``scale``: cube of half-side 0.45 s; cylinder of radius 0.45 s and height 0.9 s (vertical axis);
  sphere of radius 0.5 s; capsule of radius 0.3 s whose axis segment is 0.7 s long (height 1.3 s);
- camera: pinhole, 45 degree field of view, 3.2 from the object's axis at height 1.4, looking at (0, 0.6, 0),
  turned about the vertical axis by ``orientation`` (positive: the camera moves to the viewer's right, so the
  wall turns and the cube shows another face);
- one ray per pixel (no anti-aliasing), values quantised to k/255 (``observations`` serves exactly what the data
  set serves).

Rendering is batch-vectorised in torch; measured on the 2-core CPU here (one thread, both cores busy with other
jobs): 30 ms for a batch of 64 (27 to 43 ms).
Scenes are rendered on demand (the whole set would be 5.9 GB); ``Shapes3D(cache_size=n)`` keeps the last n
rendered images in memory. For the disentanglement metrics the built splits carry the :class:`Shapes3D` object
as ``Splits.ground_truth``; :func:`ground_truth` gives it for a data config without building the splits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
import torch
from annotated_types import Ge
from torch import Tensor

from vaekit.data.dsprites import GroundTruthExamples, GroundTruthSplitConfig, split_indices
from vaekit.data.ground_truth import GroundTruthData
from vaekit.data.registry import Splits, register_data

FACTOR_NAMES = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
FACTOR_SIZES = (10, 10, 10, 8, 4, 15)
SHAPES = ("cube", "cylinder", "sphere", "capsule")
HUES = np.linspace(0.0, 0.9, 10)
SCALES = np.linspace(0.75, 1.25, 8)
ORIENTATIONS = np.linspace(-30.0, 30.0, 15)  # degrees
COUNT = int(np.prod(FACTOR_SIZES))  # 480,000
SIDE = 64

# The scene.
WALL_Z = -3.0
CAMERA_DISTANCE, CAMERA_HEIGHT, TARGET_HEIGHT, FOV_DEG = 3.2, 1.4, 0.6, 45.0
LIGHT = (-0.45, 1.0, 0.65)  # towards the light
AMBIENT, DIFFUSE = 0.45, 0.55
CUBE_HALF, CYLINDER_RADIUS, CYLINDER_HALF_HEIGHT, SPHERE_RADIUS = 0.45, 0.45, 0.45, 0.5
CAPSULE_RADIUS, CAPSULE_HALF_LENGTH = 0.3, 0.35
EPS = 1e-4

# Surface labels of :func:`render` (``labels=True``).
FLOOR, WALL, OBJECT = 0, 1, 2


def factor_values(factors: np.ndarray) -> dict[str, np.ndarray]:
    """The values of factor indices [n, 6]."""
    f = np.asarray(factors, dtype=np.int64).reshape(-1, len(FACTOR_SIZES))
    return {"floor_hue": HUES[f[:, 0]], "wall_hue": HUES[f[:, 1]], "object_hue": HUES[f[:, 2]],
            "scale": SCALES[f[:, 3]], "shape": f[:, 4], "orientation": ORIENTATIONS[f[:, 5]]}


def hue_to_rgb(hue: Tensor) -> Tensor:
    """HSV (hue, 1, 1) -> RGB, [...] -> [..., 3]."""
    k = torch.remainder(torch.tensor([5.0, 3.0, 1.0]) + hue.unsqueeze(-1) * 6.0, 6.0)
    return 1.0 - torch.clamp(torch.minimum(k, 4.0 - k), 0.0, 1.0)


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a * b).sum(-1)


def _miss_inf(t: Tensor, hit: Tensor) -> Tensor:
    return torch.where(hit & (t > EPS), t, torch.full_like(t, math.inf))


def _sphere(o: Tensor, d: Tensor, cy: Tensor, r: Tensor) -> tuple[Tensor, Tensor]:
    """First hit of rays o + t d (|d| = 1) with spheres of centre (0, cy, 0) and radius r ([B, 1] each)."""
    centre = torch.stack([torch.zeros_like(cy), cy, torch.zeros_like(cy)], -1)  # [B, 1, 3]
    oc = o - centre
    b = _dot(oc, d)
    h = b * b - (_dot(oc, oc) - r * r)
    t = _miss_inf(-b - torch.sqrt(h.clamp_min(0)), h >= 0)
    return t, (o + torch.nan_to_num(t, posinf=0).unsqueeze(-1) * d - centre) / r.unsqueeze(-1)


def _side(o: Tensor, d: Tensor, r: Tensor, y0: Tensor, y1: Tensor) -> tuple[Tensor, Tensor]:
    """First hit with the side of vertical cylinders of radius r between heights y0 and y1."""
    a = (d[..., 0] ** 2 + d[..., 2] ** 2).clamp_min(1e-12)
    b = o[..., 0] * d[..., 0] + o[..., 2] * d[..., 2]
    c = o[..., 0] ** 2 + o[..., 2] ** 2 - r * r
    h = b * b - a * c
    t = (-b - torch.sqrt(h.clamp_min(0))) / a
    y = o[..., 1] + t * d[..., 1]
    t = _miss_inf(t, (h >= 0) & (y >= y0) & (y <= y1))
    p = o + torch.nan_to_num(t, posinf=0).unsqueeze(-1) * d
    n = torch.stack([p[..., 0], torch.zeros_like(t), p[..., 2]], -1) / r.unsqueeze(-1)
    return t, n


def _cap(o: Tensor, d: Tensor, r: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """First hit with horizontal discs of radius r at height y, seen from above."""
    dy = torch.where(d[..., 1].abs() < 1e-12, torch.full_like(d[..., 1], -1e-12), d[..., 1])
    t = (y - o[..., 1]) / dy
    p = o + t.unsqueeze(-1) * d
    t = _miss_inf(t, (p[..., 0] ** 2 + p[..., 2] ** 2 <= r * r) & (dy < 0))
    return t, torch.tensor([0.0, 1.0, 0.0]).expand(d.shape)


def _box(o: Tensor, d: Tensor, half: Tensor) -> tuple[Tensor, Tensor]:
    """First hit with axis-aligned cubes of half-side ``half`` standing on the floor at the origin."""
    safe = torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    inv = 1.0 / safe
    zero = torch.zeros_like(half)
    lo = torch.stack([-half, zero, -half], -1)
    hi = torch.stack([half, 2 * half, half], -1)
    t1, t2 = (lo - o) * inv, (hi - o) * inv
    near = torch.minimum(t1, t2)
    tn, axis = near.max(-1)
    tf = torch.maximum(t1, t2).amin(-1)
    t = _miss_inf(tn, tf >= tn)
    n = -torch.sign(safe) * torch.nn.functional.one_hot(axis, 3).to(d.dtype)
    return t, n


def _nearest(*hits: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
    t, n = hits[0]
    for t2, n2 in hits[1:]:
        closer = t2 < t
        t, n = torch.where(closer, t2, t), torch.where(closer.unsqueeze(-1), n2, n)
    return t, n


def intersect(shape: int, o: Tensor, d: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """Distance along each ray to the first hit with the object (inf where it misses) and the unit normal there.

    o: ray origins [B, 1 or P, 3]; d: unit directions [B, P, 3]; s: the objects' scales [B, 1]."""
    if shape == 0:
        return _box(o, d, CUBE_HALF * s)
    if shape == 1:
        r, top = CYLINDER_RADIUS * s, 2 * CYLINDER_HALF_HEIGHT * s
        return _nearest(_side(o, d, r, torch.zeros_like(s), top), _cap(o, d, r, top))
    if shape == 2:
        return _sphere(o, d, SPHERE_RADIUS * s, SPHERE_RADIUS * s)
    if shape == 3:
        r, half = CAPSULE_RADIUS * s, CAPSULE_HALF_LENGTH * s
        return _nearest(_side(o, d, r, r, r + 2 * half), _sphere(o, d, r, r), _sphere(o, d, r + 2 * half, r))
    raise ValueError(f"shape index must be in 0..{len(SHAPES) - 1}, got {shape}")


def _camera_rays(azimuth_deg: Tensor) -> tuple[Tensor, Tensor]:
    """Camera positions [B, 1, 3] and unit ray directions [B, 64*64, 3] (row-major pixels) for azimuths [B]."""
    a = torch.deg2rad(azimuth_deg)
    cam = torch.stack([CAMERA_DISTANCE * torch.sin(a), torch.full_like(a, CAMERA_HEIGHT),
                       CAMERA_DISTANCE * torch.cos(a)], -1)  # [B, 3]
    target = torch.tensor([0.0, TARGET_HEIGHT, 0.0])
    fwd = torch.nn.functional.normalize(target - cam, dim=-1)
    right = torch.nn.functional.normalize(torch.linalg.cross(fwd, torch.tensor([0.0, 1.0, 0.0]).expand_as(fwd)),
                                          dim=-1)
    up = torch.linalg.cross(right, fwd)
    half = math.tan(math.radians(FOV_DEG) / 2)
    g = ((torch.arange(SIDE, dtype=torch.float32) + 0.5) / SIDE * 2 - 1) * half
    px = g.repeat(SIDE)  # columns, rightwards
    py = -g.repeat_interleave(SIDE)  # rows, downwards
    d = fwd[:, None] + px[None, :, None] * right[:, None] + py[None, :, None] * up[:, None]
    return cam[:, None], torch.nn.functional.normalize(d, dim=-1)


@torch.no_grad()
def render(floor_hue: Any, wall_hue: Any, object_hue: Any, scale: Any, shape: Any, orientation: Any,
           labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Scenes of factor *values* (broadcast to a common length n): float [n, 3, 64, 64] of levels k/255, and with
    ``labels`` also the surface seen at each pixel, long [n, 64, 64] (FLOOR, WALL or OBJECT)."""
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (floor_hue, wall_hue, object_hue,
                                                                              scale, orientation)),
                                 np.asarray(shape, dtype=np.int64))
    fh, wh, oh, sc, az = (torch.from_numpy(a.reshape(-1).astype(np.float32)) for a in arrays[:5])
    kind = arrays[5].reshape(-1)
    n = len(kind)
    o, d = _camera_rays(az)
    s = sc[:, None]
    t_obj = torch.full(d.shape[:2], math.inf)
    n_obj = torch.zeros(d.shape)
    for k in np.unique(kind):
        sel = torch.from_numpy(np.flatnonzero(kind == k))
        t_k, n_k = intersect(int(k), o[sel], d[sel], s[sel])
        t_obj[sel], n_obj[sel] = t_k, n_k
    dy, dz = d[..., 1], d[..., 2]
    t_floor = torch.where(dy < 0, -o[..., 1] / dy.clamp_max(-1e-12), torch.full_like(dy, math.inf))
    t_wall = torch.where(dz < 0, (WALL_Z - o[..., 2]) / dz.clamp_max(-1e-12), torch.full_like(dz, math.inf))
    surface = torch.where(t_wall < t_floor, WALL, FLOOR)
    t_bg = torch.minimum(t_floor, t_wall)
    surface = torch.where(t_obj < t_bg, OBJECT, surface)
    light = torch.nn.functional.normalize(torch.tensor(LIGHT), dim=0)
    # Shadows: does the ray from the floor or wall point towards the light hit the object?
    p = o + torch.where(torch.isinf(t_bg), torch.zeros_like(t_bg), t_bg).unsqueeze(-1) * d
    lit = torch.ones(d.shape[:2], dtype=torch.bool)
    for k in np.unique(kind):
        sel = torch.from_numpy(np.flatnonzero(kind == k))
        t_k, _ = intersect(int(k), p[sel], light.expand(len(sel), d.shape[1], 3), s[sel])
        lit[sel] = torch.isinf(t_k)
    bg_normal_dot = torch.where(surface == WALL, float(light[2]), float(light[1]))
    obj_dot = _dot(n_obj, light).clamp_min(0)
    shade = torch.where(surface == OBJECT, AMBIENT + DIFFUSE * obj_dot,
                        AMBIENT + DIFFUSE * bg_normal_dot * lit.float())
    colours = hue_to_rgb(torch.stack([fh, wh, oh], 1))  # [n, 3 surfaces, 3 channels]
    colour = torch.gather(colours, 1, surface.unsqueeze(-1).expand(n, d.shape[1], 3))
    img = (colour * shade.unsqueeze(-1)).clamp(0, 1)
    img = torch.round(img * 255).div_(255).transpose(1, 2).reshape(n, 3, SIDE, SIDE).contiguous()
    if labels:
        return img, surface.view(n, SIDE, SIDE).long()
    return img


def render_factors(factors: np.ndarray, labels: bool = False) -> Tensor | tuple[Tensor, Tensor]:
    """Scenes of factor indices [n, 6] (see :func:`render`)."""
    v = factor_values(factors)
    return render(v["floor_hue"], v["wall_hue"], v["object_hue"], v["scale"], v["shape"], v["orientation"],
                  labels=labels)


class Shapes3D(GroundTruthData):
    """The 3D Shapes factor grid, rendered on demand by :func:`render` (not DeepMind's images).

    ``cache_size`` > 0 keeps up to that many rendered images (12 KB each) in memory, oldest evicted first."""

    factor_names = FACTOR_NAMES
    factor_sizes = FACTOR_SIZES
    observation_shape = (3, SIDE, SIDE)

    def __init__(self, cache_size: int = 0) -> None:
        self.cache_size = cache_size
        self._store: Tensor | None = None
        self._slot: dict[int, int] = {}
        self._owner: list[int] = []
        self._next = 0

    def _render_u8(self, index: np.ndarray) -> Tensor:
        if not len(index):
            return torch.empty(0, 3, SIDE, SIDE, dtype=torch.uint8)
        return render_factors(self.factors_of(index)).mul_(255).round_().to(torch.uint8)

    def images_at(self, index: np.ndarray) -> Tensor:
        """uint8 [n, 3, 64, 64] of set indices."""
        index = np.asarray(index, dtype=np.int64).reshape(-1)
        if self.cache_size <= 0:
            return self._render_u8(index)
        if self._store is None:
            self._store = torch.empty(self.cache_size, 3, SIDE, SIDE, dtype=torch.uint8)
            self._owner = [-1] * self.cache_size
        out = torch.empty(len(index), 3, SIDE, SIDE, dtype=torch.uint8)
        slots = np.array([self._slot.get(int(i), -1) for i in index], dtype=np.int64)
        hit = slots >= 0
        if hit.any():
            out[torch.from_numpy(np.flatnonzero(hit))] = self._store[torch.from_numpy(slots[hit])]
        missing, where = np.unique(index[~hit], return_inverse=True)
        fresh = self._render_u8(missing)
        out[torch.from_numpy(np.flatnonzero(~hit))] = fresh[torch.from_numpy(where.reshape(-1))]
        for i, img in zip(missing[-self.cache_size:], fresh[-self.cache_size:], strict=True):
            slot = self._next
            self._next = (self._next + 1) % self.cache_size
            if self._owner[slot] >= 0:
                del self._slot[self._owner[slot]]
            self._owner[slot] = int(i)
            self._slot[int(i)] = slot
            self._store[slot] = img
        return out

    def observations_at(self, index: np.ndarray) -> Tensor:
        """Float [n, 3, 64, 64] of levels k/255, of set indices."""
        return self.images_at(index).float().div_(255.0)

    def observations(self, factors: np.ndarray) -> Tensor:
        return self.observations_at(self.index(factors))


@dataclass
class Shapes3DConfig(GroundTruthSplitConfig):
    name: str = "shapes3d"
    cache_size: Annotated[int, Ge(0)] = 0  # rendered images kept in memory (12 KB each); 0: render every batch


def ground_truth(cfg: Shapes3DConfig | None = None) -> Shapes3D:
    """The :class:`Shapes3D` ground truth of a data config, for the disentanglement metrics."""
    return Shapes3D(0 if cfg is None else cfg.cache_size)


@register_data("shapes3d", Shapes3DConfig)
def build_shapes3d(cfg: Shapes3DConfig) -> Splits:
    """3D Shapes factor grid (Burgess & Kim 2018), vaekit's renderer: 480,000 RGB 64x64 scenes rendered per batch."""
    data = ground_truth(cfg)
    train, val, test = split_indices(len(data), cfg.val_size, cfg.test_size, cfg.split_seed, "3D Shapes")
    sets = [GroundTruthExamples(data, i, data.observations_at) for i in (train, val, test)]
    return Splits(train=sets[0], val=sets[1], test=sets[2], observation="discrete8",
                  defaults={"input_shape": (3, SIDE, SIDE)}, ground_truth=data)
