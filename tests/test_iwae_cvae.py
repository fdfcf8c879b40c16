"""IWAE objective and gradient, and the conditional VAE's use of X."""

from __future__ import annotations

import torch
from torch.distributions import Bernoulli, Independent, kl_divergence

from vaekit.core.estimators import log_mean_exp
from vaekit.core.likelihoods import MaskedBernoulli, bernoulli, standard_normal
from vaekit.models import registry
from vaekit.models.base import Ability
from vaekit.models.cvae import LabelCVAE, LabelCVAEConfig, QuadrantCVAE, QuadrantCVAEConfig
from vaekit.models.iwae import IWAE, IWAEConfig
from vaekit.models.regressor import QuadrantRegressor, RegressorConfig, quadrant_mask
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
    single = -vae.log_importance_weights({"x": x}, 1).mean()  # VAE's single-sample ELBO, same noise
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
    log_w = model.log_importance_weights({"x": x}, 5)
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
    """On the same log-weights, L_k grows with k while the k-sample VAE objective (the mean of the log-weights)
    stays the ELBO whatever k is, and each model's loss is the one it names."""
    torch.manual_seed(0)
    model = IWAE(IWAEConfig(input_shape=(1, 6, 6), latent_dims=(4,), hidden=((16,),), k=50))
    x = _x(b=64)
    with torch.no_grad():
        log_w = model.log_importance_weights({"x": x}, 5000)
    l1, l50, l5000 = log_w.mean(), log_mean_exp(log_w[:50]).mean(), log_mean_exp(log_w).mean()
    assert l1 + 0.1 < l50 < l5000
    vae_k = [log_w[: k * 50].view(k, 50, -1).mean(0).mean() for k in (1, 10, 100)]  # (1/k) sum log w, any k
    assert max(vae_k) - min(vae_k) < 0.05 and abs(float(vae_k[0] - l1)) < 0.05
    vae_objective = IWAE(IWAEConfig(input_shape=(1, 6, 6), latent_dims=(4,), hidden=((16,),), k=50, objective="vae"))
    vae_objective.load_state_dict(model.state_dict())
    torch.manual_seed(5)
    out_vae = vae_objective.loss({"x": x})
    torch.manual_seed(5)
    out_iwae = model.loss({"x": x})
    torch.testing.assert_close(out_vae.terms["elbo"], out_iwae.terms["elbo"])  # the same draws ...
    torch.testing.assert_close(-out_vae.loss, out_vae.terms["elbo"].mean())  # ... VAE: the mean log-weight
    torch.testing.assert_close(-out_iwae.loss, log_mean_exp(out_iwae.terms["elbo"]).mean())  # IWAE: L_k
    assert -out_iwae.loss > -out_vae.loss + 0.1


def test_fast_bernoulli_log_prob_matches_torch() -> None:
    logits = torch.randn(7, 3, 1, 4, 4)
    x = torch.bernoulli(torch.rand(3, 1, 4, 4))
    for lg in (logits, logits[0]):  # k samples per x (batched dot product path), and one (BCE path)
        torch.testing.assert_close(bernoulli(lg, 3).log_prob(x), Independent(Bernoulli(logits=lg), 3).log_prob(x))


def _label_cvae() -> LabelCVAE:
    torch.manual_seed(0)
    return LabelCVAE(LabelCVAEConfig(input_shape=(1, 6, 6), hidden=(16,), latent_dim=4))


def test_cvae_prior_uses_the_label() -> None:
    """p(z|x) itself depends on X: its parameters differ between labels (not only the decoder's input)."""
    model = _label_cvae()
    x = _x(b=2)
    one, seven = (model.prior(model.condition({"x": x, "y": torch.tensor([d, d])})) for d in (1, 7))
    assert (one.mean - seven.mean).abs().max() > 1e-3 and (one.log_var - seven.log_var).abs().max() > 1e-3
    assert torch.equal(one.mean[0], one.mean[1])  # and only on X: the same label, the same prior
    assert model.sample(20).shape == (20, 1, 6, 6)  # two per digit, digit by digit


def test_cvae_kl_is_to_the_conditional_prior() -> None:
    """loss's KL is KL(q(z|x,y) || p(z|x)), the learned prior of eq. 4, not KL to N(0, I)."""
    model = _label_cvae()
    batch = {"x": _x(b=5), "y": torch.tensor([0, 1, 2, 3, 4])}
    out = model.loss(batch)
    cond = model.condition(batch)
    q, p = model.encode(cond, batch["x"]), model.prior(cond)
    torch.testing.assert_close(out.terms["kl"], kl_divergence(q, p))
    to_standard = kl_divergence(q, standard_normal(4, like=cond))
    assert (out.terms["kl"] - to_standard).abs().min() > 1e-4
    assert bool((out.terms["kl"] >= 0).all())


def test_masked_ncll_ignores_given_pixels() -> None:
    torch.manual_seed(0)
    shape = (1, 6, 6)
    model = QuadrantCVAE(QuadrantCVAEConfig(input_shape=shape, given_quadrants=2, hidden=(16,), latent_dim=4,
                                            baseline_hidden=(8,)))
    given = quadrant_mask(shape, 2)
    assert given.sum() == 18 and given[0, :, :3].all()  # the left half
    img = _x(b=3)
    flipped = torch.where(given, 1 - img, img)  # change only what X gives ...
    # ... X changes, so compare the likelihood of Y under one fixed decoder output:
    logits = torch.randn(3, *shape)
    like = model.decode(torch.zeros(3, 4), torch.zeros(3, 36))
    torch.testing.assert_close(like.log_prob(img), like.log_prob(flipped))
    flipped_missing = torch.where(given, img, 1 - img)  # ... while a change in the missing pixels does count
    assert (like.log_prob(img) - like.log_prob(flipped_missing)).abs().min() > 1e-3
    # the masked likelihood is the Bernoulli over the missing pixels alone
    regressor_likelihood = QuadrantRegressor(RegressorConfig(shape, 2)).likelihood(torch.zeros(3, *shape))
    assert torch.equal(regressor_likelihood.mask, ~given)  # the regressor scores the missing pixels
    dist = MaskedBernoulli(logits, ~given)
    per_pixel = Bernoulli(logits=logits).log_prob(img)
    torch.testing.assert_close(dist.log_prob(img), (per_pixel * ~given).flatten(1).sum(1))


def test_regressor_likelihood_is_exact_bernoulli_of_missing_pixels() -> None:
    torch.manual_seed(0)
    model = QuadrantRegressor(RegressorConfig((1, 6, 6), 1, hidden=(8,)))
    img = _x(b=3)
    given = quadrant_mask((1, 6, 6), 1)
    x_in = torch.where(given, img, torch.full_like(img, -1.0))
    logits = model.net(x_in.flatten(1)).view_as(img)
    p = torch.sigmoid(logits)
    by_hand = torch.where(img > 0.5, p, 1 - p).log().mul(~given).flatten(1).sum(1)
    torch.testing.assert_close(model.log_likelihood({"x": img}), by_hand, rtol=1e-5, atol=1e-5)
    out = model.loss({"x": img})
    assert set(out.terms) == {"log_likelihood", "ncll"}  # no ELBO: it has no latent variable
    assert Ability.EXACT_LIKELIHOOD in model.abilities and Ability.IMPORTANCE_WEIGHTS not in model.abilities


def test_cvae_tasks_are_registered() -> None:
    assert {"cvae_label", "cvae_quadrants", "regressor", "iwae"} <= set(registry.names())


def test_burdas_schedule_runs_3_to_the_i_epochs_at_lr_times_10_to_the_minus_i_over_7() -> None:
    from vaekit.core.schedules import burda_lr_factor, burda_stage
    from vaekit.models import registry
    from vaekit.run.module import VAEModule

    assert [burda_stage(e) for e in range(14)] == [0, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2, 3]
    assert burda_stage(3279) == 7 and burda_stage(3280) == 8  # eight stages: 1 + 3 + ... + 3^7 = 3,280 epochs
    model = registry.build("vae", registry.get("vae").config(input_shape=(4,), hidden=[3], latent_dim=2))
    cfg = {"train": {"lr": 1e-3, "lr_decay": "burda"}}
    sched = VAEModule(model, cfg).configure_optimizers()["lr_scheduler"]["scheduler"]
    lrs = []
    for _ in range(14):
        lrs.append(sched.optimizer.param_groups[0]["lr"])
        sched.step()
    assert lrs[0] == 1e-3 and abs(lrs[1] - 1e-3 * 10 ** (-1 / 7)) < 1e-12
    assert abs(lrs[13] - 1e-3 * 10 ** (-3 / 7)) < 1e-12
    assert lrs[4] == lrs[12] == 1e-3 * burda_lr_factor(4)
