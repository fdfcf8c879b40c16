"""Recipes are validated key by key; the CLI turns mistakes into one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from vaekit.cli import main
from vaekit.config import ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_recipe_validates(recipe: Path) -> None:
    cfg = load_config(recipe)
    assert cfg.name == recipe.stem


@pytest.mark.parametrize("sweep", sorted((CONFIGS / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sweep_validates(sweep: Path, tmp_path: Path) -> None:
    import yaml

    from vaekit.sweep import plan

    jobs = plan(yaml.safe_load(sweep.read_text()), tmp_path)
    assert jobs and len({j["dir"] for j in jobs}) == len(jobs)


def test_overrides_are_typed() -> None:
    cfg = load_config({"model": "vae"}, ["train.lr=3e-4", "model.hidden=[64, 32]", "train.progress_bar=false"])
    assert cfg.train.lr == 3e-4 and cfg.model["hidden"] == [64, 32] and cfg.train.progress_bar is False


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.lrr=1"], r"unknown key train.lrr; allowed: .*lr,"),
        (["model.latent=3"], r"unknown key model.latent; allowed: .*latent_dim"),
        (["model.likelihood=poisson"], r"model.likelihood='poisson' is not allowed; choose one of: bernoulli, gauss"),
        (["data.binarize=sometimes"], r"choose one of: dynamic, none"),
        (["train.epochs=many"], r"train.epochs must be an integer"),
        (["model.name=vq_vae"], r"model.name='vq_vae' is unknown; choose one of: .*vae"),
    ],
)
def test_bad_keys_and_values_are_named(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"model": "vae"}, overrides)


def test_cli_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "vae", "train.lrr=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("vaekit: error: unknown key train.lrr") and "\n" not in err
    assert main(["evaluate", "/nonexistent/run"]) == 2
    assert "no such run directory" in capsys.readouterr().err
