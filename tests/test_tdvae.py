"""TD-VAE (Gregor et al. 2019): the objective's terms, the time pairs, learning, rollouts, and its two data sets."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest
import torch
from PIL import Image
from torch import Tensor
from torch.distributions import Normal

from vaekit.core.schedules import Ramp
from vaekit.data import build_data, loader
from vaekit.data.moving_mnist import roll_frames
from vaekit.models import registry
from vaekit.run.config import data_config, load_config

TINY = {"preprocess": (16,), "belief_size": 12, "latent_size": 3, "hidden": 12, "decoder_hidden": (16,)}


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = {"input_shape": (1, 8, 8), **TINY, **kw}
    return registry.build("tdvae", registry.get("tdvae").config(**cfg))


def _oscillator(**kw: object) -> dict:
    return {"name": "oscillator", "n_train": 256, "n_val": 64, "n_test": 64, **kw}


# -- the objective -----------------------------------------------------------------------------------------------
def _layered(cond: torch.nn.Module, c: Tensor, z: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Two-layer Gaussian by hand: z2 ~ N(D_2(c)), z1 ~ N(D_1(c, z2)); returns (z = (z1, z2), log p(z | c))."""
    top, bottom = cond.blocks[1], cond.blocks[0]
    mu2, ls2 = top(c)
    z2 = Normal(mu2, ls2.exp()).rsample() if z is None else z[..., 3:]
    mu1, ls1 = bottom(torch.cat([c, z2], -1))
    z1 = Normal(mu1, ls1.exp()).rsample() if z is None else z[..., :3]
    log_p = Normal(mu2, ls2.exp()).log_prob(z2).sum(-1) + Normal(mu1, ls1.exp()).log_prob(z1).sum(-1)
    return torch.cat([z1, z2], -1), log_p


def test_J_is_eq_8_term_by_term_with_its_signs() -> None:
    """Each logged term, recomputed by hand with the same draws, and J = log p_D + log p_B(z_t1|b_t1) + log p_T
    - log p_B(z_t2|b_t2) - log p_S; the loss is -J's mean."""
    model = _model(max_jump=3, jump_input=True)
    x = torch.bernoulli(torch.full((6, 7, 1, 8, 8), 0.3))
    torch.manual_seed(1)
    out = model.loss({"x": x})

    torch.manual_seed(1)
    delta = torch.randint(1, 4, (6,))
    t1 = (torch.rand(6) * (7 - delta)).long()
    t2 = t1 + delta
    b = model.belief(x)
    rows = torch.arange(6)
    b1, b2 = b[rows, t1], b[rows, t2]
    jump = torch.nn.functional.one_hot(delta - 1, 3).float()
    z2, log_pB_t2 = _layered(model.p_B, b2)
    z1, log_pS = _layered(model.p_S, torch.cat([z2, b1, b2, jump], -1))
    _, log_pB_t1 = _layered(model.p_B, b1, z1)
    _, log_pT = _layered(model.p_T, torch.cat([z1, jump], -1), z2)
    logits = model.decoder(z2).view(6, 1, 8, 8)
    log_pD = -torch.nn.functional.binary_cross_entropy_with_logits(logits, x[rows, t2], reduction="none").sum((1, 2, 3))
    by_hand = {"log_pD": log_pD, "log_pB_t1": log_pB_t1, "log_pT": log_pT, "log_pB_t2": log_pB_t2, "log_pS": log_pS}
    for name, value in by_hand.items():
        assert out.terms[name].shape == (6,) and torch.isfinite(out.terms[name]).all()
        torch.testing.assert_close(out.terms[name], value.detach(), msg=name)
    J = log_pD + log_pB_t1 + log_pT - log_pB_t2 - log_pS
    torch.testing.assert_close(out.terms["J"], J.detach())
    torch.testing.assert_close(out.loss, -J.mean())
    assert bool((out.terms["log_pD"] <= 0).all())  # a Bernoulli's log-probability
    assert model.monitor == ("J", "max") and {a.value for a in model.abilities} == {"figures"}


def test_pairs_average_per_sequence_and_the_kl_warm_up_weighs_only_the_kl_terms() -> None:
    x = torch.bernoulli(torch.full((5, 6, 1, 8, 8), 0.3))
    model = _model(pairs=3, kl_weight=Ramp(0.0, 1.0, length=10))
    model.on_train_step(5, 0)
    torch.manual_seed(2)
    out = model.loss({"x": x})
    torch.manual_seed(2)
    terms = {k: v.view(5, 3).mean(1) for k, v in model.objective({"x": x}).items()}
    assert all(v.shape == (5,) for v in out.terms.values())
    torch.testing.assert_close(out.terms["J"], terms["J"].detach())
    kl = terms["log_pS"] - terms["log_pB_t1"] + terms["log_pB_t2"] - terms["log_pT"]
    torch.testing.assert_close(out.loss, -(terms["log_pD"] - 0.5 * kl).mean())
    torch.testing.assert_close(terms["J"], terms["log_pD"] - kl)


def test_time_pairs_are_ordered_within_the_sequence_and_cover_every_jump() -> None:
    model = _model(max_jump=4)
    torch.manual_seed(0)
    t1, t2 = model.sample_times(200_000, 20)
    assert bool((t1 >= 0).all() and (t1 < t2).all() and (t2 <= 19).all())
    assert sorted((t2 - t1).unique().tolist()) == [1, 2, 3, 4]
    assert sorted(t1.unique().tolist()) == list(range(19)) and sorted(t2.unique().tolist()) == list(range(1, 20))
    # delta uniform on 1..D: each jump about a quarter of the draws
    assert (t2 - t1).bincount()[1:].div(200_000).sub(0.25).abs().max() < 0.01
    with pytest.raises(ValueError, match="too short"):
        model.sample_times(4, 4)


# -- learning -----------------------------------------------------------------------------------------------------
def test_on_a_noise_free_oscillator_the_belief_learns_the_position_in_a_few_hundred_steps() -> None:
    """Decoding z ~ p_B(z | b_t) recovers the position at t (the belief-only predictor), and the first predicted
    frame improves too; a KL warm-up, as in the recipe, keeps the 1-D decoder from ignoring z."""
    splits = build_data(data_config(_oscillator(n_train=1024, process_noise=0.0, obs_noise=0.0)))
    torch.manual_seed(0)
    model = registry.build("tdvae", registry.get("tdvae").config(
        input_shape=(1,), likelihood="gaussian", **TINY, max_jump=3, pairs=2, kl_weight=Ramp(0.0, 1.0, length=1000)))
    val = splits.val.head(64)
    position = val["state"][..., 0]

    def errors() -> tuple[float, float]:
        with torch.no_grad(), torch.random.fork_rng():
            torch.manual_seed(1)
            recon = model.rollout(val["x"][:, :10], 0, n_samples=4).mean(0)[:, 0, 0]
            ahead = model.rollout(val["x"][:, :10], 1, n_samples=4).mean(0)[:, 0, 0]
        return float((recon - position[:, 9]).pow(2).mean()), float((ahead - position[:, 10]).pow(2).mean())

    recon0, ahead0 = errors()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    batches = [b for epoch in range(13) for b in loader(splits.train, 32, shuffle=True, seed=epoch)][:400]
    for step, batch in enumerate(batches):
        model.on_train_step(step, 0)
        loss = model.loss(batch).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    recon, ahead = errors()
    assert recon < recon0 / 20 and recon < 0.01, (recon0, recon)
    assert ahead < ahead0 / 2, (ahead0, ahead)
    assert torch.isfinite(model.loss(val).terms["J"]).all()


# -- rollouts -----------------------------------------------------------------------------------------------------
def test_rollout_of_horizon_0_is_the_reconstruction_and_jumps_land_every_jth_frame() -> None:
    model = _model(max_jump=3).eval()
    x = torch.bernoulli(torch.full((4, 10, 1, 8, 8), 0.3))
    torch.manual_seed(3)
    recon = model.rollout(x[:, :6], 0, n_samples=2)
    torch.manual_seed(3)
    z = model.p_B(model.belief(x[:, :6])[:, -1]).sample((2,))
    torch.testing.assert_close(recon, model.p_D(z).mean.unsqueeze(2))
    assert recon.shape == (2, 4, 1, 1, 8, 8)
    assert model.rollout(x[:, :6], 4, 1, 3).shape == (3, 4, 4, 1, 8, 8)
    assert model.rollout(x[:, :6], 4, 3, 3).shape == (3, 4, 1, 1, 8, 8)  # one jump of 3 fits in 4 frames
    # A jump of 2: z_{t+2} ~ p_T(. | z_t, delta = 2), decoded: the same draws by hand.
    torch.manual_seed(4)
    two = model.rollout(x[:, :6], 4, 2, 1)
    torch.manual_seed(4)
    z = model.p_B(model.belief(x[:, :6])[:, -1]).sample((1,))
    jump = torch.nn.functional.one_hot(torch.tensor(1), 3).float().expand(1, 4, 3)
    frames = []
    for _ in range(2):
        z = model.p_T(torch.cat([z, jump], -1)).sample()
        frames.append(model.p_D(z).mean)
    torch.testing.assert_close(two, torch.stack(frames, 2))
    with pytest.raises(ValueError, match="jumps 1..3"):
        model.rollout(x[:, :6], 4, 4)


def test_a_conv_decoder_draws_each_frame_from_its_own_state_and_needs_image_frames() -> None:
    model = _model(decoder="conv", decoder_channels=(4, 8)).eval()
    z = torch.randn(3, 5, 2 * TINY["latent_size"])
    p = model.p_D(z)
    assert p.batch_shape == (3, 5) and p.mean.shape == (3, 5, 1, 8, 8)
    torch.testing.assert_close(p.mean[2, 4], model.p_D(z[2, 4:5]).mean[0])  # leading dims fold, never mix
    out = model.loss({"x": torch.bernoulli(torch.full((4, 10, 1, 8, 8), 0.3))})
    out.loss.backward()
    assert torch.isfinite(out.loss) and model.decoder.deconv[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="image frames"):
        _model(input_shape=(1,), decoder="conv")


def test_figures_show_true_futures_above_sampled_rollouts() -> None:
    model = _model(max_jump=2).eval()
    x = torch.bernoulli(torch.full((4, 10, 1, 8, 8), 0.3))
    figs = model.figures({"x": x})
    assert set(figs) == {"rollout", "rollout_jump2"}
    grid = figs["rollout"]
    assert grid.nrow == 6 and grid.images.shape == (4 * 4 * 6, 1, 8, 8)  # 4 sequences x (truth + 3 samples) rows
    torch.testing.assert_close(grid.images[:6], x[0, 4:])  # the last context frame, then the true future
    torch.testing.assert_close(grid.images[6], x[0, 4])  # each rollout row starts at the last context frame


# -- data ---------------------------------------------------------------------------------------------------------
def test_oscillator_is_a_harmonic_oscillator_and_deterministic_given_its_seed() -> None:
    a = build_data(data_config(_oscillator(process_noise=0.0, obs_noise=0.0)))
    batch = a.test.head(64)
    p, v, omega = batch["state"][..., 0], batch["state"][..., 1], batch["omega"][:, None]
    energy = p**2 + (v / omega) ** 2  # conserved without noise
    torch.testing.assert_close(energy, energy[:, :1].expand_as(energy), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batch["x"][..., 0], p)
    assert batch["x"].shape == (64, 20, 1) and a.defaults == {"input_shape": (1,), "likelihood": "gaussian"}
    noisy = [build_data(data_config(_oscillator(seed=s))) for s in (0, 0, 1)]
    assert torch.equal(noisy[0].train.tensors["x"], noisy[1].train.tensors["x"])
    assert not torch.equal(noisy[0].train.tensors["x"], noisy[2].train.tensors["x"])
    assert not torch.equal(noisy[0].train.tensors["x"][:64], noisy[0].test.tensors["x"])  # splits differ
    resid = noisy[0].test.tensors["x"][..., 0] - noisy[0].test.tensors["state"][..., 0]
    assert abs(float(resid.std()) - 0.1) < 0.01  # the observation noise


def test_roll_frames_matches_torch_roll() -> None:
    first = torch.rand(3, 1, 5, 7)
    direction = torch.tensor([1, -1, 1])
    frames = roll_frames(first, direction, 9, shift=2)
    for i in range(3):
        for t in range(9):
            assert torch.equal(frames[i, t], torch.roll(first[i], 2 * t * int(direction[i]), dims=-1))


def test_moving_mnist_rolls_one_binarized_digit_and_is_deterministic(data_dir: Path) -> None:
    cfg = data_config({"name": "moving_mnist", "dir": str(data_dir / "mnist"), "val_size": 500})
    a, b = build_data(cfg), build_data(cfg)
    assert (len(a.train), len(a.val), len(a.test)) == (59500, 500, 10000)
    assert a.defaults["input_shape"] == (1, 28, 28) and a.defaults["likelihood"] == "bernoulli"
    epoch0 = next(iter(loader(a.train, 64, shuffle=True, seed=0)))
    for batch in (epoch0, a.test.head(64)):
        x, d = batch["x"], batch["direction"]
        assert x.shape == (64, 20, 1, 28, 28) and set(x.unique().tolist()) == {0.0, 1.0}
        assert set(d.tolist()) == {-1, 1} and batch["y"].shape == (64,)
        for t in range(20):  # every frame an exact rolled copy of frame 0, one pixel per frame
            assert torch.equal(x[:, t], torch.stack([torch.roll(x[i, 0], int(d[i]) * t, -1) for i in range(64)]))
    # deterministic given the seeds: the same batches from two builds; fresh bits and directions next epoch
    same = next(iter(loader(b.train, 64, shuffle=True, seed=0)))
    assert all(torch.equal(epoch0[k], same[k]) for k in epoch0)
    sampler = loader(a.train, 64, shuffle=False, seed=0)
    first = next(iter(sampler))
    sampler.sampler.set_epoch(1)
    again = next(iter(sampler))
    assert torch.equal(first["y"], again["y"]) and not torch.equal(first["x"], again["x"])
    assert not torch.equal(first["direction"], again["direction"])
    assert torch.equal(a.test.head(64)["x"], b.test.head(64, seed=5)["x"])  # the test set is fixed
    # the labels are MNIST's test labels, in order
    digits = build_data(data_config({"name": "mnist", "dir": cfg.dir})).test
    assert torch.equal(a.test.head(64)["y"], digits.labels[:64])


# -- end to end ---------------------------------------------------------------------------------------------------
FAST = ["trainer.limit_train_batches=3", "trainer.limit_val_batches=1", "train.epochs=1", "train.log_every_n_steps=1",
        "train.figures_every_n_epochs=1", "trainer.max_time=null"]


def test_oscillator_recipe_trains_and_rolls_out(tmp_path: Path) -> None:
    from vaekit.models.lstm_predictor import LSTMPredictor
    from vaekit.run.fit import fit
    from vaekit.views.rollout import add_rollout_parser, evaluate_predictions, rollout_figure

    osc = ["data.n_train=256", "data.n_val=32", "data.n_test=32"]
    cfg = load_config("configs/tdvae_oscillator.yaml", [*FAST, *osc, "model.preprocess=[8]", "model.belief_size=8"])
    module, trainer = fit(cfg, tmp_path / "tdvae")
    assert trainer.global_step == 3 and (tmp_path / "tdvae" / "model.safetensors").exists()
    assert {p.name for p in (tmp_path / "tdvae" / "figures").iterdir()} == {"rollout_epoch0001.png",
                                                                               "rollout_jump5_epoch0001.png"}
    png, gif = rollout_figure(tmp_path / "tdvae", context=10, horizon=10, jump=5, samples=2, sequences=2)
    assert png.suffix == ".png" and Image.open(png).size[0] > 100
    assert Image.open(gif).n_frames == 11  # the last context frame, then each predicted frame

    base = load_config({"model": "lstm_predictor", "data": {"name": "oscillator"}, "name": "lstm"}, [*FAST, *osc])
    baseline, _ = fit(base, tmp_path / "lstm")
    assert isinstance(baseline.model, LSTMPredictor)
    batch = build_data(cfg.data).test.head(32)
    result = evaluate_predictions(module.model.eval(), batch, 10, 10, jumps=(1, 2, 5), samples=4,
                                  baseline=baseline.model.eval())
    assert result["model"]["jump5"]["frames_ahead"] == [5, 10] and len(result["model"]["jump2"]["mse"]) == 5
    assert len(result["baseline"]["position_mse"]) == 10
    assert result["reconstruction"]["frames_ahead"] == [0] and result["reconstruction"]["mse"][0] > 0
    # the LSTM has no reconstruction: its horizon 0 is the last context frame itself, so its error there is 0
    as_model = evaluate_predictions(baseline.model.eval(), batch, 10, 4, samples=2)
    assert as_model["reconstruction"]["mse"] == [0.0] and as_model["reconstruction"]["position_mse"][0] > 0
    copy = result["copy_last"]
    x, pos = batch["x"], batch["state"][..., 0]
    torch.testing.assert_close(torch.tensor(copy["mse"][2]), (x[:, 9] - x[:, 12]).pow(2).mean())
    torch.testing.assert_close(torch.tensor(copy["position_mse"][2]), (x[:, 9, 0] - pos[:, 12]).pow(2).mean())

    parser = argparse.ArgumentParser()
    add_rollout_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["rollout", str(tmp_path / "tdvae"), "--horizon", "6", "--evaluate", "16",
                              "--out", str(tmp_path / "r.png")])
    args.func(args)
    assert (tmp_path / "r.gif").exists()
    written = json.loads((tmp_path / "tdvae" / "predictions_c10_h6_n16.json").read_text())
    assert set(written["model"]) == {"jump1", "jump2", "jump3", "jump4", "jump5"}
    assert all(math.isfinite(v) for v in written["model"]["jump1"]["mse"])


@pytest.mark.parametrize("recipe", ["tdvae_moving_mnist", "tdvae_moving_mnist_conv"])
def test_moving_mnist_recipe_trains_and_rolls_out(recipe: str, tmp_path: Path, data_dir: Path) -> None:
    from vaekit.run.fit import fit
    from vaekit.views.rollout import rollout_figure

    cfg = load_config(f"configs/{recipe}.yaml", [*FAST, f"data.dir={data_dir / 'mnist'}", "data.val_size=64",
                                                 "data.batch_size=16", "model.preprocess=[32]"])
    _, trainer = fit(cfg, tmp_path)
    assert trainer.global_step == 3 and (tmp_path / "figures" / "rollout_jump4_epoch0001.png").exists()
    png, gif = rollout_figure(tmp_path, context=8, horizon=12, jump=2, samples=2, sequences=3)
    w, h = Image.open(png).size
    assert (w, h) == (2 * (20 * 30 + 2), 2 * (11 * 30 + 2))  # 20 frames; 3 x (truth + 2 samples) rows + 2 blank
    assert Image.open(gif).n_frames == 20
