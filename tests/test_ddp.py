"""Lightning DDP across CPU processes (gloo): each epoch's batches are split between the processes, none seen twice
and none dropped; two processes of batch b train exactly like one process of batch 2b (the gradients are averaged
over the same global batch); a DDP checkpoint loads and resumes in a single process."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from safetensors.torch import load_file
from torch import nn

import vaekit.data.batches as batches
from vaekit.core.likelihoods import LIKELIHOODS
from vaekit.data.batches import EpochBatches
from vaekit.models.base import Ability, Batch, LossOutput, Model
from vaekit.models.registry import register
from vaekit.run.config import load_config
from vaekit.run.fit import fit
from vaekit.run.io import load


@pytest.mark.parametrize(("n", "batch_size", "world"), [(100, 16, 2), (97, 8, 3), (64, 32, 2), (5, 4, 2)])
def test_each_epoch_is_split_between_processes_once(monkeypatch: pytest.MonkeyPatch, n: int, batch_size: int,
                                                    world: int) -> None:
    seen: dict[int, list[list[int]]] = {}
    for rank in range(world):
        monkeypatch.setattr(batches, "_world", lambda r=rank: (r, world))
        sampler = EpochBatches(n, batch_size, shuffle=True, seed=3)
        sampler.set_epoch(1)
        seen[rank] = [list(b) for b in sampler]
    steps = {len(v) for v in seen.values()}
    assert len(steps) == 1  # every process takes the same number of steps (else DDP hangs)
    everything = sorted(i for v in seen.values() for b in v for i in b)
    rest = n % (batch_size * world)
    pad = world - rest if 0 < rest < world else 0  # a last global batch smaller than the world is padded
    assert len(everything) == n + pad and set(everything) == set(range(n))
    for b in range(steps.pop() - (1 if pad else 0)):  # within one step the processes hold disjoint examples
        step = [i for r in range(world) for i in seen[r][b]]
        assert len(set(step)) == len(step)


# -- a deterministic model, so that one process and two compute the same gradients ---------------------------------
@dataclass
class TinyAEConfig:
    input_shape: tuple[int, int, int] = (1, 8, 8)
    hidden: int = 16


@register("_ddp_test_ae", TinyAEConfig)
class TinyAE(Model):
    """An autoencoder without noise, discretized logistic on 8-bit values: its loss is a function of the batch,
    and so is its (exact) log-likelihood of x given its own code."""

    abilities = frozenset({Ability.EXACT_LIKELIHOOD})

    def __init__(self, config: TinyAEConfig) -> None:
        super().__init__()
        self.config = config
        self.shape = tuple(config.input_shape)
        d = int(np.prod(self.shape))
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(d, config.hidden), nn.Tanh(), nn.Linear(config.hidden, 2 * d))

    def observation_model(self) -> str:
        return "discretized_logistic"

    def log_likelihood(self, batch: Batch) -> torch.Tensor:
        x = batch["x"]
        params = self.net(x).view(x.shape[0], 2 * self.shape[0], *self.shape[1:])
        return LIKELIHOODS["discretized_logistic"].build(params, 3).log_prob(x)

    def loss(self, batch: Batch) -> LossOutput:
        log_px = self.log_likelihood(batch)
        return LossOutput(loss=-log_px.mean(), terms={"elbo": log_px.detach()})


class RecordExamples(Callback):
    """Writes the example ids (the labels are 0..N-1) each process trained on, one file per rank."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.ids = folder, []

    def on_train_batch_start(self, trainer, module, batch, idx) -> None:  # noqa: ANN001
        self.ids.append([int(i) for i in batch["y"]])

    def on_train_end(self, trainer, module) -> None:  # noqa: ANN001
        (self.folder / f"ids_rank{trainer.global_rank}.json").write_text(json.dumps(self.ids))


def _cfg(data: Path, batch_size: int, extra: list[str]) -> object:
    return load_config({"model": {"name": "_ddp_test_ae"}, "name": "ddp"},
                       ["data.name=arrays", f"data.dir={data}", "data.binarize=none", "data.val_size=16",
                        f"data.batch_size={batch_size}", "train.epochs=2", "train.progress_bar=false",
                        "train.log_every_n_steps=1", "train.checkpoint_every_n_steps=3", "train.lr=3e-3",
                        "trainer.accelerator=cpu", *extra])


@pytest.fixture()
def arrays(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 16 + 80 + 20  # validation, training, test
    x = (rng.random((n, 1, 8, 8)) < np.linspace(0.1, 0.9, 8)).astype(np.uint8) * 255
    path = tmp_path / "data.npz"
    np.savez(path, x_train=x[:96], y_train=np.arange(96), x_test=x[96:], y_test=np.arange(96, n))
    return path


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_global_batch(tmp_path: Path, arrays: Path) -> None:
    ddp, single = tmp_path / "ddp", tmp_path / "single"
    ddp.mkdir()
    fit(_cfg(arrays, 8, ["trainer.strategy=ddp_spawn", "trainer.devices=2"]), ddp, callbacks=[RecordExamples(ddp)])
    fit(_cfg(arrays, 16, ["trainer.devices=1"]), single)

    # 80 training examples, global batch 16: 5 steps an epoch; the two processes hold disjoint halves of each
    ranks = [json.loads((ddp / f"ids_rank{r}.json").read_text()) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 10
    for epoch in (0, 1):
        ids = [i for r in ranks for b in r[5 * epoch : 5 * epoch + 5] for i in b]
        assert sorted(ids) == sorted(set(ids)) and len(ids) == 80  # each example once per epoch, none dropped

    a, b = load_file(str(ddp / "model.safetensors")), load_file(str(single / "model.safetensors"))
    for k in a:  # gloo's all-reduce sums in another order than one batch's mean: agreement to float rounding
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    print(f"DDP vs one process after 10 steps: max |weight difference| {max((a[k] - b[k]).abs().max() for k in a):.2e}")
    rows = [(ddp / "logs/metrics.csv").read_text(), (single / "logs/metrics.csv").read_text()]
    val = [float(r.splitlines()[-1].split(",")[r.splitlines()[0].split(",").index("val/loss")]) for r in rows]
    assert val[0] == pytest.approx(val[1], rel=1e-4)
    print(f"validation loss: 2 processes {val[0]:.6f}, 1 process {val[1]:.6f}")


@pytest.mark.slow
def test_a_ddp_checkpoint_loads_and_resumes_in_one_process(tmp_path: Path, arrays: Path) -> None:
    fit(_cfg(arrays, 8, ["trainer.strategy=ddp_spawn", "trainer.devices=2"]), tmp_path)
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True)["global_step"] == 10
    model = load(ckpt)
    assert isinstance(model, TinyAE)
    _, trainer = fit(_cfg(arrays, 16, ["trainer.devices=1", "train.epochs=3"]), tmp_path, resume="auto")
    assert trainer.global_step == 15 and trainer.world_size == 1


@pytest.mark.slow
def test_evaluation_split_over_processes_sums_the_same_test_set(tmp_path: Path, arrays: Path) -> None:
    """The test set cut into shards for two processes: the same examples, the same (exact) log-likelihood."""
    import dataclasses

    from vaekit.data import build_data
    from vaekit.run.evaluate import evaluate

    cfg = _cfg(arrays, 8, [])
    splits = build_data(cfg.data)
    model = TinyAE(TinyAEConfig())
    one = evaluate(model, splits.test, dataclasses.replace(cfg.eval, batch_size=3), splits.dims, progress=False)
    two = evaluate(model, splits.test, dataclasses.replace(cfg.eval, batch_size=3, processes=2), splits.dims,
                   progress=False)
    assert one["n_examples"] == two["n_examples"] == 20
    assert two["nll"] == pytest.approx(one["nll"], rel=1e-6) and two["elbo"] == pytest.approx(one["elbo"], rel=1e-6)
    assert two["peak_rss_mib"]["largest_worker"] > 0
