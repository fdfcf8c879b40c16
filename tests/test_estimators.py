"""The shared importance-weighted estimator against exact mathematics."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Independent, MultivariateNormal, Normal

from vaekit.core.estimators import importance_weighted_bound, iwae_bound, log_mean_exp
from vaekit.core.likelihoods import diag_gaussian, standard_normal
from vaekit.models.base import LatentVariableModel, kl_term
from vaekit.models.vae import VAE, VAEConfig


def test_log_mean_exp_stable_for_large_negative_weights() -> None:
    log_w = torch.full((5000, 3), -1e4) + torch.linspace(0, 1, 5000)[:, None]
    out = log_mean_exp(log_w)
    assert torch.isfinite(out).all()
    # Shifting every weight by a constant shifts the result by that constant.
    ref = log_mean_exp(log_w + 1e4) - 1e4
    torch.testing.assert_close(out, ref)
    # Naive log(mean(exp(.))) underflows to -inf here: the stable form is needed.
    assert torch.isinf(log_w.exp().mean(0).log()).all()


def test_log_mean_exp_value() -> None:
    log_w = torch.log(torch.tensor([[1.0], [2.0], [3.0], [6.0]]))
    torch.testing.assert_close(log_mean_exp(log_w), torch.log(torch.tensor([3.0])))


class _Deterministic(nn.Module):
    """Fake model whose i-th weight is a fixed function of i: lets chunking be compared exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.offset = 0

    def log_importance_weights(self, batch: dict[str, Tensor], k: int) -> Tensor:
        i = torch.arange(self.offset, self.offset + k, dtype=torch.float64)[:, None]
        self.offset += k
        return -1e4 + torch.sin(i) * 30 + batch["x"][None, :]


def test_chunked_bound_equals_one_pass() -> None:
    x = torch.tensor([0.0, 1.0, -2.0], dtype=torch.float64)
    full = iwae_bound(_Deterministic().log_importance_weights({"x": x}, 5000))
    chunked = importance_weighted_bound(_Deterministic(), {"x": x}, 5000, chunk_size=333)
    torch.testing.assert_close(chunked.double(), full, rtol=0, atol=1e-3)


def _tiny_vae() -> VAE:
    torch.manual_seed(0)
    return VAE(VAEConfig(input_shape=(1, 4, 4), hidden=(8,), latent_dim=3))


def test_k1_bound_equals_single_sample_elbo_for_fixed_noise() -> None:
    model = _tiny_vae()
    x = torch.bernoulli(torch.full((6, 1, 4, 4), 0.4))
    torch.manual_seed(123)
    bound = importance_weighted_bound(model, {"x": x}, k=1)
    # The same noise by hand: z = mu + sigma * eps, ELBO = log p(x|z) + log p(z) - log q(z|x).
    torch.manual_seed(123)
    q = model.encode(x)
    z = q.rsample((1,))[0]
    elbo = model.decode(z).log_prob(x) + model.prior().log_prob(z) - q.log_prob(z)
    torch.testing.assert_close(bound, elbo)


def test_k1_bound_averages_to_analytic_elbo() -> None:
    model = _tiny_vae()
    x = torch.bernoulli(torch.full((4, 1, 4, 4), 0.4))
    with torch.no_grad():
        mc = model.log_importance_weights({"x": x}, 100_000).mean(0)  # E_q[log p(x,z) - log q(z|x)], all by MC
        q = model.encode(x)
        rec = model.decode(q.sample((100_000,))).log_prob(x).mean(0)
        analytic = rec - kl_term(q, model.prior())  # the same ELBO with KL in closed form
    torch.testing.assert_close(mc, analytic, rtol=0, atol=0.05)


def test_analytic_kl_matches_monte_carlo() -> None:
    torch.manual_seed(0)
    q = diag_gaussian(torch.randn(3, 5), torch.randn(3, 5) * 0.5)
    p = standard_normal(5, like=torch.zeros(1))
    analytic = kl_term(q, p)
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(mc, analytic, rtol=0.02, atol=0.02)
    assert (analytic > 0).all()


def test_kl_between_two_diagonal_gaussians_matches_monte_carlo() -> None:
    """The log-variance KL (used for learned priors, e.g. the CVAE's p(z|x)) against sampling."""
    torch.manual_seed(1)
    q = diag_gaussian(torch.randn(3, 5), torch.randn(3, 5) * 0.5)
    p = diag_gaussian(torch.randn(3, 5), torch.randn(3, 5) * 0.5)
    z = q.sample((200_000,))
    mc = (q.log_prob(z) - p.log_prob(z)).mean(0)
    torch.testing.assert_close(mc, kl_term(q, p), rtol=0.02, atol=0.02)
    torch.testing.assert_close(kl_term(q, q), torch.zeros(3), rtol=0, atol=1e-6)


class LinearGaussianVAE(LatentVariableModel):
    """Probabilistic PCA: p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I), so log p(x) = log N(x; b, WW^T + s^2 I).

    The encoder is the exact posterior, optionally perturbed so the bound is loose."""

    def __init__(self, d_x: int = 6, d_z: int = 2, s: float = 0.5, perturb: float = 0.0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.W = nn.Parameter(torch.randn(d_x, d_z, generator=g, dtype=torch.float64))
        self.b = nn.Parameter(torch.randn(d_x, generator=g, dtype=torch.float64))
        self.s, self.latent_dim, self.perturb = s, d_z, perturb

    def prior(self) -> Independent:
        return standard_normal(self.latent_dim, like=self.W)

    def marginal(self) -> MultivariateNormal:
        cov = self.W @ self.W.T + self.s**2 * torch.eye(self.W.shape[0], dtype=torch.float64)
        return MultivariateNormal(self.b, cov)

    def encode(self, x: Tensor) -> Independent:
        # Exact posterior: Sigma = (I + W^T W / s^2)^-1, mu = Sigma W^T (x - b) / s^2. Kept diagonal.
        prec = torch.eye(self.latent_dim, dtype=torch.float64) + self.W.T @ self.W / self.s**2
        cov = torch.linalg.inv(prec)
        mu = (x - self.b) @ self.W @ cov.T / self.s**2
        std = cov.diagonal().sqrt() * (1 + self.perturb)
        return Independent(Normal(mu + self.perturb, std.expand_as(mu)), 1)

    def decode(self, z: Tensor) -> Independent:
        return Independent(Normal(z @ self.W.T + self.b, torch.full_like(z @ self.W.T, self.s)), 1)


def test_bound_approaches_exact_log_likelihood_on_ppca() -> None:
    model = LinearGaussianVAE(perturb=0.2)
    torch.manual_seed(0)
    x = model.marginal().sample((256,))
    exact = model.marginal().log_prob(x)
    torch.manual_seed(0)
    gaps = [float((exact - importance_weighted_bound(model, {"x": x}, k, chunk_size=1000)).mean())
            for k in (1, 10, 100, 5000)]
    assert gaps[0] > gaps[1] > gaps[2] > -0.005, gaps  # a lower bound that tightens with k
    assert gaps[0] > 0.5 and abs(gaps[3]) < 0.005, gaps  # loose at k = 1, exact to MC noise at 5000


def test_bound_is_exact_with_exact_posterior() -> None:
    # PPCA's posterior is Gaussian with full covariance; with W having orthogonal columns it is diagonal,
    # so q = p(z|x) and every importance weight equals p(x): L_1 = log p(x) with zero variance.
    model = LinearGaussianVAE()
    with torch.no_grad():
        q_, _ = torch.linalg.qr(model.W)
        model.W.copy_(q_ * torch.tensor([2.0, 0.7], dtype=torch.float64))
    x = model.marginal().sample((8,))
    torch.testing.assert_close(importance_weighted_bound(model, {"x": x}, 1), model.marginal().log_prob(x))
    assert math.isfinite(float(importance_weighted_bound(model, {"x": x}, 3).sum()))
