"""train.compile: the model's loss through torch.compile gives the eager run's losses, step for step (20 steps,
the same seed, the random draws through the eager kernels), for the MLP VAE, the conv VAE and the Ladder VAE."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from torch._dynamo.utils import counters

from vaekit.run.config import load_config
from vaekit.run.fit import fit

MODELS = {
    "vae": ["model.hidden=[32]", "model.latent_dim=4"],
    "conv_vae": ["model.channels=[8, 16]", "model.fc=32", "model.latent_dim=4"],
    "ladder_vae": ["model.latent_dims=[8, 4]", "model.hidden=[32, 16]"],
}
STEPS = ["trainer.limit_train_batches=20", "trainer.limit_val_batches=1", "train.progress_bar=false",
         "data.batch_size=32", "train.epochs=1", "train.log_every_n_steps=1", "train.threads=1"]
RTOL = 1e-4  # float32 kernels fused differently: the same numbers up to rounding


def _losses(run: Path) -> list[float]:
    with open(run / "logs" / "metrics.csv") as f:
        return [float(r["train/loss"]) for r in csv.DictReader(f) if r.get("train/loss")]


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")),
                    reason="torch.compile's CPU back end (inductor) needs a C++ compiler, and none is on PATH")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_twenty_compiled_steps_give_the_eager_losses(tmp_path: Path, data_dir: Path, name: str) -> None:
    runs = {}
    for compiled in (False, True):
        cfg = load_config({"model": name, "name": name},
                          [*MODELS[name], *STEPS, f"train.compile={str(compiled).lower()}", f"data.dir={data_dir}"])
        graphs = counters["stats"]["unique_graphs"]
        fit(cfg, tmp_path / str(compiled))
        # the compiled run did go through dynamo (else this would compare two eager runs)
        assert (counters["stats"]["unique_graphs"] > graphs) == compiled
        runs[compiled] = _losses(tmp_path / str(compiled))
    assert len(runs[False]) == len(runs[True]) == 20
    for step, (eager, comp) in enumerate(zip(runs[False], runs[True], strict=True)):
        assert abs(comp - eager) <= RTOL * abs(eager), (step, eager, comp)
