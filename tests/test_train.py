"""Training end to end on real MNIST with a tiny model and a few steps."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from PIL import Image

from vaekit.cli import main
from vaekit.config import load_config
from vaekit.io import load, load_run
from vaekit.train import fit

TINY = [
    "model.hidden=[32]", "model.latent_dim=4", "train.limit_train_batches=5", "train.limit_val_batches=2",
    "train.progress_bar=false", "train.log_every_n_steps=1", "data.batch_size=32",
]


def test_resume_continues_step_count(tmp_path: Path, data_dir: Path) -> None:
    cfg = load_config({"model": "vae", "name": "tiny"}, [*TINY, f"data.dir={data_dir}", "train.epochs=1"])
    _, trainer = fit(cfg, tmp_path)
    assert trainer.global_step == 5
    last = tmp_path / "checkpoints" / "last.ckpt"
    ckpt = torch.load(last, weights_only=True)  # no pickled classes inside
    assert ckpt["global_step"] == 5 and ckpt["hyper_parameters"]["config"]["model"]["latent_dim"] == 4
    before = load(last).state_dict()

    cfg2 = load_config({"model": "vae", "name": "tiny"}, [*TINY, f"data.dir={data_dir}", "train.epochs=3"])
    module, trainer = fit(cfg2, tmp_path, resume=last)
    assert trainer.global_step == 15 and trainer.current_epoch == 3
    after = module.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it kept learning from there
    assert (tmp_path / "best.safetensors").exists() and list((tmp_path / "figures").glob("samples_*.png"))


def test_cli_train_evaluate_sample_reconstruct(tmp_path: Path, data_dir: Path,
                                               capsys) -> None:  # noqa: ANN001
    run = tmp_path / "run"
    # overrides may stand before and after options
    assert main(["train", "vae", *TINY[:3], "--data-dir", str(data_dir), *TINY[3:], "--epochs", "2",
                 "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--nll-samples", "20", "--limit", "64", "--quiet",
                 "--data-dir", str(data_dir)]) == 0
    result = json.loads((run / "eval_k20_n64.json").read_text())
    # NLL = -L_20 <= -L_1 = -ELBO, and KL >= 0; a barely-trained model sits between 100 and 550 nats.
    assert result["n_images"] == 64 and result["nll"] <= -result["elbo"] + 1.0 and result["kl"] >= 0
    assert 100 < result["nll"] < 550
    assert set(result["active_units"]) == {"z"} and 0 <= result["active_units"]["z"] <= 4
    assert main(["sample", str(run), "-n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["reconstruct", str(run), "-n", "8", "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 100 and (tmp_path / "r.png").stat().st_size > 100
    model, cfg, run_dir = load_run(run / "checkpoints" / "last.ckpt")
    assert run_dir == run and cfg.model["latent_dim"] == 4


def test_ddp_on_two_cpu_processes(tmp_path: Path, data_dir: Path) -> None:
    """--strategy/--devices reach Lightning unchanged: two gloo processes share the epoch's batches."""
    from safetensors.torch import load_file

    cfg = load_config({"model": "vae", "name": "ddp"}, [*TINY, f"data.dir={data_dir}", "train.epochs=1",
                                                        "train.strategy=ddp_spawn", "train.devices=2",
                                                        "train.accelerator=cpu"])
    _, trainer = fit(cfg, tmp_path)
    assert trainer.world_size == 2 and trainer.num_devices == 2
    weights = load_file(str(tmp_path / "model.safetensors"))
    fresh = load(tmp_path).state_dict()
    assert weights.keys() == fresh.keys()
    metrics = (tmp_path / "logs" / "metrics.csv").read_text()
    assert "val/elbo" in metrics


class _Recorder(Callback):
    """The first training batch of every epoch: its labels and its binarized pixels."""

    def __init__(self) -> None:
        self.first: list[dict[str, torch.Tensor]] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
        if batch_idx == 0:
            self.first.append({k: v.clone() for k, v in batch.items()})


def test_epochs_see_fresh_batches_and_figures_stay_reproducible(tmp_path: Path, data_dir: Path) -> None:
    """Figures draw under their own seed; they must not reset the training stream (order, binarization)."""
    rec = _Recorder()
    over = [*TINY, f"data.dir={data_dir}", "train.epochs=4", "train.figures_every_n_epochs=1"]
    fit(load_config({"model": "vae", "name": "a"}, over), tmp_path / "a", callbacks=[rec])
    assert len(rec.first) == 4
    for a, b in zip(rec.first[1:], rec.first[2:], strict=False):
        assert not torch.equal(a["y"], b["y"])  # a new shuffle each epoch
    same_images = [(b["y"], b["x"]) for b in rec.first]
    # Dynamic binarization: the pixel sums of epochs 2..4 differ (a frozen stream repeats them exactly).
    sums = [float(x.sum()) for _, x in same_images]
    assert len(set(sums[1:])) == 3, sums
    # Figures are reproducible: a second run with the same seed draws the same sample grid.
    fit(load_config({"model": "vae", "name": "b"}, over), tmp_path / "b")
    a, b = (Image.open(tmp_path / r / "figures" / "samples_epoch0003.png") for r in "ab")
    assert a.tobytes() == b.tobytes()
