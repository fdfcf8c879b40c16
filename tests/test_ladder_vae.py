"""The Ladder VAE and the hierarchical VAE (Sønderby et al. 2016): the precision-weighted merge, the warm-up, the
importance weights against a hand computation, batch norm at evaluation, depths and config checks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Independent, Normal, kl_divergence

from vaekit.core.likelihoods import DiagonalGaussian
from vaekit.core.schedules import Ramp
from vaekit.models import registry
from vaekit.models.ladder_vae import LadderVAEConfig, precision_weighted
from vaekit.run.config import ConfigError, load_config
from vaekit.run.io import build_model

MODELS = ["ladder_vae", "hierarchical_vae"]
SHAPE = (1, 6, 6)


def _model(name: str, **overrides: object) -> torch.nn.Module:
    settings = {"input_shape": SHAPE, "latent_dims": (5, 4, 3), "hidden": (24, 16, 8), **overrides}
    return registry.build(name, LadderVAEConfig(**settings))


def _x(b: int = 6) -> torch.Tensor:
    return torch.bernoulli(torch.full((b, *SHAPE), 0.4))


def test_precision_weighted_merge_is_the_normalised_product_of_the_two_gaussians() -> None:
    """N(mu_hat, s_hat^2) N(mu_p, s_p^2) / Z, normalised numerically on a grid, is the merged Gaussian's density."""
    dtype = torch.float64
    mu_hat = torch.tensor([0.0, 1.5, -2.0, 3.0, 0.2, -0.7], dtype=dtype)
    s_hat = torch.tensor([1.0, 0.3, 2.0, 0.5, 0.05, 1.2], dtype=dtype)
    mu_p = torch.tensor([0.0, -1.0, 1.0, 2.5, 0.4, 4.0], dtype=dtype)
    s_p = torch.tensor([1.0, 1.0, 0.4, 3.0, 0.5, 0.6], dtype=dtype)
    q_hat = DiagonalGaussian(mu_hat, (2 * s_hat.log()))
    p = Independent(Normal(mu_p, s_p), 1)  # any diagonal Gaussian: no log_var attribute here
    merged = precision_weighted(q_hat, p)
    assert isinstance(merged, DiagonalGaussian)

    dz = 1e-3
    z = torch.arange(-12.0, 12.0 + dz / 2, dz, dtype=dtype).unsqueeze(-1).expand(-1, 6)  # [G, D]
    log_product = Normal(mu_hat, s_hat).log_prob(z) + Normal(mu_p, s_p).log_prob(z)
    log_z = torch.logsumexp(log_product, dim=0) + math.log(dz)  # the normaliser, by quadrature
    log_density = log_product - log_z
    torch.testing.assert_close(merged.base_dist.log_prob(z), log_density, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(merged.log_prob(z), log_density.sum(-1), rtol=1e-6, atol=1e-5)
    # Sharper than either factor; equal inputs keep their mean and halve the variance.
    assert bool((merged.variance < torch.minimum(s_hat, s_p) ** 2).all())
    torch.testing.assert_close(merged.mean[0], torch.tensor(0.0, dtype=dtype))
    torch.testing.assert_close(merged.variance[0], torch.tensor(0.5, dtype=dtype))
    # Batch shapes broadcast: one bottom-up Gaussian per example against k top-down ones.
    fan = precision_weighted(DiagonalGaussian(torch.zeros(5, 3), torch.zeros(5, 3)),
                             DiagonalGaussian(torch.randn(4, 5, 3), torch.zeros(4, 5, 3)))
    assert fan.batch_shape == (4, 5) and fan.event_shape == (3,)


@pytest.mark.parametrize("name", MODELS)
def test_warm_up_at_zero_gives_the_kl_terms_no_gradient(name: str) -> None:
    torch.manual_seed(0)
    model = _model(name, kl_weight=Ramp(0.0, 1.0, length=10, unit="epoch"))
    x = _x()
    params = list(model.parameters())

    def grads(loss: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.autograd.grad(loss, params, allow_unused=True, materialize_grads=True)

    def rec_only() -> torch.Tensor:
        return -model.hierarchy(x).px.log_prob(x).mean()  # the reconstruction term alone, the KL left out

    model.on_train_step(0, 0)
    assert float(model.kl_weight) == 0.0
    torch.manual_seed(1)
    out = model.loss({"x": x})
    torch.manual_seed(1)
    for g, h in zip(grads(out.loss), grads(rec_only()), strict=True):
        torch.testing.assert_close(g, h)
    assert float(out.terms["kl"].mean()) > 0
    model.on_train_step(0, 10)  # warm-up over: beta = 1 and the KL terms do move the gradient
    assert float(model.kl_weight) == 1.0
    torch.manual_seed(1)
    with_kl = grads(model.loss({"x": x}).loss)
    torch.manual_seed(1)
    assert any(not torch.allclose(g, h) for g, h in zip(with_kl, grads(rec_only()), strict=True))


def _log_normal(z: torch.Tensor, mean: torch.Tensor, var: torch.Tensor) -> torch.Tensor:
    return (-0.5 * (math.log(2 * math.pi) + var.log() + (z - mean) ** 2 / var)).sum(-1)


def _ladder_by_hand(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Bottom-up pass, then z_L ~ N(mu_hat_L, s_hat_L^2) and z_i ~ N(mu_q, s_q^2) with the precision-weighted
    moments written out; log w = log p(x|z_1) + log p(z) - log q(z|x). Draws with randn in the model's order."""
    b = x.shape[0]
    d, bottom_up = x.flatten(1), []
    for mlp, head in zip(model.bottom_up, model.likelihood_terms, strict=True):
        d = mlp(d)
        bottom_up.append(head.moments(d))
    mu_hat, var_hat = bottom_up[-1]
    z = mu_hat + var_hat.sqrt() * torch.randn(1, b, mu_hat.shape[-1])
    log_q = _log_normal(z, mu_hat, var_hat)
    log_p = _log_normal(z, torch.zeros(()), torch.ones(()))
    for i in reversed(range(len(bottom_up) - 1)):
        layer = model.top_down[i]
        mu_p, var_p = layer.head.moments(layer.mlp(z))
        mu_hat, var_hat = bottom_up[i]
        var_q = 1 / (1 / var_hat + 1 / var_p)
        mu_q = (mu_hat / var_hat + mu_p / var_p) * var_q
        z = mu_q + var_q.sqrt() * torch.randn(mu_q.shape)
        log_q = log_q + _log_normal(z, mu_q, var_q)
        log_p = log_p + _log_normal(z, mu_p, var_p)
    logits = model.px_out(model.px_mlp(z))
    return (x.flatten(1) * logits - F.softplus(logits)).sum(-1) + log_p - log_q


def _hierarchical_by_hand(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """z_1 ~ q(z_1|x), z_i ~ q(z_i|z_{i-1}), then p(z_i|z_{i+1}) at the draws, each density written out."""
    y, zs, log_q = x.flatten(1), [], torch.zeros(())
    for i, layer in enumerate(model.bottom_up):
        mu, var = layer.head.moments(layer.mlp(y))
        y = mu + var.sqrt() * torch.randn((1, *mu.shape) if i == 0 else mu.shape)
        log_q = log_q + _log_normal(y, mu, var)
        zs.append(y)
    log_p = _log_normal(zs[-1], torch.zeros(()), torch.ones(()))
    for i, layer in enumerate(model.top_down):
        mu_p, var_p = layer.head.moments(layer.mlp(zs[i + 1]))
        log_p = log_p + _log_normal(zs[i], mu_p, var_p)
    logits = model.px_out(model.px_mlp(zs[0]))
    return (x.flatten(1) * logits - F.softplus(logits)).sum(-1) + log_p - log_q


@pytest.mark.parametrize("name", MODELS)
def test_one_importance_weight_is_the_single_sample_elbo_by_hand(name: str) -> None:
    torch.manual_seed(0)
    model = _model(name)
    x = _x()
    for _ in range(2):  # move the running statistics off their initial values
        model.loss({"x": _x()})
    model.eval()
    with torch.no_grad():
        torch.manual_seed(3)
        got = model.log_importance_weights({"x": x}, 1)
        torch.manual_seed(3)
        by_hand = (_ladder_by_hand if name == "ladder_vae" else _hierarchical_by_hand)(model, x)
        assert got.shape == by_hand.shape == (1, 6)
        torch.testing.assert_close(got, by_hand, rtol=1e-5, atol=1e-3)
        terms = model.loss({"x": x}).terms
    levels = [terms[f"kl_{i}"] for i in (1, 2, 3)]
    assert set(terms) == {"elbo", "rec", "kl", "kl_1", "kl_2", "kl_3"}
    torch.testing.assert_close(levels[0] + levels[1] + levels[2], terms["kl"])
    torch.testing.assert_close(terms["elbo"], terms["rec"] - terms["kl"])


@pytest.mark.parametrize("name", MODELS)
def test_in_eval_mode_an_examples_weights_do_not_depend_on_the_rest_of_the_batch(name: str) -> None:
    torch.manual_seed(0)
    model = _model(name)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(3):
        opt.zero_grad()
        model.loss({"x": _x(16)}).loss.backward()
        opt.step()
    x = _x(5)
    a, b = {"x": x[[0, 1, 2]]}, {"x": x[[0, 3, 4]]}  # the same first example, the same noise shape

    def first(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        torch.manual_seed(7)
        with torch.no_grad():
            return model.log_importance_weights(batch, 4)[:, 0]

    model.eval()
    torch.testing.assert_close(first(a), first(b))
    model.train()  # batch statistics: the other examples do change it, so the check above can fail
    assert not torch.allclose(first(a), first(b))


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize(("latent_dims", "hidden"), [([6], [32]), ([6, 4, 2], [32, 16, 8])], ids=["1", "3"])
def test_one_and_three_layers_build_and_train_a_step(name: str, latent_dims: list[int], hidden: list[int]) -> None:
    cfg = load_config({"model": {"name": name, "latent_dims": latent_dims, "hidden": hidden,
                                 "kl_weight": {"start": 0.0, "length": 5, "unit": "epoch"}}})
    torch.manual_seed(0)
    model = build_model(cfg)
    x = torch.bernoulli(torch.full((8, 1, 28, 28), 0.3))
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    model.on_train_step(0, 1)
    out = model.loss({"x": x})
    out.loss.backward()
    opt.step()
    assert torch.isfinite(out.loss) and float(model.kl_weight) == pytest.approx(0.2)
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))
    assert set(out.terms) == {"elbo", "rec", "kl", *(f"kl_{i}" for i in range(1, len(latent_dims) + 1))}
    assert torch.isfinite(model.loss({"x": x}).loss)
    model.eval()
    assert model.log_importance_weights({"x": x}, 3).shape == (3, 8)
    means = model.latent_means({"x": x})
    assert [m.shape for m in means.values()] == [(8, d) for d in latent_dims]
    assert model.represent(x).shape == (8, sum(latent_dims))
    assert model.decode(model.encode(x).mean).mean.shape == x.shape


@pytest.mark.parametrize("name", MODELS)
def test_each_levels_kl_estimate_has_the_expectation_of_log_q_minus_log_p(name: str) -> None:
    """KL_i = E_q[log q(z_i|.) - log p(z_i|z_{i+1})]: the closed forms used at the drawn conditioning values (all
    levels of the ladder, the top of the hierarchical VAE) must agree with the plain Monte Carlo average."""
    torch.manual_seed(0)
    model = _model(name).eval()
    with torch.no_grad():
        h = model.hierarchy(_x(), 4000)
        kls, ratios = model.kl_levels(h), model.log_ratios(h)
        for kl, ratio in zip(kls, ratios, strict=True):
            diff = (kl.expand_as(ratio) - ratio).flatten()
            assert abs(float(diff.mean())) < 4 * float(diff.std()) / math.sqrt(diff.numel()) + 1e-4
    # Which estimate each level uses: closed form where q and p are both Gaussians given what is drawn above
    # (every ladder level; the hierarchical VAE's top); below the hierarchical VAE's top, p(z_i|z_{i+1}) is
    # evaluated at a z_{i+1} drawn from z_i, so only the single-sample log-ratio is unbiased.
    analytic = [kl_divergence(q, p) for q, p in zip(h.q, h.p, strict=True)]
    expected = analytic if name == "ladder_vae" else [*ratios[:-1], analytic[-1]]
    for kl, e in zip(kls, expected, strict=True):
        torch.testing.assert_close(kl, e)


def test_k_importance_samples_in_training_log_the_bound() -> None:
    torch.manual_seed(0)
    model = _model("ladder_vae", k=4, kl_weight=Ramp())
    out = model.loss({"x": _x()})
    assert out.terms["elbo"].shape == (4, 6) and out.terms["iwae_bound"].shape == (6,)
    torch.testing.assert_close(out.loss, -out.terms["iwae_bound"].mean())


@pytest.mark.parametrize("name", MODELS)
def test_mismatched_latent_dims_and_hidden_are_a_config_error(name: str) -> None:
    with pytest.raises(ConfigError, match="latent_dims has 2 layers but hidden has 1"):
        load_config({"model": {"name": name, "latent_dims": [4, 2], "hidden": [8]}})
    with pytest.raises(ConfigError, match="at least one stochastic layer"):
        load_config({"model": {"name": name, "latent_dims": [], "hidden": []}})
    with pytest.raises(ConfigError, match="unknown activation"):
        load_config({"model": {"name": name, "activation": "swish"}})
