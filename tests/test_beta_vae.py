"""beta-VAE and the capacity-controlled objective: the loss is the one each paper writes."""

from __future__ import annotations

import torch

from vaekit.core.likelihoods import kl_per_dimension
from vaekit.core.schedules import Ramp
from vaekit.models import registry

SMALL = {"input_shape": (1, 16, 16), "channels": (4, 8), "fc": 16, "latent_dim": 3}


def _model(**kw: object) -> torch.nn.Module:
    torch.manual_seed(0)
    return registry.build("beta_vae", registry.get("beta_vae").config(**SMALL, **kw))


def _by_hand(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    q = model.encode(x)
    return model.decode(q.rsample()).log_prob(x), kl_per_dimension(q).sum(-1)


def test_beta_objective_weighs_the_kl_and_reduces_to_the_elbo_at_beta_1() -> None:
    x = torch.bernoulli(torch.full((5, 1, 16, 16), 0.3))
    for beta in (1.0, 4.0):
        model = _model(beta=beta)
        torch.manual_seed(1)
        out = model.loss({"x": x})
        torch.manual_seed(1)
        rec, kl = _by_hand(model, x)
        torch.testing.assert_close(out.loss, -(rec - beta * kl).mean())
        torch.testing.assert_close(out.terms["elbo"], (rec - kl).detach())  # logged as the true bound
    torch.testing.assert_close(sum(out.terms[f"kl_{j}"] for j in range(3)), out.terms["kl"])


def test_capacity_objective_pulls_the_kl_towards_c() -> None:
    x = torch.bernoulli(torch.full((5, 1, 16, 16), 0.3))
    model = _model(objective="capacity", gamma=100.0, capacity=Ramp(0.0, 20.0, length=1000))
    model.on_train_step(500, 0)
    assert float(model.capacity) == 10.0
    torch.manual_seed(1)
    out = model.loss({"x": x})
    torch.manual_seed(1)
    rec, kl = _by_hand(model, x)
    torch.testing.assert_close(out.loss, -(rec.mean() - 100.0 * (kl.mean() - 10.0).abs()))

    assert bool((kl < 10.0).all())  # a fresh encoder carries little: the penalty's gradient raises the KL
    kl_mean = kl.mean()
    grad = torch.autograd.grad(100.0 * (kl_mean - 10.0).abs(), kl_mean)[0]
    assert float(grad) == -100.0
    assert "capacity" in model.state_dict()  # the schedule's value travels with the weights


def test_capacity_holds_the_batch_average_kl_at_c_not_each_example() -> None:
    """With C between the examples' KLs, the penalty is gamma |mean KL - C| (Burgess et al.'s batch average): an x
    whose code carries more than C may, if others carry less. Per example it would charge both deviations."""
    x = torch.cat([torch.zeros(4, 1, 16, 16), torch.bernoulli(torch.full((4, 1, 16, 16), 0.5))])
    torch.manual_seed(1)
    _, kl = _by_hand(_model(), x)
    c = float(kl.median())
    assert bool((kl > c).any() and (kl < c).any())
    model = _model(objective="capacity", gamma=1e4, capacity=Ramp(c, c))
    torch.manual_seed(1)
    out = model.loss({"x": x})
    torch.manual_seed(1)
    rec, kl = _by_hand(model, x)
    torch.testing.assert_close(out.loss, -(rec.mean() - 1e4 * (kl.mean() - c).abs()))
    assert float(-(rec - 1e4 * (kl - c).abs()).mean()) > float(out.loss) + 1.0  # the per-example form


def test_active_units_tell_an_informative_code_from_an_offset_one() -> None:
    """The logged active units count latents whose posterior mean moves with x: an encoder whose mean is one
    offset for every x (KL > 0, no information) has none."""
    x = torch.cat([torch.zeros(32, 1, 16, 16), torch.ones(32, 1, 16, 16)])  # two kinds of image
    model = _model()
    last = model.encoder.fc[-1]  # the linear layer to (mean, log-variance)
    with torch.no_grad():  # mean and log-variance independent of x: a constant offset, KL > 0
        last.weight.zero_()
        last.bias.copy_(torch.tensor([1.5, -1.0, 0.5, 0.3, 0.3, 0.3]))
    out = model.loss({"x": x})
    assert float(out.terms["kl"].mean()) > 1.0 and float(out.terms["active_units"][0]) == 0.0
    with torch.no_grad():
        last.weight.normal_(0, 3.0)  # means that follow x
    assert float(model.loss({"x": x}).terms["active_units"][0]) >= 1.0


def test_traversal_moves_one_latent_per_row(tmp_path) -> None:  # noqa: ANN001
    """Row r decodes the seed's posterior mean with only latent order[r] changed, across [-3, 3]."""
    from PIL import Image

    from vaekit.views.traverse import traversal, write_traversals

    model = _model().eval()
    x = torch.bernoulli(torch.full((4, 1, 16, 16), 0.3))
    order = torch.tensor([2, 0, 1])
    grid = traversal(model, x[0], order, steps=5, radius=3.0)
    assert grid.images.shape == (15, 1, 16, 16) and grid.nrow == 5
    mean = model.encode(x[:1]).mean[0]
    z = mean.clone()
    z[2] = -1.5  # row 0 is latent 2, column 1 of linspace(-3, 3, 5)
    torch.testing.assert_close(grid.images[1], model.decode(z[None]).mean[0])
    paths = write_traversals(model, x, tmp_path, seeds=2, steps=5)
    assert [p.name for p in paths] == ["kl_per_latent.png", "traversal_seed0.png", "traversal_seed1.png"]
    assert Image.open(paths[1]).size == (2 * (5 * 18 + 2), 2 * (3 * 18 + 2))  # 5 columns, 3 latents
