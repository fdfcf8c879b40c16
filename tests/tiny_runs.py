"""Tiny trained runs of every registered model (two optimizer steps on a little data), for the tests of what reads
runs: the HTML report and the explorer. ``TINY[name]`` is (recipe, overrides); a model registered without an
entry here fails the all-models tests, so a new model gets its tiny settings with it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

FAST = ["trainer.max_steps=2", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "train.epochs=1",
        "train.log_every_n_steps=1", "train.progress_bar=false", "train.figures_every_n_epochs=100",
        "trainer.max_time=null", "data.batch_size=8"]
LADDER = ["model.latent_dims=[4, 2]", "model.hidden=[16, 8]"]
OSCILLATOR = ["data.n_train=64", "data.n_val=16", "data.n_test=16"]

TINY: dict[str, tuple[Any, list[str]]] = {
    "vae": ({"model": "vae"}, ["model.hidden=[16]", "model.latent_dim=3"]),
    "conv_vae": ({"model": "conv_vae"}, ["model.channels=[4, 8]", "model.fc=16", "model.latent_dim=3"]),
    "iwae": ({"model": "iwae"}, ["model.latent_dims=[4, 2]", "model.hidden=[[16], [8]]", "model.k=2"]),
    "cvae_label": ({"model": "cvae_label"}, ["model.hidden=[16]", "model.latent_dim=3"]),
    "cvae_quadrants": ({"model": "cvae_quadrants"}, ["model.hidden=[16]", "model.latent_dim=3",
                                                     "model.baseline_hidden=[8]"]),
    "regressor": ({"model": "regressor"}, ["model.hidden=[16]"]),
    "beta_vae": ({"model": "beta_vae", "data": {"name": "dsprites"}},
                 ["model.channels=[4, 4, 8, 8]", "model.fc=16", "model.latent_dim=3", "train.metrics=[]"]),
    "ladder_vae": ({"model": "ladder_vae"}, LADDER),
    "hierarchical_vae": ({"model": "hierarchical_vae"}, LADDER),
    "provlae": ("configs/provlae_shapes3d.yaml", ["model.progressive_steps=[1, 2]", "model.fade_in_length=1",
                                                 "model.channels=4", "model.fc=16", "train.metrics=[]",
                                                 "data.val_size=16", "data.test_size=16"]),
    "tdvae": ("configs/tdvae_oscillator.yaml", [*OSCILLATOR, "model.preprocess=[8]", "model.belief_size=8"]),
    "tdvae_moving_mnist": ("configs/tdvae_moving_mnist.yaml", ["model.preprocess=[16]", "model.belief_size=8",
                                                               "data.val_size=16"]),
    "lstm_predictor": ({"model": "lstm_predictor", "data": {"name": "oscillator"}}, [*OSCILLATOR,
                                                                                     "model.hidden_size=8"]),
    "speech_vae": ("configs/speech_vae_fsdd.yaml", ["model.latent_dim=3", "model.embed=16", "model.text_convs=1",
                                                    "model.ref_channels=[4, 4]", "model.ref_time_strides=[2, 2]",
                                                    "model.ref_gru=8", "model.decoder_hidden=8",
                                                    "model.decoder_layers=1"]),
}
NEEDS_MNIST_DIR = {"vae", "conv_vae", "iwae", "cvae_label", "cvae_quadrants", "regressor", "ladder_vae",
                   "hierarchical_vae"}


def small_dsprites(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dSprites served from its first 1,024 images (a partial cache), cut into three splits below that."""
    from vaekit.data import dsprites

    cache = tmp / "dsprites" / f"{dsprites.FILE_STEM}.bin"
    if not cache.with_suffix(".json").exists():  # generated once per session's folder
        cache = dsprites.generate(tmp / "dsprites", count=1024, progress=False)
    monkeypatch.setattr(dsprites, "ground_truth", lambda cfg: dsprites.DSprites(path=cache, count=1024))
    monkeypatch.setattr(dsprites, "split_indices", lambda *a: (np.arange(0, 900), np.arange(900, 960),
                                                               np.arange(960, 1024)))


def tiny_run(name: str, root: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``root/name``, trained once (later calls reuse it), with its data ready to be read in this test (the
    small dSprites cache patched in for beta_vae)."""
    if name == "beta_vae":
        small_dsprites(root / "data", monkeypatch)
    run = root / name
    if not (run / "model.safetensors").exists():
        train_tiny(name, run, data_dir, monkeypatch)
    return run


def train_tiny(name: str, out: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A tiny run of ``name`` (a TINY key) in ``out``; returns its directory."""
    from vaekit.run.config import load_config
    from vaekit.run.fit import fit

    recipe, overrides = TINY[name]
    extra = []
    if name in NEEDS_MNIST_DIR:
        extra.append(f"data.dir={data_dir}")
    elif name == "tdvae_moving_mnist":
        extra.append(f"data.dir={data_dir / 'mnist'}")
    elif name == "speech_vae":
        if not (data_dir / "fsdd").is_dir():
            pytest.skip(f"no FSDD under {data_dir}")
        extra.append(f"data.dir={data_dir / 'fsdd'}")
    elif name == "beta_vae":
        small_dsprites(out.parent / "data", monkeypatch)
    if isinstance(recipe, dict):
        recipe = {**recipe, "name": f"tiny_{name}"}
    else:
        recipe = str(Path(__file__).resolve().parents[1] / recipe)
    cfg = load_config(recipe, [*FAST, *overrides, *extra])
    fit(cfg, out)
    return out
