"""IWAE objective and gradient, and the conditional VAE's use of X."""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Independent

from vaekit import registry
from vaekit.likelihoods import bernoulli
from vaekit.models.cvae import CVAE, CVAEConfig, MaskedBernoulli, QuadrantRegressor, RegressorConfig, quadrant_mask
from vaekit.models.iwae import IWAE, IWAEConfig
from vaekit.models.vae import VAE, VAEConfig


def _x(b: int = 4, side: int = 6) -> torch.Tensor:
    return torch.bernoulli(torch.full((b, 1, side, side), 0.4))


def test_iwae_k1_equals_vae_for_fixed_noise() -> None:
    torch.manual_seed(0)
    shape = (1, 6, 6)
    iwae = IWAE(IWAEConfig(input_shape=shape, latent_dims=(3,), hidden=((8,),), k=1))
    vae = VAE(VAEConfig(input_shape=shape, hidden=(8,), latent_dim=3))
    # Same weights: the one-layer IWAE is the VAE with a different objective.
    vae.encoder.load_state_dict(iwae.q_layers[0].net.state_dict())
    vae.decoder.load_state_dict(iwae.p_x.state_dict())
    vae_objective = IWAE(IWAEConfig(input_shape=shape, latent_dims=(3,), hidden=((8,),), k=1, objective="vae"))
    vae_objective.load_state_dict(iwae.state_dict())
    x = _x()
    torch.manual_seed(1)
    l_iwae = iwae.loss({"x": x}).loss
    torch.manual_seed(1)
    l_k1_vae = vae_objective.loss({"x": x}).loss
    torch.manual_seed(1)
    single = -vae.log_importance_weights(x, 1).mean()  # VAE's single-sample ELBO, same noise
    torch.testing.assert_close(l_iwae, l_k1_vae)
    torch.testing.assert_close(l_iwae, single)


def test_iwae_gradient_is_normalized_weighted_sum_of_per_sample_gradients() -> None:
    torch.manual_seed(0)
    model = IWAE(IWAEConfig(input_shape=(1, 4, 4), latent_dims=(3, 2), hidden=((6,), (5,)), k=5))
    x = _x(b=2, side=4)
    params = list(model.parameters())
    torch.manual_seed(7)
    grads = torch.autograd.grad(-model.loss({"x": x}).loss * x.shape[0], params)  # sum_b L_k(x_b)
    torch.manual_seed(7)  # the same noise: the same z_i
    log_w = model.log_importance_weights(x, 5)
    w_tilde = torch.softmax(log_w.detach(), dim=0)  # normalized importance weights
    expected = [torch.zeros_like(p) for p in params]
    for i in range(5):
        for b in range(2):
            g = torch.autograd.grad(log_w[i, b], params, retain_graph=True, allow_unused=True)
            for e, gi in zip(expected, g, strict=True):
                if gi is not None:
                    e += w_tilde[i, b] * gi
    for g, e in zip(grads, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


def test_iwae_bound_tightens_with_k_and_vae_objective_does_not() -> None:
    torch.manual_seed(0)
    model = IWAE(IWAEConfig(input_shape=(1, 6, 6), latent_dims=(4,), hidden=((16,),), k=50))
    x = _x(b=64)
    with torch.no_grad():
        log_w = model.log_importance_weights(x, 5000)
    from vaekit.estimators import log_mean_exp

    l1, l50, l5000 = log_w.mean(), log_mean_exp(log_w[:50]).mean(), log_mean_exp(log_w).mean()
    assert l1 < l50 < l5000


def test_fast_bernoulli_log_prob_matches_torch() -> None:
    logits = torch.randn(7, 3, 1, 4, 4)
    x = torch.bernoulli(torch.rand(3, 1, 4, 4))
    for lg in (logits, logits[0]):  # k samples per x (batched dot product path), and one (BCE path)
        torch.testing.assert_close(bernoulli(lg, 3).log_prob(x), Independent(Bernoulli(logits=lg), 3).log_prob(x))


def test_cvae_prior_uses_the_label() -> None:
    torch.manual_seed(0)
    model = CVAE(CVAEConfig(input_shape=(1, 6, 6), task="label", hidden=(16,), latent_dim=4))
    with torch.no_grad():  # make the prior depend strongly on X so the effect is unmistakable
        model.prior_net[-1].weight.mul_(20)
    torch.manual_seed(3)
    a = model.sample(16, label=1)
    torch.manual_seed(3)
    b = model.sample(16, label=7)
    assert not torch.allclose(a, b, atol=1e-3)  # same noise, different X, different samples
    assert model.sample(20).shape == (20, 1, 6, 6)  # two per digit, digit by digit
    out = model.loss({"x": _x(b=5), "y": torch.tensor([0, 1, 2, 3, 4])})
    assert torch.isfinite(out.loss) and bool((out.terms["kl"] >= 0).all())


def test_masked_ncll_ignores_given_pixels() -> None:
    torch.manual_seed(0)
    shape = (1, 6, 6)
    model = CVAE(CVAEConfig(input_shape=shape, task="quadrants", given_quadrants=2, hidden=(16,), latent_dim=4))
    given = quadrant_mask(shape, 2)
    assert given.sum() == 18 and given[0, :, :3].all()  # the left half
    img = _x(b=3)
    flipped = torch.where(given, 1 - img, img)  # change only what X gives ...
    # ... X changes, so compare the likelihood of Y under one fixed decoder output:
    logits = torch.randn(3, *shape)
    like = model.decode(torch.zeros(3, 4), torch.zeros(3, 36))
    like_a, like_b = like.log_prob(img), like.log_prob(flipped)
    torch.testing.assert_close(like_a, like_b)
    # the masked likelihood is the Bernoulli over the missing pixels alone
    regressor_likelihood = QuadrantRegressor(RegressorConfig(shape, 2)).likelihood(torch.zeros(3, *shape))
    assert torch.equal(regressor_likelihood.mask, ~given)  # the regressor scores the missing pixels
    dist = MaskedBernoulli(logits, ~given)
    full = Independent(Bernoulli(logits=logits), 3)
    per_pixel = full.base_dist.log_prob(img)
    torch.testing.assert_close(dist.log_prob(img), (per_pixel * ~given).flatten(1).sum(1))


def test_regressor_weights_are_exact() -> None:
    model = QuadrantRegressor(RegressorConfig((1, 6, 6), 1))
    batch = {"x": _x(b=3)}
    log_w = model.log_importance_weights(batch, 4)
    assert log_w.shape == (4, 3) and torch.equal(log_w[0], log_w[3])


def test_cvae_is_registered() -> None:
    assert {"cvae", "regressor", "iwae"} <= set(registry.names())
