"""Training end to end on real MNIST with a tiny model and a few steps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from lightning.pytorch.callbacks import Callback
from PIL import Image

from vaekit.cli import main
from vaekit.run.config import load_config
from vaekit.run.fit import fit
from vaekit.run.io import load, load_run

TINY = [
    "model.hidden=[32]", "model.latent_dim=4", "trainer.limit_train_batches=5", "trainer.limit_val_batches=2",
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
    history = tmp_path / "logs" / "metrics.csv"
    steps = lambda: [int(r["step"]) for r in csv.DictReader(open(history))]  # noqa: E731, SIM115
    logged = steps()
    assert logged and max(logged) <= 5
    columns = next(csv.reader(open(history)))  # noqa: SIM115
    with open(history, "a") as f:  # a row the interrupted run logged after its checkpoint: replayed, so dropped
        f.write(",".join("999" if c == "step" else "" for c in columns) + "\n")

    cfg2 = load_config({"model": "vae", "name": "tiny"}, [*TINY, f"data.dir={data_dir}", "train.epochs=3"])
    module, trainer = fit(cfg2, tmp_path, resume="auto")
    assert trainer.global_step == 15 and trainer.current_epoch == 3
    resumed = steps()  # the history before the resume is kept (Lightning's CSV logger deletes it)
    assert set(logged) <= set(resumed) and max(resumed) > 5 and 999 not in resumed
    assert resumed == sorted(resumed)
    after = module.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it kept learning from there
    assert (tmp_path / "best.safetensors").exists() and list((tmp_path / "figures").glob("samples_*.png"))


def test_config_yaml_records_every_resolved_default(tmp_path: Path, data_dir: Path) -> None:
    from vaekit.models.vae import VAEConfig

    cfg = load_config({"model": "vae", "name": "tiny"}, [*TINY, f"data.dir={data_dir}", "train.epochs=1"])
    fit(cfg, tmp_path)
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert written["model"]["activation"] == VAEConfig.activation and written["model"]["likelihood"] == "bernoulli"
    assert written["model"]["input_shape"] == [1, 28, 28] and written["model"]["hidden"] == [32]
    assert written["model"]["kl_weight"] == {"start": 1.0, "end": 1.0, "begin": 0, "length": 0, "unit": "step"}
    assert written["data"]["binarize"] == "dynamic" and written["trainer"]["limit_train_batches"] == 5


def test_cli_train_evaluate_sample_reconstruct(tmp_path: Path, data_dir: Path,
                                               capsys) -> None:  # noqa: ANN001
    run = tmp_path / "run"
    # overrides may stand before and after options
    assert main(["train", "vae", *TINY[:3], "--data-dir", str(data_dir), *TINY[3:], "--epochs", "2",
                 "--out", str(run)]) == 0
    assert main(["evaluate", str(run), "--nll-samples", "20", "--limit", "64", "--quiet",
                 "--data-dir", str(data_dir), "--device", "not-a-device"]) == 2
    assert "argument --device: device 'not-a-device' must be auto, cpu, cuda or cuda:N" in capsys.readouterr().err
    assert not (run / "eval_k20_n64.json").exists()
    assert main(["evaluate", str(run), "--nll-samples", "20", "--limit", "64", "--quiet",
                 "--data-dir", str(data_dir)]) == 0
    result = json.loads((run / "eval_k20_n64.json").read_text())
    assert result["device"] == ("cuda:0" if torch.cuda.is_available() else "cpu")  # --device auto
    # NLL = -L_20 <= -L_1 = -ELBO, and KL >= 0; a barely-trained model sits between 100 and 550 nats.
    assert result["n_examples"] == 64 and result["nll"] <= -result["elbo"] + 1.0 and result["kl"] >= 0
    assert 100 < result["nll"] < 550
    assert result["bits_per_dim"] == pytest.approx(result["nll"] / (784 * np.log(2)))
    # Active units, counted by hand: the posterior means' variance over the 64 images above 0.01 per unit.
    model, cfg, _ = load_run(run)
    from vaekit.data import build_data

    cfg.data.dir = str(data_dir)
    x = build_data(cfg.data).test.data[:64].float() / 255
    variances = model.encode(x).mean.double().var(0, unbiased=False)
    assert result["active_units"] == {"z": int((variances > 0.01).sum())}
    assert main(["sample", str(run), "-n", "16", "--out", str(tmp_path / "s.png")]) == 0
    assert main(["reconstruct", str(run), "-n", "8", "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "s.png").stat().st_size > 100 and (tmp_path / "r.png").stat().st_size > 100
    model, cfg, run_dir = load_run(run / "checkpoints" / "last.ckpt")
    assert run_dir == run and cfg.model["latent_dim"] == 4


class _Recorder(Callback):
    """Every training batch (labels and pixels) and the loss of every step."""

    def __init__(self) -> None:
        self.batches: list[dict[str, torch.Tensor]] = []
        self.losses: dict[int, float] = {}
        self.epochs: list[int] = []

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:  # noqa: ANN001
        self.batches.append({k: v.clone() for k, v in batch.items()})
        self.epochs.append(trainer.current_epoch)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        self.losses[trainer.global_step - 1] = float(outputs["loss"])


def test_epochs_see_fresh_batches_and_figures_stay_reproducible(tmp_path: Path, data_dir: Path) -> None:
    """Figures draw under their own seed; they must not reset the training stream (order, binarization)."""
    rec = _Recorder()
    over = [*TINY, f"data.dir={data_dir}", "train.epochs=4", "train.figures_every_n_epochs=1"]
    fit(load_config({"model": "vae", "name": "a"}, over), tmp_path / "a", callbacks=[rec])
    first = [b for b, i in zip(rec.batches, range(len(rec.batches)), strict=True) if i % 5 == 0]
    assert len(first) == 4
    for a, b in zip(first[1:], first[2:], strict=False):
        assert not torch.equal(a["y"], b["y"])  # a new shuffle each epoch
    # Dynamic binarization: the pixel sums of epochs 2..4 differ (a frozen stream repeats them exactly).
    sums = [float(b["x"].sum()) for b in first]
    assert len(set(sums[1:])) == 3, sums
    # Figures are reproducible: a second run with the same seed draws the same sample grid.
    fit(load_config({"model": "vae", "name": "b"}, over), tmp_path / "b")
    a, b = (Image.open(tmp_path / r / "figures" / "samples_epoch0003.png") for r in "ab")
    assert a.tobytes() == b.tobytes()


def test_each_metrics_row_holds_its_own_step(tmp_path: Path, data_dir: Path) -> None:
    rec = _Recorder()
    over = [*TINY, f"data.dir={data_dir}", "train.epochs=3", "train.log_every_n_steps=4"]
    fit(load_config({"model": "vae", "name": "m"}, over), tmp_path, callbacks=[rec])
    rows = [r for r in csv.DictReader(open(tmp_path / "logs" / "metrics.csv")) if r.get("train/loss")]
    assert [int(r["step"]) for r in rows] == [3, 7, 11]
    for r in rows:
        assert float(r["train/loss"]) == pytest.approx(rec.losses[int(r["step"])], rel=1e-6)


def test_resume_with_max_steps_reaches_them(tmp_path: Path, data_dir: Path) -> None:
    """A run bounded by trainer.max_steps, resumed twice from end-of-epoch checkpoints, still takes all its steps
    (Lightning alone counted each resumed epoch twice against max_epochs and stopped 5 steps short each time)."""
    over = [*TINY, f"data.dir={data_dir}", "trainer.max_steps=30"]
    for epochs, steps in ((2, 10), (4, 20), (6, 30)):
        cfg = load_config({"model": "vae", "name": "m"}, [*over, f"train.epochs={epochs}"])
        _, trainer = fit(cfg, tmp_path, resume="auto" if epochs > 2 else None)
        assert trainer.global_step == steps
    cfg = load_config({"model": "vae", "name": "m"}, [*over, "train.epochs=9"])
    _, trainer = fit(cfg, tmp_path, resume="auto")
    assert trainer.global_step == 30  # max_steps still binds when the epochs would allow more


@pytest.mark.parametrize(("stop", "saved"), [(7, 6), (11, 10)], ids=["mid-epoch", "epoch-end"])
def test_resume_replays_the_uninterrupted_run(tmp_path: Path, data_dir: Path, stop: int, saved: int) -> None:
    """Stopped mid-epoch (after step 7 of 5-batch epochs, a checkpoint every step) or just after an epoch's
    checkpoint, then resumed with --resume auto: the resumed run sees the batches the uninterrupted run saw and
    ends with the same weights."""
    over = [*TINY, f"data.dir={data_dir}", "train.epochs=3", "train.checkpoint_every_n_steps=1"]
    full = _Recorder()
    module, _ = fit(load_config({"model": "vae", "name": "r"}, over), tmp_path / "full", callbacks=[full])

    class Stop(Callback):
        def on_train_batch_end(self, trainer, *args) -> None:  # noqa: ANN001, ANN002
            if trainer.global_step == stop:
                raise KeyboardInterrupt  # as if killed: Lightning saves nothing more

    first = _Recorder()
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        fit(load_config({"model": "vae", "name": "r"}, over), tmp_path / "cut", callbacks=[first, Stop()])
    assert torch.load(tmp_path / "cut/checkpoints/last.ckpt", weights_only=True)["global_step"] == saved
    rest = _Recorder()
    resumed, trainer = fit(load_config({"model": "vae", "name": "r"}, over), tmp_path / "cut", resume="auto",
                           callbacks=[rest])
    assert trainer.global_step == 15 and rest.epochs[0] == saved // 5
    seen = first.batches[:saved] + rest.batches
    assert len(seen) == len(full.batches) == 15
    for a, b in zip(seen, full.batches, strict=True):
        assert torch.equal(a["y"], b["y"]) and torch.equal(a["x"], b["x"])
    for k, v in module.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[k], v)


def test_best_checkpoint_follows_the_true_elbo_not_the_annealed_loss(tmp_path: Path, data_dir: Path) -> None:
    """While beta rises the annealed loss is lowest at the start; the best weights are chosen by val/elbo."""
    over = [*TINY, f"data.dir={data_dir}", "train.epochs=3", "train.lr=1e-4", "model.kl_weight={start: 0, end: 50, "
            "length: 2, unit: epoch}"]
    fit(load_config({"model": "vae", "name": "w"}, over), tmp_path)
    rows = [r for r in csv.DictReader(open(tmp_path / "logs" / "metrics.csv")) if r.get("val/elbo")]
    best_epoch = max(range(len(rows)), key=lambda i: float(rows[i]["val/elbo"]))
    lowest_loss = min(range(len(rows)), key=lambda i: float(rows[i]["val/loss"]))
    assert lowest_loss != best_epoch  # the two criteria disagree here, so the test tells them apart
    best = torch.load(tmp_path / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["epoch"] == best_epoch
    assert float(load(tmp_path / "best.safetensors").kl_weight) == [0.0, 25.0, 50.0][best_epoch]


def test_user_data_trains_and_evaluates_in_nats_and_bits(tmp_path: Path) -> None:
    """A folder of PNGs, an .npz and a non-MNIST IDX set, each from the command line, evaluated in nats and bits
    per dimension; grey levels with a discretized likelihood, binarized data with a Bernoulli."""
    import gzip
    import struct

    rng = np.random.default_rng(0)
    images = (rng.random((40, 12, 12)) * 255).astype(np.uint8)
    folder = tmp_path / "pngs"
    for i, img in enumerate(images):
        (folder / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"c{i % 2}" / f"{i}.png")
    np.savez(tmp_path / "set.npz", x=images, y=np.arange(40) % 3)
    idx = tmp_path / "idx"
    idx.mkdir()
    for split, sl in (("train", slice(0, 30)), ("t10k", slice(30, 40))):
        imgs, labels = images[sl], (np.arange(40) % 4)[sl].astype(np.uint8)
        with gzip.open(idx / f"{split}-images-idx3-ubyte.gz", "wb") as f:
            f.write(struct.pack(">4B3I", 0, 0, 8, 3, len(imgs), 12, 12) + imgs.tobytes())
        with gzip.open(idx / f"{split}-labels-idx1-ubyte.gz", "wb") as f:
            f.write(struct.pack(">4BI", 0, 0, 8, 1, len(labels)) + labels.tobytes())
    common = ["train.epochs=1", "train.progress_bar=false", "data.batch_size=8", "model.channels=[8]",
              "model.fc=16", "model.latent_dim=2"]
    cases = [("images", folder, ["data.size=[12,12]", "data.binarize=none", "model.likelihood=discretized_logistic"]),
             ("arrays", tmp_path / "set.npz", ["data.binarize=none", "data.dequantize=uniform",
                                               "model.likelihood=gaussian"]),
             ("idx", idx, [])]
    for name, where, extra in cases:
        run = tmp_path / f"run_{name}"
        assert main(["train", "conv_vae", "--data", name, "--data-dir", str(where), *common, *extra,
                     "--out", str(run)]) == 0, name
        assert main(["evaluate", str(run), "--nll-samples", "8", "--quiet"]) == 0
        result = json.loads((run / "eval_k8.json").read_text())
        assert result["data"] == name and result["nll"] > 0
        assert result["bits_per_dim"] == pytest.approx(result["nll"] / (144 * np.log(2)))
        if name == "arrays":  # dequantized: the 8-bit NLL adds D log 256 to the density's -log p
            assert result["nats_offset"] == pytest.approx(144 * np.log(256))
        if name != "idx":  # a grey-level model: between a perfect coder and 8 bits a value, roughly
            assert 0 < result["bits_per_dim"] < 12


def test_a_bernoulli_on_grey_levels_is_refused(tmp_path: Path, data_dir: Path, capsys) -> None:  # noqa: ANN001
    assert main(["train", "vae", "data.binarize=none", f"data.dir={data_dir}", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "model.likelihood=bernoulli is not a normalised distribution over 8-bit grey levels" in err
    assert "discretized_logistic" in err and "\n" not in err.strip()
    assert main(["train", "vae", "data.binarize=none", "model.likelihood=gaussian", f"data.dir={data_dir}",
                 "--out", str(tmp_path)]) == 2
    assert "dequantize=uniform" in capsys.readouterr().err


def test_ddp_on_two_cpu_processes(tmp_path: Path, data_dir: Path) -> None:
    """--strategy/--devices reach Lightning unchanged: two gloo processes share the epoch's batches."""
    from safetensors.torch import load_file

    cfg = load_config({"model": "vae", "name": "ddp"}, [*TINY, f"data.dir={data_dir}", "train.epochs=1",
                                                        "trainer.strategy=ddp_spawn", "trainer.devices=2",
                                                        "trainer.accelerator=cpu"])
    _, trainer = fit(cfg, tmp_path)
    assert trainer.world_size == 2 and trainer.num_devices == 2
    weights = load_file(str(tmp_path / "model.safetensors"))
    fresh = load(tmp_path).state_dict()
    assert weights.keys() == fresh.keys()
    metrics = (tmp_path / "logs" / "metrics.csv").read_text()
    assert "val/elbo" in metrics

