"""pro-VLAE (Li et al. 2020): fade-in, the progressive schedule (top level first), the pre-trained KL penalty,
the VLAE setting, the schedule's survival of a resume, and a tiny fit of each recipe."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

from vaekit.core.likelihoods import kl_per_dimension
from vaekit.models import registry
from vaekit.run.config import ConfigError, load_config
from vaekit.run.fit import fit
from vaekit.run.io import load

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
D = 2  # latents per level
SMALL = {"input_shape": (1, 16, 16), "levels": 3, "latents_per_level": D, "channels": 4, "fc": 8,
         "progressive_steps": (10, 20), "fade_in_length": 10, "beta": 4.0, "pretrain_kl": 0.5}


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return registry.build("provlae", registry.get("provlae").config(**{**SMALL, **kw}))


def _x(b: int = 6) -> torch.Tensor:
    return torch.bernoulli(torch.full((b, 1, 16, 16), 0.3))


def _level(i: int) -> slice:
    """Level i's latents (1 = next to x) in the concatenated code."""
    return slice((i - 1) * D, i * D)


def _warm(model: torch.nn.Module) -> torch.nn.Module:
    """A few batches through in training mode, so batch norm's running statistics are not their initial ones."""
    with torch.no_grad():
        for _ in range(3):
            model.loss({"x": torch.bernoulli(torch.full((16, *model.input_shape), 0.3))})
    return model


def test_a_level_at_alpha_zero_changes_nothing_the_decoder_draws() -> None:
    """Step 10: level 2 just became active, alpha_2 = 0. Its z and its input leave the output as it is; at alpha_2
    = 0.5 they do not."""
    model = _warm(_model())
    x = _x()
    for step, fading in ((10, False), (15, True)):
        model.on_train_step(step, 0)
        assert float(model.alpha[1]) == (0.5 if fading else 0.0) and float(model.active[1]) == 1.0
        model.eval()
        with torch.no_grad():
            z = model.encode(x).mean
            moved = z.clone()
            moved[:, _level(2)] = 3 * torch.randn(len(x), D)
            same = torch.allclose(model.decode(z).mean, model.decode(moved).mean)
            assert same != fading
            # What the encoder gives the level is multiplied by alpha too: at 0, q(z_2|x) is one for all x.
            q2 = model.encode(x).mean[:, _level(2)]
            assert torch.allclose(q2, q2[:1].expand_as(q2)) != fading
        # In training mode: the loss's reconstruction term is the one whatever z_2 is drawn.
        model.train()
        torch.manual_seed(1)
        out = model.loss({"x": x})
        torch.manual_seed(1)
        z = model.encode(x).rsample()
        z[:, _level(2)] = 3 * torch.randn(len(x), D)
        rec = model.decode(z).log_prob(x)
        assert torch.allclose(out.terms["rec"], rec, atol=1e-4) != fading


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_the_fading_posterior_depends_on_alpha_through_batch_norm(mode: str) -> None:
    """Li et al.'s fade-in: a level entering at alpha enters with alpha's strength. With batch statistics (training
    mode) a gain on the ladder's input would be divided out by its batch norm and the level would be at full
    strength at any alpha > 0; the gain acts after the normalisation, so the spread of q(z_2|x)'s means over x
    scales with alpha, and at alpha = 0 q(z_2|x) is the prior N(0, I) for every x."""
    model = _warm(_model())
    getattr(model, mode)()
    x = torch.bernoulli(torch.full((64, 1, 16, 16), 0.3))
    spread, qs = {}, {}
    for step, alpha in ((10, 0.0), (10.01, 0.001), (20, 1.0)):
        model.on_train_step(step, 0)
        assert abs(float(model.alpha[1]) - alpha) < 1e-6
        with torch.no_grad():
            qs[alpha] = model.encode(x)
        spread[alpha] = float(qs[alpha].mean[:, _level(2)].std(0).mean())
    assert spread[1.0] > 1e-3
    assert abs(spread[0.001] / spread[1.0] - 0.001) < 2e-4  # (old: the ratio was ~1 in training mode)
    torch.testing.assert_close(qs[0.0].mean[:, _level(2)], torch.zeros(64, D))
    torch.testing.assert_close(qs[0.0].stddev[:, _level(2)], torch.ones(64, D))
    # the levels already in are untouched by level 2's schedule
    torch.testing.assert_close(qs[0.001].mean[:, _level(3)], qs[1.0].mean[:, _level(3)])


def test_levels_become_active_top_first_at_their_steps_and_alpha_ramps_linearly() -> None:
    model = _model()  # level 3 (top) from step 0, level 2 from step 10, level 1 from step 20; fade-in 10 steps
    expected = {0: ([0, 0, 1], [0, 0, 1]), 9: ([0, 0, 1], [0, 0, 1]), 10: ([0, 1, 1], [0, 0, 1]),
                13: ([0, 1, 1], [0, 0.3, 1]), 19: ([0, 1, 1], [0, 0.9, 1]), 20: ([1, 1, 1], [0, 1, 1]),
                25: ([1, 1, 1], [0.5, 1, 1]), 30: ([1, 1, 1], [1, 1, 1]), 10_000: ([1, 1, 1], [1, 1, 1])}
    for step, (active, alpha) in expected.items():
        model.on_train_step(step, 0)
        assert model.active.tolist() == active, step
        torch.testing.assert_close(model.alpha, torch.tensor(alpha, dtype=torch.float32), msg=f"step {step}")
    terms = model.loss({"x": _x()}).terms
    assert float(terms["levels_active"].mean()) == 3 and float(terms["alpha_1"].mean()) == 1.0
    # steps_per_level instead of a list: level l at (L - l) * n; fade_in_length 0: each enters at full strength.
    model = _model(progressive_steps=(), steps_per_level=7, fade_in_length=0)
    assert registry.get("provlae").config(steps_per_level=7).level_starts() == [14, 7, 0]
    for step, active in ((6, [0, 0, 1]), (7, [0, 1, 1]), (13, [0, 1, 1]), (14, [1, 1, 1])):
        model.on_train_step(step, 0)
        assert model.active.tolist() == active and model.alpha.tolist() == active, step


def test_the_pretrained_kl_penalty_weighs_only_the_inactive_levels() -> None:
    model = _warm(_model())
    x = _x()
    for step, active in ((0, [0, 0, 1]), (12, [0, 1, 1]), (25, [1, 1, 1])):
        model.on_train_step(step, 0)
        torch.manual_seed(1)
        out = model.loss({"x": x})
        torch.manual_seed(1)
        q = model.encode(x)
        rec = model.decode(q.rsample()).log_prob(x)
        kl = kl_per_dimension(q)
        by_level = [kl[:, _level(i)].sum(-1) for i in (1, 2, 3)]
        penalty = sum((4.0 if on else 0.5) * k for on, k in zip(active, by_level, strict=True))
        torch.testing.assert_close(out.loss, -(rec - penalty).mean())
        torch.testing.assert_close(out.terms["elbo"], rec - sum(by_level))  # the bound counts every level
        for i in (1, 2, 3):
            torch.testing.assert_close(out.terms[f"kl_{i}"], by_level[i - 1])
    # The penalty is what trains an inactive level's encoder: with gamma = 0 its parameters get no gradient.
    for gamma, moved in ((0.0, False), (0.5, True)):
        model = _model(pretrain_kl=gamma)
        model.on_train_step(0, 0)
        model.loss({"x": x}).loss.backward()
        grads = [p.grad for p in model.ladders[0].parameters()]
        assert any(g is not None and bool(g.abs().sum() > 0) for g in grads) == moved


def test_progressive_false_is_the_vlae_with_every_level_active_from_step_0() -> None:
    model = _warm(_model(progressive=False))
    assert model.active.tolist() == [1, 1, 1] and model.alpha.tolist() == [1, 1, 1]
    model.on_train_step(0, 0)
    assert model.active.tolist() == [1, 1, 1] and model.alpha.tolist() == [1, 1, 1]
    x = _x()
    torch.manual_seed(1)
    out = model.loss({"x": x})
    torch.manual_seed(1)
    q = model.encode(x)
    rec = model.decode(q.rsample()).log_prob(x)
    torch.testing.assert_close(out.loss, -(rec - 4.0 * kl_per_dimension(q).sum(-1)).mean())
    model.eval()
    with torch.no_grad():  # every level draws from step 0: moving the bottom level changes the image
        z = model.encode(x).mean
        moved = z.clone()
        moved[:, _level(1)] += 3.0
        assert not torch.allclose(model.decode(z).mean, model.decode(moved).mean)


def test_the_schedule_state_travels_with_the_weights() -> None:
    a = _warm(_model())
    a.on_train_step(15, 0)
    b = _model()  # a fresh model is at step 0: only the top level
    assert b.active.tolist() == [0, 0, 1]
    b.load_state_dict(a.state_dict())  # no on_train_step: the buffers alone carry the schedule
    assert b.active.tolist() == [0, 1, 1] and float(b.alpha[1]) == 0.5
    a.eval(), b.eval()
    z = torch.randn(4, 3 * D)
    torch.testing.assert_close(a.decode(z).mean, b.decode(z).mean)


def test_uses_latent_means_representation_and_importance_weights() -> None:
    model = _warm(_model()).eval()
    x = _x()
    with torch.no_grad():
        means = model.latent_means({"x": x})
        assert list(means) == ["z1", "z2", "z3"] and all(m.shape == (6, D) for m in means.values())
        code = model.represent(x)
        assert code.shape == (6, 3 * D)
        torch.testing.assert_close(code, torch.cat(list(means.values()), dim=-1))  # z1 first
        names = model.latent_names()
        assert names[_level(2)] == ["z2.0", "z2.1"] and len(names) == 3 * D
        assert model.log_importance_weights({"x": x}, 5).shape == (5, 6)
        assert model.sample(3).shape == (3, 1, 16, 16) and model.reconstruct({"x": x}).shape == x.shape


def test_traversal_bars_name_each_latent_by_its_level(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vaekit.views.traverse as traverse

    drawn = []
    monkeypatch.setattr(traverse, "write_figure", lambda fig, path: drawn.append(fig) or path)
    model = _warm(_model(progressive=False)).eval()
    traverse.write_traversals(model, _x(8), tmp_path, seeds=1, steps=3)
    bars = drawn[0]
    kl = traverse.kl_by_latent(model, _x(8))
    order = torch.argsort(kl, descending=True).tolist()
    assert bars.labels == [model.latent_names()[j] for j in order]
    assert drawn[1].images.shape[0] == 3 * 3 * D  # one row per latent of every level


def test_config_errors() -> None:
    with pytest.raises(ConfigError, match="one step per level after the top: 2, got 1"):
        load_config({"model": {"name": "provlae", "progressive_steps": [5]}})
    with pytest.raises(ConfigError, match="must increase"):
        load_config({"model": {"name": "provlae", "progressive_steps": [5, 5]}})
    with pytest.raises(ConfigError, match="unknown activation"):
        load_config({"model": {"name": "provlae", "activation": "swish"}})


def test_sides_that_are_no_multiple_of_2_to_the_levels_plus_1_are_padded_and_cropped() -> None:
    model = _warm(_model(input_shape=(1, 12, 20))).eval()  # padded to 16 x 32 (multiples of 2^4)
    assert model.padded == (16, 32)
    x = torch.bernoulli(torch.full((4, 1, 12, 20), 0.3))
    assert model.reconstruct({"x": x}).shape == x.shape and model.sample(2).shape == (2, 1, 12, 20)
    assert model.log_importance_weights({"x": x}, 3).shape == (3, 4)


# -- training: the schedule across a resume, and each recipe end to end ------------------------------------------
class _States(Callback):
    """The global step each batch trains at and the model's schedule state during it."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, list[float], list[float]]] = []
        self.restored: tuple[list[float], list[float]] | None = None

    def on_train_start(self, trainer, module) -> None:  # noqa: ANN001
        self.restored = (module.model.active.tolist(), module.model.alpha.tolist())

    def on_train_batch_end(self, trainer, module, outputs, batch, idx) -> None:  # noqa: ANN001
        self.seen.append((trainer.global_step - 1, module.model.active.tolist(), module.model.alpha.tolist()))


def _tiny_arrays(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "blobs.npy"
    np.save(path, (rng.random((160, 16, 16)) < 0.3).astype(np.uint8) * 255)
    return path


def test_a_resumed_run_continues_the_schedule_at_its_step(tmp_path: Path) -> None:
    """Levels at steps 3 and 6, fade-in 4: stopped after 5 steps and resumed to 9, the resumed run starts from the
    checkpoint's state and trains step 5 in level 2's fade-in and steps 6.. with every level active."""
    data = _tiny_arrays(tmp_path)

    def cfg(max_steps: int):  # noqa: ANN202
        return load_config({"name": "p", "model": {"name": "provlae", "levels": 3, "latents_per_level": 2,
                                                   "channels": 4, "fc": 8, "progressive_steps": [3, 6],
                                                   "fade_in_length": 4},
                            "data": {"name": "arrays", "dir": str(data), "batch_size": 16, "drop_last": True}},
                           ["train.epochs=5", "train.progress_bar=false", "train.checkpoint_every_n_steps=1",
                            "train.figures_every_n_epochs=100", f"trainer.max_steps={max_steps}",
                            "trainer.limit_val_batches=1"])

    model = registry.build("provlae", registry.get("provlae").config(progressive_steps=(3, 6), fade_in_length=4))

    def state(step: int) -> tuple[list[float], list[float]]:
        model.on_train_step(step, 0)
        return model.active.tolist(), model.alpha.tolist()

    first = _States()
    fit(cfg(5), tmp_path / "run", callbacks=[first])
    assert [s for s, *_ in first.seen] == [0, 1, 2, 3, 4]
    assert [(a, b) for _, a, b in first.seen] == [state(s) for s in range(5)]
    assert torch.load(tmp_path / "run/checkpoints/last.ckpt", weights_only=True)["global_step"] == 5
    rest = _States()
    module, trainer = fit(cfg(9), tmp_path / "run", resume="auto", callbacks=[rest])
    assert trainer.global_step == 9
    assert rest.restored == state(4)  # the checkpoint's buffers: level 2 fading in (alpha 0.25), level 1 not yet
    assert [s for s, *_ in rest.seen] == [5, 6, 7, 8]
    assert [(a, b) for _, a, b in rest.seen] == [state(s) for s in range(5, 9)]
    assert rest.seen[0][1] == [0, 1, 1] and rest.seen[1][1] == [1, 1, 1]
    loaded = load(tmp_path / "run" / "model.safetensors")  # the exported weights carry the final state
    assert loaded.active.tolist() == [1, 1, 1] and loaded.alpha.tolist() == state(8)[1]


TINY = ["data.batch_size=8", "trainer.max_steps=3", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
        "train.epochs=1", "train.log_every_n_steps=1", "model.progressive_steps=[1, 2]", "model.fade_in_length=1",
        "data.val_size=16", "data.test_size=16"]


@pytest.fixture
def small_dsprites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dSprites served from its first 1,024 images (a partial cache), cut into three splits below that."""
    from vaekit.data import dsprites

    cache = dsprites.generate(tmp_path / "dsprites", count=1024, progress=False)
    monkeypatch.setattr(dsprites, "ground_truth", lambda cfg: dsprites.DSprites(path=cache, count=1024))
    monkeypatch.setattr(dsprites, "split_indices", lambda *a: (np.arange(0, 900), np.arange(900, 960),
                                                               np.arange(960, 1024)))


@pytest.mark.parametrize("recipe", ["provlae_shapes3d", "vlae_shapes3d", "provlae_dsprites"])
def test_each_recipe_trains_a_few_steps(recipe: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if "dsprites" in recipe:
        request.getfixturevalue("small_dsprites")
        extra = ["train.metrics=[]"]  # the metrics draw factors from the whole grid, beyond the partial cache
    else:
        extra = ["train.metrics=[mig_sup]", "train.metrics_every_n_steps=3",
                 "train.metric_settings={mig_sup: {num_train: 64}}"]
    cfg = load_config(CONFIGS / f"{recipe}.yaml", [*TINY, *extra])
    run = tmp_path / "run"
    module, trainer = fit(cfg, run)
    assert trainer.global_step == 3
    model = load(run / "model.safetensors")
    progressive = recipe.startswith("provlae")
    assert model.config.progressive is progressive
    # Levels at steps 1 and 2, fade-in 1 step: the third step (step 2) trains level 1 at alpha 0.
    assert model.active.tolist() == [1, 1, 1]
    assert model.alpha.tolist() == ([0, 1, 1] if progressive else [1, 1, 1])
    rows = [r.split(",") for r in (run / "logs" / "metrics.csv").read_text().splitlines()]
    assert {"train/kl_1", "train/kl_3", "train/alpha_2", "train/levels_active", "val/elbo"} <= set(rows[0])
    col = rows[0].index("train/levels_active")
    assert [float(r[col]) for r in rows[1:] if r[col]] == ([1.0, 2.0, 3.0] if progressive else [3.0, 3.0, 3.0])
    if "shapes3d" in recipe:  # the representation (all levels' means) scored during training
        scores = json.loads((run / "metrics" / "step0000003.json").read_text())
        assert 0.0 <= scores["mig_sup"]["discrete_mig_sup"] <= 1.0


def test_best_weights_are_chosen_only_once_every_level_is_in() -> None:
    from vaekit.models.provlae import ProVLAE, ProVLAEConfig

    grown = ProVLAE(ProVLAEConfig(progressive_steps=(100, 200), fade_in_length=30))
    assert grown.monitor_from_step() == 230
    assert ProVLAE(ProVLAEConfig(progressive=False)).monitor_from_step() == 0


def test_a_fade_in_longer_than_training_is_refused() -> None:
    from vaekit.models.provlae import ProVLAE, ProVLAEConfig

    model = ProVLAE(ProVLAEConfig(progressive_steps=(100, 200), fade_in_length=30))
    model.check_budget(230)
    with pytest.warns(UserWarning, match="fully in at step 230, after this run stops at step 229"):
        model.check_budget(229)
    with pytest.raises(ValueError, match="fade_in_length=30 is longer than the whole training"):
        model.check_budget(29)
