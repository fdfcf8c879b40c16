"""dSprites (re-generated) and the 3D Shapes factor grid (vaekit's renderer): factor grids, rendering geometry,
the packed-bit cache and its checks, and batch serving. Nothing here generates the whole of dSprites."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vaekit.data import DataError, build_data, dsprites, shapes3d
from vaekit.data.dsprites import DSprites, GroundTruthExamples, render, render_factors, split_indices
from vaekit.data.files import writable
from vaekit.data.registry import get_data
from vaekit.data.shapes3d import FLOOR, OBJECT, WALL, Shapes3D, Shapes3DConfig

PI = np.pi


def _ds() -> DSprites:
    return DSprites(path="/nonexistent/dsprites_v1.bin")  # lazy: nothing is read until an observation is asked


# ------------------------------------------------------------------------------------------------ the factor grids


def test_factor_grids_match_the_published_specifications() -> None:
    ds, s3 = _ds(), Shapes3D()
    assert ds.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert ds.factor_sizes == (3, 6, 40, 32, 32) and len(ds) == 737_280 and ds.observation_shape == (1, 64, 64)
    assert s3.factor_names == ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    assert s3.factor_sizes == (10, 10, 10, 8, 4, 15) and len(s3) == 480_000 and s3.observation_shape == (3, 64, 64)
    np.testing.assert_allclose(dsprites.SCALES, [0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert dsprites.ORIENTATIONS[0] == 0 and dsprites.ORIENTATIONS[-1] == 2 * PI  # both ends, as the original
    assert dsprites.POSITIONS[0] == 0 and dsprites.POSITIONS[-1] == 1 and len(dsprites.POSITIONS) == 32
    np.testing.assert_allclose(shapes3d.HUES, np.arange(10) / 10)
    np.testing.assert_allclose(shapes3d.SCALES[[0, -1]], [0.75, 1.25])
    np.testing.assert_allclose(shapes3d.ORIENTATIONS[[0, 7, -1]], [-30, 0, 30])


@pytest.mark.parametrize("data", [_ds(), Shapes3D()], ids=["dsprites", "shapes3d"])
def test_index_and_factors_round_trip_in_row_major_order(data) -> None:
    rng = np.random.default_rng(0)
    f = data.sample_factors(500, rng)
    assert (data.factors_of(data.index(f)) == f).all()
    idx = rng.integers(0, len(data), 500)
    assert (data.index(data.factors_of(idx)) == idx).all()
    assert data.index(np.array([[s - 1 for s in data.factor_sizes]]))[0] == len(data) - 1


def test_dsprites_index_order_is_the_originals_pos_y_fastest() -> None:
    ds = _ds()
    assert ds.factors_of(np.array([0, 1]))[1].tolist() == [0, 0, 0, 0, 1]  # index 1 differs only in pos_y
    assert ds.factors_of(np.array([32]))[0].tolist() == [0, 0, 0, 1, 0]
    assert ds.factors_of(np.array([1024]))[0].tolist() == [0, 0, 1, 0, 0]
    assert ds.factors_of(np.array([245_760]))[0].tolist() == [1, 0, 0, 0, 0]  # 6 * 40 * 32 * 32


# ------------------------------------------------------------------------------------------------- dSprites render


def _centroid(img: np.ndarray) -> tuple[float, float]:
    rows, cols = np.nonzero(img)
    return cols.mean(), rows.mean()


def test_render_is_binary_and_position_moves_the_sprite_right_and_down() -> None:
    pos = dsprites.POSITIONS
    for shape in range(3):
        across = render(shape, 1.0, 0.0, pos, 0.5)
        down = render(shape, 1.0, 0.0, 0.5, pos)
        assert across.dtype == np.bool_ and across.shape == (32, 64, 64)
        cx = np.array([_centroid(im)[0] for im in across])
        cy = np.array([_centroid(im)[1] for im in down])
        assert (np.diff(cx) > 0).all() and (np.diff(cy) > 0).all()
        # The centroid sits at 16 + 32 pos pixels (pixel centres at i + 0.5).
        np.testing.assert_allclose(cx + 0.5, 16 + 32 * pos, atol=0.6)
        np.testing.assert_allclose(cy + 0.5, 16 + 32 * pos, atol=0.6)
        assert np.ptp([_centroid(im)[1] for im in across]) < 0.6  # pos_x leaves the row alone


def test_area_grows_as_scale_squared_and_the_shapes_order_by_area() -> None:
    pos = dsprites.POSITIONS[::3]
    areas = {}
    for shape in range(3):
        for s in dsprites.SCALES:
            areas[shape, s] = render(shape, s, 0.7, pos, pos[::-1]).sum((1, 2)).mean()
        for s in dsprites.SCALES:
            assert areas[shape, s] / areas[shape, 1.0] == pytest.approx(s * s, rel=0.05)
    assert areas[1, 1.0] < areas[2, 1.0] < areas[0, 1.0]  # ellipse < heart < square
    assert areas[0, 1.0] == pytest.approx((0.30 * 64) ** 2, rel=0.03)


def test_rotation_symmetries_and_the_duplicate_last_orientation() -> None:
    theta = np.array([0.0, 0.3, 1.1, 2.0])
    pos = np.array([0.1, 0.37, 0.62, 0.9])
    square = render(0, 0.8, theta, pos, pos[::-1])
    assert (render(0, 0.8, theta + PI / 2, pos, pos[::-1]) == square).all()  # 4-fold
    assert (render(1, 0.8, theta + PI, pos, pos[::-1]) == render(1, 0.8, theta, pos, pos[::-1])).all()  # 2-fold
    assert (render(1, 0.8, theta + PI / 2, pos, pos[::-1]) != render(1, 0.8, theta, pos, pos[::-1])).any()
    assert (render(2, 0.8, theta + PI, pos, pos[::-1]) != render(2, 0.8, theta, pos, pos[::-1])).any()
    assert (render(0, 0.8, theta + 0.2, pos, pos[::-1]) != square).any()  # a square does turn
    # Orientation index 0 and 39 (0 and 2 pi) are the same image, for every shape.
    f = np.array([[k, 5, o, 3, 20] for k in range(3) for o in (0, 39)])
    imgs = render_factors(f)
    assert all((imgs[2 * k] == imgs[2 * k + 1]).all() for k in range(3))
    # The heart's point is down at orientation 0 and up at pi: the tip lies farther from the centroid than the lobes.
    for angle, sign in ((0.0, 1), (PI, -1)):
        heart = render(2, 1.0, angle, 0.5, 0.5)[0]
        rows = np.nonzero(heart.any(1))[0]
        _, cy = _centroid(heart)
        assert sign * ((rows.max() - cy) - (cy - rows.min())) > 2


def _reference(shape: int, scale: float, theta: float, pos_x: float, pos_y: float) -> np.ndarray:
    """The geometry the module docstring states, evaluated plainly on the whole canvas in float64."""
    c = (np.arange(64) + 0.5) / 64
    x = (c[None, :] - (0.25 + 0.5 * pos_x)) / scale
    y = ((0.25 + 0.5 * pos_y) - c[:, None]) / scale  # upwards
    u, v = np.cos(theta) * x + np.sin(theta) * y, np.cos(theta) * y - np.sin(theta) * x
    if shape == 0:
        return np.maximum(abs(u), abs(v)) <= 0.15
    if shape == 1:
        return (u / 0.18) ** 2 + (v / 0.09) ** 2 <= 1
    u, v = u / (0.30 / 2.278), v / (0.30 / 2.278) + 0.29348
    return (u * u + v * v - 1) ** 3 <= u * u * v**3


def test_render_draws_the_documented_geometry() -> None:
    rng = np.random.default_rng(1)
    f = np.concatenate([rng.integers(0, [3, 6, 40, 32, 32], (60, 5)),
                        [[k, 5, o, p, q] for k in range(3) for o in (5, 15) for p in (0, 31) for q in (0, 31)]])
    v = dsprites.factor_values(f)
    for img, *args in zip(render_factors(f), *(v[k] for k in dsprites.FACTOR_NAMES), strict=True):
        assert (img != _reference(*args)).sum() <= 1  # float32 against float64 at the boundary
    # The farthest-reaching sprite (the largest square at 45 degrees, 13.6 px) at every sub-pixel offset.
    pos = dsprites.POSITIONS
    for img, p, q in zip(render(0, 1.0, PI / 4, pos, pos[::-1]), pos, pos[::-1], strict=True):
        assert (img != _reference(0, 1.0, PI / 4, p, q)).sum() <= 1


def test_every_sprite_stays_inside_the_canvas() -> None:
    """All shapes, scales and orientations at the four corners: nothing on the border, nothing beyond 14 px of
    the centre (the renderer's 32 px window reaches 15 px), and nothing cut off: a sprite moved by whole pixels
    (a centre 16 px from the middle) is the middle one shifted."""
    g = np.stack(np.meshgrid(range(3), range(6), range(40), [0, 31], [0, 31], indexing="ij"), -1).reshape(-1, 5)
    imgs = render_factors(g)
    assert imgs.any(axis=(1, 2)).all()
    border = imgs[:, 0].any(1) | imgs[:, -1].any(1) | imgs[:, :, 0].any(1) | imgs[:, :, -1].any(1)
    assert not border.any()
    v = dsprites.factor_values(g)
    cx, cy = 16 + 32 * v["pos_x"], 16 + 32 * v["pos_y"]
    n, rows, cols = np.nonzero(imgs)
    assert np.hypot(cols + 0.5 - cx[n], rows + 0.5 - cy[n]).max() <= 14.0
    corner = render(v["shape"], v["scale"], v["orientation"], v["pos_x"] > 0.5, v["pos_y"] > 0.5)  # at 16 or 48 px
    middle = render(v["shape"], v["scale"], v["orientation"], 0.5, 0.5)
    sx, sy = np.where(v["pos_x"] > 0.5, 16, -16), np.where(v["pos_y"] > 0.5, 16, -16)
    assert all((np.roll(m, (y, x), axis=(0, 1)) == c).all() for m, c, x, y in zip(middle, corner, sx, sy, strict=True))


# --------------------------------------------------------------------------------------------------- dSprites cache


@pytest.fixture(scope="module")
def small_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 2,048 images (two orientations of the first square) as a cache."""
    return dsprites.generate(tmp_path_factory.mktemp("dsprites"), count=2048, progress=False)


def test_cache_holds_the_rendered_images_and_serves_them(small_cache: Path) -> None:
    ds = DSprites(path=small_cache, count=2048)
    idx = np.array([0, 5, 1023, 1024, 2047, 700])
    x = ds.observations(ds.factors_of(idx))
    assert x.shape == (6, 1, 64, 64) and x.dtype == torch.float32
    assert set(x.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(x[:, 0].bool(), torch.from_numpy(render_factors(ds.factors_of(idx))))
    examples = GroundTruthExamples(ds, np.array([7, 3, 2000]), ds.observations_at)
    batch = examples.__getitems__([2, 0])
    assert batch["x"].shape == (2, 1, 64, 64) and batch["factors"].dtype == torch.long
    assert batch["factors"].tolist() == ds.factors_of(np.array([2000, 7])).tolist()
    assert torch.equal(batch["x"], x.new_tensor(ds.observations_at(np.array([2000, 7]))))
    assert examples.head(2)["x"].shape == (2, 1, 64, 64) and len(examples.subset(2)) == 2


def test_dsprites_data_set_is_a_fixed_split_of_the_whole_grid(small_cache: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dsprites, "ground_truth", lambda cfg: DSprites(path=small_cache, count=2048))
    splits = build_data(dsprites.DSpritesConfig(val_size=3000, test_size=2000))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (732_280, 3000, 2000)
    assert splits.observation == "binary" and splits.input_shape == (1, 64, 64)
    assert isinstance(splits.ground_truth, DSprites)
    again = build_data(dsprites.DSpritesConfig(val_size=3000, test_size=2000))
    assert np.array_equal(splits.test.indices, again.test.indices)
    assert len(np.intersect1d(splits.train.indices, splits.test.indices)) == 0


def _copy_cache(src: Path, dest: Path) -> Path:
    dest.mkdir()
    for f in (src, src.with_suffix(".json")):
        (dest / f.name).write_bytes(f.read_bytes())
    return dest / src.name


def test_cache_checksum_catches_a_flipped_byte(small_cache: Path, tmp_path: Path) -> None:
    path = _copy_cache(small_cache, tmp_path / "copy")
    dsprites.load_packed(path, 2048)  # intact: loads
    raw = bytearray(path.read_bytes())
    raw[12345] ^= 0x10
    path.write_bytes(bytes(raw))
    dsprites._VERIFIED.clear()
    with pytest.raises(DataError, match="sha256") as err:
        DSprites(path=path, count=2048).observations(np.zeros((1, 5), dtype=np.int64))
    assert str(path) in str(err.value) and "delete" in str(err.value)


def test_cache_refuses_truncation_and_other_versions(small_cache: Path, tmp_path: Path) -> None:
    path = _copy_cache(small_cache, tmp_path / "truncated")
    path.write_bytes(path.read_bytes()[:-512])
    with pytest.raises(DataError, match="truncated") as err:
        dsprites.load_packed(path, 2048)
    assert str(path) in str(err.value)
    path = _copy_cache(small_cache, tmp_path / "old")
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["version"] = 0
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="version") as err:
        dsprites.load_packed(path, 2048)
    assert str(meta_path) in str(err.value)
    with pytest.raises(DataError, match="2048"):
        dsprites.load_packed(small_cache)  # a partial cache is not the whole set


def test_cache_location_falls_back_to_the_user_cache_when_the_data_dir_is_read_only(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared, user = tmp_path / "shared", tmp_path / "user"
    monkeypatch.setenv("XDG_CACHE_HOME", str(user))
    monkeypatch.delenv("VAEKIT_DATA", raising=False)
    assert dsprites.cache_folders(shared) == (shared / "dsprites", user / "vaekit" / "dsprites")
    assert dsprites.cache_folders(shared / "dsprites")[0] == shared / "dsprites"
    shared.mkdir()
    shared.chmod(0o555)  # marked read-only (root could still write it: the mode is what counts)
    assert not writable(shared / "dsprites") and writable(user / "vaekit" / "dsprites")
    targets = []
    monkeypatch.setattr(dsprites, "generate", lambda folder, progress=True: targets.append(folder) or folder)
    dsprites.locate(shared, progress=False)
    shared.chmod(0o755)
    assert targets == [user / "vaekit" / "dsprites"]
    with pytest.raises(DataError, match="not found"):
        dsprites.locate(shared, generate_missing=False)


def test_splits_are_a_fixed_disjoint_cover_and_both_sets_are_registered() -> None:
    train, val, test = split_indices(5000, 300, 200, 7, "x")
    assert (len(train), len(val), len(test)) == (4500, 300, 200)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(5000))
    assert np.array_equal(split_indices(5000, 300, 200, 7, "x")[1], val)
    with pytest.raises(DataError):
        split_indices(100, 60, 40, 0, "x")
    assert get_data("dsprites").config().name == "dsprites" and get_data("shapes3d").config().name == "shapes3d"


# ------------------------------------------------------------------------------------------------------ 3D shapes


BASE = np.array([2, 5, 7, 4, 0, 7])  # floor, wall, object hue; scale; shape; orientation


def _vary(k: int, values) -> np.ndarray:
    f = np.repeat(BASE[None], len(values), 0)
    f[:, k] = values
    return f


def test_shapes3d_images_are_deterministic_8_bit_rgb() -> None:
    f = np.array([BASE, [9, 0, 3, 7, 3, 14], [0, 9, 1, 0, 2, 0]])
    a, b = shapes3d.render_factors(f), Shapes3D().observations(f)
    assert a.shape == (3, 3, 64, 64) and a.dtype == torch.float32
    assert torch.equal(a, b) and torch.equal(a, shapes3d.render_factors(f))
    assert a.min() >= 0 and a.max() <= 1
    assert torch.equal(a * 255, (a * 255).round())


def test_shapes3d_shape_scale_and_orientation_change_the_object() -> None:
    imgs, labels = shapes3d.render_factors(_vary(4, range(4)), labels=True)
    for i in range(4):
        for j in range(i + 1, 4):
            assert (labels[i] != labels[j]).sum() > 20  # four different silhouettes
    _, labels = shapes3d.render_factors(_vary(3, range(8)), labels=True)
    assert (np.diff((labels == OBJECT).sum((1, 2)).numpy()) > 0).all()  # bigger with scale
    spheres = shapes3d.render_factors(np.array([[2, 5, 7, 4, 2, o] for o in (0, 7, 14)]))
    assert not torch.equal(spheres[0], spheres[1]) and not torch.equal(spheres[1], spheres[2])  # the camera turns


@pytest.mark.parametrize("k,surface", [(0, FLOOR), (1, WALL), (2, OBJECT)], ids=["floor", "wall", "object"])
def test_shapes3d_a_hue_changes_exactly_its_surfaces_pixels(k: int, surface: int) -> None:
    imgs, labels = shapes3d.render_factors(_vary(k, [1, 6]), labels=True)
    assert torch.equal(labels[0], labels[1])
    changed = (imgs[0] != imgs[1]).any(0)
    assert changed.any() and torch.equal(changed, labels[0] == surface)
    if surface == FLOOR:  # the floor is the bottom of the picture, the wall its top
        assert changed[-1].all() and not changed[0].any()


def test_shapes3d_memory_cache_serves_what_the_renderer_draws() -> None:
    cached, plain = Shapes3D(cache_size=3), Shapes3D()
    for idx in ([5, 9, 5, 100_000], [9, 479_999, 7], [5, 5], [1, 2, 3, 4, 5]):
        assert torch.equal(cached.images_at(np.array(idx)), plain.images_at(np.array(idx)))
    assert len(cached._slot) == 3


def test_shapes3d_data_set_serves_discrete_batches() -> None:
    splits = build_data(Shapes3DConfig(val_size=1000, test_size=500))
    assert (len(splits.train), len(splits.val), len(splits.test)) == (478_500, 1000, 500)
    assert splits.observation == "discrete8" and splits.input_shape == (3, 64, 64)
    assert isinstance(splits.ground_truth, Shapes3D)
    batch = splits.train.__getitems__(list(range(16)))
    assert batch["x"].shape == (16, 3, 64, 64) and batch["factors"].shape == (16, 6)
    assert torch.equal(batch["x"], shapes3d.render_factors(batch["factors"].numpy()))
