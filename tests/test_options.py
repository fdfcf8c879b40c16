"""Every option of every verb, read from the parser, tried at its edges: 0, a negative, a huge value, a wrong type
and an empty string. A value the option refuses ends with exit status 2 and one line on stderr naming the option,
no traceback, nothing written; the values an option may take are listed in ACCEPTED, so a new option without a
check fails here until it has one."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from vaekit.cli import main, parser

PROBES = ("0", "-3", "99999999999", "abc", "")
ANY_PATH = {"0", "-3", "99999999999", "abc"}  # an output path may be called anything but nothing
# (verb, option) -> the probes it accepts; every other probe must be refused.
ACCEPTED: dict[tuple[str, str], set[str]] = {
    **{(verb, "--out"): ANY_PATH for verb in ("train", "sample", "reconstruct", "traverse", "sweep", "rollout",
                                              "report", "speak")},
    ("sample", "--seed"): {"0"}, ("reconstruct", "--seed"): {"0"}, ("rollout", "--seed"): {"0"},
    ("speak", "--seed"): {"0"}, ("train", "--seed"): {"0"},
    ("sample", "--label"): {"0"},
    ("rollout", "--horizon"): {"0"}, ("rollout", "--evaluate"): {"0"},
    ("explore", "--port"): {"0"},  # any free port
    ("speak", "--traverse"): {"0"},
    ("speak", "--z"): {"0", "-3"},  # z = (0) or (-3), the other dimensions 0
    ("speak", "--text"): {"abc"},
}
WHERE = {"run", "runs", "recipe"}  # positionals: a path that exists (probed too, below)


def _verbs() -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _base(verb: str, tmp: Path) -> list[str]:
    """A command line that parses: the verb's positionals and required options, valid."""
    args = {"train": ["vae"], "sweep": [str(tmp / "sweep.yaml")], "list": []}.get(verb, [str(tmp)])
    return [verb, *args, *(["--text", "hi"] if verb == "speak" else [])]


def _takes_value(action: argparse.Action) -> bool:
    return action.option_strings and action.nargs != 0 and not isinstance(action, argparse._HelpAction)


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for verb, p in _verbs().items():
        for action in p._actions:
            if _takes_value(action):
                cases += [(verb, action.option_strings[-1], probe) for probe in PROBES]
            elif not action.option_strings and action.dest in WHERE:
                cases += [(verb, action.dest, probe) for probe in PROBES]
    return cases


def test_every_verb_has_its_options_probed() -> None:
    verbs = {v for v, _, _ in _cases()}
    assert verbs == set(_verbs()) - {"list"}, verbs
    assert len(_cases()) > 300  # ~80 options and positionals x 5 probes
    known = {(v, o) for v, o, _ in _cases()}
    assert set(ACCEPTED) <= known, set(ACCEPTED) - known  # no stale entries


@pytest.mark.parametrize(("verb", "option", "probe"), _cases())
def test_an_option_at_its_edges_is_refused_in_one_line(verb: str, option: str, probe: str, tmp_path: Path,
                                                       monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.yaml").write_text("base: {}\nruns: {}\n")
    base = _base(verb, tmp_path)
    if option in WHERE:  # the positional itself
        argv = [verb, probe, *base[2:]] if verb != "report" else [verb, probe]
    else:
        argv = [*base, option, probe]
    before = sorted(p.name for p in tmp_path.rglob("*"))
    if probe in ACCEPTED.get((verb, option), set()):
        p = parser()
        args, extra = p.parse_known_args(argv)  # parses; running the verb is other tests' business
        assert not extra
        return
    assert main(argv) == 2, f"{argv} was accepted"
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    name = option if option.startswith("-") else f"argument {option}"
    assert name in lines[0], lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written


@pytest.mark.parametrize("argv", [
    ["evaluate", ".", "--limit", "-1"], ["evaluate", ".", "--limit", "0"], ["evaluate", ".", "--processes", "0"],
    ["evaluate", ".", "--chunk-size", "0"], ["evaluate", ".", "--device", "cuda:7"],
    ["sample", ".", "-n", "0"], ["sample", ".", "-n", "-4"], ["sample", ".", "-n", "100000"],
    ["reconstruct", ".", "-n", "0"], ["traverse", ".", "--radius", "-3"], ["traverse", ".", "--steps", "0"],
    ["report", "runs/nope"], ["explore", ".", "--port", "70000"], ["explore", ".", "--examples", "0"],
    ["sweep", "sweep.yaml", "--jobs", "0"], ["train", "vae", "--max-time", "bogus"],
    ["train", "vae", "--devices", "bogus"], ["train", "vae", "trainer.max_time=bogus"],
    ["train", "vae", "--precision", "33"], ["train", "vae", "--strategy", "nope"],
])
def test_the_tours_cases_are_one_line_errors(argv: list[str], tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep.yaml").write_text("base: {}\nruns: {}\n")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep.yaml"]


def test_gpu_options_are_checked_against_the_machine(capsys) -> None:  # noqa: ANN001
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["train", "vae", "--accelerator", "gpu"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err
    assert main(["evaluate", ".", "--device", "cuda"]) == 2
    assert "has 0 CUDA GPUs" in capsys.readouterr().err


def test_version(capsys) -> None:  # noqa: ANN001
    import tomllib

    import vaekit

    assert main(["--version"]) == 0
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]
    assert capsys.readouterr().out.strip() == f"vaekit {project['version']}" == f"vaekit {vaekit.__version__}"
