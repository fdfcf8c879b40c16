"""Recipes are validated key by key; the CLI turns mistakes into one line naming the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import pytest
from annotated_types import Ge

from vaekit.cli import main
from vaekit.core.schedules import Ramp
from vaekit.run.config import ConfigError, from_dict, load_config, migrate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("recipe", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_recipe_validates(recipe: Path) -> None:
    cfg = load_config(recipe)
    assert cfg.name == recipe.stem


@pytest.mark.parametrize("sweep", sorted((CONFIGS / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_sweep_validates(sweep: Path, tmp_path: Path) -> None:
    import yaml

    from vaekit.run.sweep import plan

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
        (["model.likelihood=poisson"], r"model.likelihood='poisson' is not allowed; choose one of: bernoulli, gaus"),
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
    assert "argument run: /nonexistent/run: no such file or directory" in capsys.readouterr().err


@dataclass
class _Level:
    latent: Annotated[int, Ge(1)] = 4
    hidden: tuple[int, int] = (32, 32)


@dataclass
class _Nested:
    levels: list[_Level] = field(default_factory=lambda: [_Level()])
    encoder: _Level | None = None
    warmup: Ramp = field(default_factory=Ramp)


def test_nested_configs_are_checked_element_by_element() -> None:
    """Lists of per-level dataclasses, optional sub-configs and fixed-length tuples (every position)."""
    cfg = from_dict(_Nested, {"levels": [{"latent": "3"}, {"hidden": [8, "16"]}], "encoder": {"latent": 2},
                              "warmup": {"start": 0, "length": 10, "unit": "epoch"}}, "model")
    assert cfg.levels == [_Level(3), _Level(4, (8, 16))] and cfg.encoder == _Level(2)
    assert cfg.warmup.value(0, 5) == 0.5
    cases = [({"levels": [{}, {"latnt": 3}]}, r"unknown key model.levels\[1\].latnt; allowed: hidden, latent"),
             ({"levels": [{"hidden": [1, "x"]}]}, r"model.levels\[0\].hidden\[1\] must be an integer, got 'x'"),
             ({"levels": [{"hidden": [1]}]}, r"model.levels\[0\].hidden has too few values"),
             ({"encoder": {"latent": 0}}, r"model.encoder.latent=0 is not allowed; it must be >= 1"),
             ({"warmup": {"unit": "hour"}}, r"model.warmup.unit='hour' is not allowed; choose one of: step, epoch"),
             ({"levels": 3}, r"model.levels must be a list")]
    for raw, message in cases:
        with pytest.raises(ConfigError, match=message):
            from_dict(_Nested, raw, "model")


@pytest.mark.parametrize(("overrides", "message"), [
    (["train.epochs=-3"], r"train.epochs=-3 is not allowed; it must be >= 1"),
    (["eval.nll_samples=0"], r"eval.nll_samples=0 is not allowed; it must be >= 1"),
    (["train.lr=-0.001"], r"train.lr=-0.001 is not allowed; it must be > 0"),
    (["trainer.num_nodes=0"], r"trainer.num_nodes=0 is not allowed; it must be >= 1"),
    (["train.loggers=[csv, nope]"], r"train.loggers\[1\]='nope' is not allowed; choose one of: csv, tensorboard"),
    (["data.name=cifar"], r"data.name='cifar' is unknown; choose one of: .*mnist"),
    (["data.batch_size=0"], r"data.batch_size=0 is not allowed"),
    (["trainer.max_steps=-5"], r"trainer.max_steps=-5 is not allowed; it must be >= -1"),
    (["data=1"], r"data must be a mapping"),
    (["train.nonfinite=ignore"], r"train.nonfinite='ignore' is not allowed; choose one of: stop, skip"),
])
def test_impossible_values_are_refused_before_training(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config({"model": "vae"}, overrides)


def test_malformed_recipe_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  name: vae\n   hidden: [1\n")
    assert main(["train", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"vaekit: error: {bad}: not valid YAML at line") and "\n" not in err


def test_older_run_configs_migrate() -> None:
    old = {"model": {"name": "cvae", "task": "quadrants", "given_quadrants": 2, "n_classes": 10,
                     "baseline_run": "runs/reg"},
           "train": {"epochs": 3, "max_time": "00:01:00:00", "devices": "auto", "val_every_n_epochs": 2}}
    cfg = load_config(migrate(old))
    assert cfg.model == {"name": "cvae_quadrants", "given_quadrants": 2}
    assert cfg.train.init == {"baseline": "runs/reg"} and cfg.trainer.max_time == "00:01:00:00"
    assert cfg.trainer.check_val_every_n_epoch == 2 and cfg.train.epochs == 3
