"""The ``vaekit`` command: train, evaluate, sample, reconstruct, traverse, sweep, list; rollout (vaekit.views.rollout),
speak (vaekit.views.speak), report (vaekit.views.report) and explore (vaekit.views.explore.app) add their own verbs."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import shlex
import sys
from pathlib import Path
from typing import Any

from vaekit.core import options as opt
from vaekit.run.config import ConfigError, check_strategy, load_config

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def _recipe(target: str) -> str | dict[str, Any]:
    """A YAML path, a recipe name from configs/, or a bare model name."""
    from vaekit.models import registry

    path = Path(target)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return str(path)
    if (CONFIGS / f"{target}.yaml").exists():
        return str(CONFIGS / f"{target}.yaml")
    if target in registry.names():
        return {"model": {"name": target}, "name": target}
    raise ConfigError(
        f"{target!r} is neither a recipe file nor a model; models: {', '.join(registry.names())}"
    )


def cmd_train(args: argparse.Namespace) -> None:
    from vaekit.run.fit import fit

    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.name={args.data}")  # a set that needs --data-dir says so when it is built
    for flag, key in (("data_dir", "data.dir"), ("epochs", "train.epochs"),
                      ("seed", "train.seed"), ("devices", "trainer.devices"), ("strategy", "trainer.strategy"),
                      ("precision", "trainer.precision"), ("accelerator", "trainer.accelerator"),
                      ("max_time", "trainer.max_time")):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    recipe = _recipe(args.recipe)
    if args.data is not None and isinstance(recipe, str):
        # Another data set than the recipe's: keep only the keys every data set has.
        from vaekit.run.config import read_yaml

        raw = read_yaml(Path(recipe)) or {}
        if (raw.get("data") or {}).get("name", "mnist") != args.data:
            raw.setdefault("name", Path(recipe).stem)
            raw["data"] = {k: v for k, v in (raw.get("data") or {}).items() if k in ("batch_size",)}
            recipe = raw
    cfg = load_config(recipe, overrides)
    run_dir = Path(args.out or Path("runs") / cfg.name)
    opt.say(f"vaekit: training {cfg.model_name} on {cfg.data.name} -> {run_dir}")
    fit(cfg, run_dir, resume=args.resume, overwrite=args.overwrite)
    figures = run_dir / "figures"
    opt.say(f"vaekit: done; weights in {run_dir / 'model.safetensors'}"
            + (f", figures in {figures}" if figures.is_dir() else ""))


def cmd_evaluate(args: argparse.Namespace) -> None:
    from vaekit.run.evaluate import evaluate_run
    from vaekit.run.io import load_run

    model, cfg, run_dir = load_run(args.run)
    model.to(_device(args.device))
    if args.data_dir:
        cfg.data.dir = args.data_dir
    given = {"nll_samples": args.nll_samples, "limit": args.limit, "chunk_size": args.chunk_size,
             "processes": args.processes,
             "metrics": [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None}
    cfg.eval = dataclasses.replace(cfg.eval, **{k: v for k, v in given.items() if v is not None})
    if args.overrides:  # eval.key=value, e.g. eval.metric_settings.beta_vae.num_train=2000
        from vaekit.run.config import EvalConfig, apply_overrides, from_dict, plain

        if bad := [o for o in args.overrides if not o.startswith("eval.")]:
            raise ConfigError(f"evaluate takes eval.* settings only, got {bad[0]!r}")
        raw = apply_overrides({"eval": plain(dataclasses.asdict(cfg.eval))}, args.overrides)
        cfg.eval = from_dict(EvalConfig, raw["eval"], "eval")
    result = evaluate_run(model, cfg, run_dir, progress=not args.quiet,
                          command="vaekit " + shlex.join(sys.argv[1:]))
    print(json.dumps(result, indent=2))


def _device(name: str) -> Any:
    """``auto``: the GPU where there is one, else the CPU; otherwise a torch device name (cpu, cuda, cuda:1)."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ConfigError(f"--device {name!r} is no torch device (cpu, cuda, cuda:1 or auto)") from e


def _require(model: Any, ability: Any, what: str) -> None:
    from vaekit.models.base import has

    if not has(model, ability):
        abilities = ", ".join(sorted(model.abilities)) or "none"
        raise ValueError(f"{type(model).__name__} cannot {what} (its abilities: {abilities})")


def cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from vaekit.core.drawing import save_grid
    from vaekit.models.base import Ability
    from vaekit.run.io import load_run

    model, _, run_dir = load_run(args.run)
    _require(model, Ability.SAMPLE if args.label is None else Ability.SAMPLE_BY_LABEL,
             "sample" if args.label is None else "sample by label")
    torch.manual_seed(args.seed)
    out = Path(args.out or run_dir / (f"samples_label{args.label}.png" if args.label is not None else "samples.png"))
    images = model.sample(args.n) if args.label is None else model.sample(args.n, label=args.label)
    print(f"vaekit: wrote {save_grid(images, out, nrow=args.nrow)}")


def _run_and_test_batch(args: argparse.Namespace, ability: Any, what: str, n: int,
                        seed: int) -> tuple[Any, Path, dict[str, Any]]:
    """The run's model (checked for ``ability``), its directory and the first n test examples."""
    from vaekit.run.io import held_out_batch, load_run

    model, cfg, run_dir = load_run(args.run)
    _require(model, ability, what)
    return model, run_dir, held_out_batch(cfg, n, seed, args.data_dir)


def cmd_reconstruct(args: argparse.Namespace) -> None:
    import torch

    from vaekit.core.drawing import save_reconstructions
    from vaekit.models.base import Ability

    model, run_dir, batch = _run_and_test_batch(args, Ability.RECONSTRUCT, "reconstruct", args.n, args.seed)
    torch.manual_seed(args.seed)
    out = Path(args.out or run_dir / "reconstructions.png")
    print(f"vaekit: wrote {save_reconstructions(batch['x'], model.reconstruct(batch), out)}")


def cmd_traverse(args: argparse.Namespace) -> None:
    from vaekit.models.base import Ability
    from vaekit.views.traverse import write_traversals

    model, run_dir, batch = _run_and_test_batch(args, Ability.TRAVERSAL, "be traversed", args.images, 0)
    out = Path(args.out or run_dir / "traversals")
    for path in write_traversals(model, batch["x"], out, seeds=args.seeds, steps=args.steps, radius=args.radius):
        print(f"vaekit: wrote {path}")


def cmd_sweep(args: argparse.Namespace) -> None:
    from vaekit.run.sweep import sweep

    print(sweep(args.recipe, jobs=args.jobs, out=args.out, only_table=args.table_only, status=args.status))


def cmd_check(args: argparse.Namespace) -> None:
    """Each file of the run against its checksum, then each weights file loaded into the model of config.yaml."""
    from vaekit.run.folder import RunFolderError, check_run
    from vaekit.run.io import load_run

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise NotADirectoryError(f"{run_dir}: not a run directory")
    report = dict(check_run(run_dir))
    for name in sorted(report):
        if report[name].startswith("ok") and name.endswith((".safetensors", ".ckpt")):
            try:
                with contextlib.redirect_stderr(io.StringIO()):  # its warnings about the others: listed below
                    load_run(run_dir / name)
            except (ValueError, ConfigError, FileNotFoundError) as e:
                report[name] = f"does not load: {e}"
    if not report:
        raise RunFolderError(f"{run_dir}: no weights or checkpoint to check")
    for name, verdict in sorted(report.items()):
        print(f"  {name:<36} {verdict}")
    bad = [n for n, v in report.items() if not v.startswith("ok")]
    if bad:
        raise RunFolderError(f"{run_dir} is not whole: {', '.join(bad)}")
    print(f"vaekit: {run_dir} is whole ({len(report)} files)")


def cmd_list(args: argparse.Namespace) -> None:
    from vaekit.data import data_names, get_data
    from vaekit.models import registry

    print("models:")
    for name in registry.names():
        entry = registry.get(name)
        print(f"  {name:<15} {entry.summary}")
        print(f"  {'':<15} abilities: {', '.join(sorted(getattr(entry.model, 'abilities', ()))) or 'none'}")
    print("data sets:")
    for name in data_names():
        print(f"  {name:<15} {get_data(name).summary}")
    if CONFIGS.is_dir():
        print("recipes (configs/):")
        for p in sorted(CONFIGS.glob("*.yaml")):
            print(f"  {p.stem}")


def _version() -> str:
    from vaekit import __version__

    return __version__


def _resume_command(argv: list[str]) -> str:
    """The command line that continues an interrupted training: --resume auto in place of --resume/--overwrite."""
    kept, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a == "--resume":
            skip = True
        elif not a.startswith(("--resume=", "--overwrite")):
            kept.append(a)
    return "vaekit " + shlex.join([*kept, "--resume", "auto"])


def _recipe_arg(target: str) -> str:
    if not target.strip() or Path(target).is_dir():
        raise argparse.ArgumentTypeError(f"{target!r} is neither a recipe file nor a model name")
    try:
        _recipe(target)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return target


def _override_arg(text: str) -> str:
    key = text.split("=", 1)[0]
    if "=" not in text or not key or any(not part.isidentifier() for part in key.split(".")):
        raise argparse.ArgumentTypeError(f"{text!r} must look like section.key=value, e.g. train.lr=3e-4")
    return text


def _data_names() -> list[str]:
    from vaekit.data import data_names

    return data_names()


def _metric_names() -> list[str]:
    from vaekit.metrics import METRICS

    return sorted(METRICS)


def parser() -> argparse.ArgumentParser:
    p = opt.OneLineParser(prog="vaekit", description="Variational autoencoders, trained and measured.")
    p.add_argument("--version", action="version", version=f"vaekit {_version()}")
    p.add_argument("--debug", action="store_true", help="show full tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a recipe (configs/*.yaml) or a model by name")
    t.add_argument("recipe", type=_recipe_arg, help="recipe YAML, recipe name in configs/, or model name")
    t.add_argument("overrides", nargs="*", type=_override_arg,
                   help="section.key=value, e.g. train.lr=3e-4 model.latent_dim=20")
    t.add_argument("--data", type=opt.one_of(_data_names, "data set"),
                   help="data set name (data.name): mnist, images, arrays, idx, ...")
    t.add_argument("--data-dir", type=opt.existing_path,
                   help="folder or file with the data (else $VAEKIT_DATA, else a download cache)")
    t.add_argument("--out", type=opt.out_path, help="run directory (default runs/<recipe name>)")
    how = t.add_mutually_exclusive_group()
    how.add_argument("--resume", type=opt.resume,
                     help="'auto' (the run directory's newest checkpoint, if any) or a .ckpt file: "
                          "step count, optimizer, schedules and data order continue")
    how.add_argument("--overwrite", action="store_true",
                     help="replace the run already in --out (its weights, checkpoints, logs and figures)")
    t.add_argument("--epochs", type=opt.count(10**6))
    t.add_argument("--max-time", type=opt.max_time, help="wall-clock budget DD:HH:MM:SS")
    t.add_argument("--seed", type=opt.seed)
    t.add_argument("--devices", type=opt.devices, help="lightning devices: auto, 1, 4, '0,1'")
    t.add_argument("--accelerator", type=opt.accelerator, help="cpu, gpu, auto")
    t.add_argument("--strategy", type=opt.as_type("strategy", check_strategy),
                   help="lightning strategy: auto, ddp, ...")
    t.add_argument("--precision", type=opt.precision, help="32-true, bf16-mixed, 16-mixed")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="test NLL (-L_k), ELBO, KL and active units of a trained run")
    e.add_argument("run", type=opt.existing_path, help="run directory, .safetensors or .ckpt")
    e.add_argument("overrides", nargs="*", type=_override_arg,
                   help="eval.key=value, e.g. eval.metric_settings.beta_vae.num_train=2000")
    e.add_argument("--nll-samples", type=opt.count(10**7), help="k importance samples (default: the recipe's, 5000)")
    e.add_argument("--limit", type=opt.count(10**9), help="only the first N test images")
    e.add_argument("--chunk-size", type=opt.count(10**6), help="importance samples per decoder pass")
    e.add_argument("--processes", type=opt.jobs(), help="evaluate the test set in that many processes at once")
    e.add_argument("--metrics", type=opt.names(_metric_names, "metric"),
                   help="disentanglement metrics on data with known factors, e.g. mig,dci,sap,factor_vae,beta_vae")
    e.add_argument("--data-dir", type=opt.existing_path)
    e.add_argument("--device", type=opt.device, default="auto",
                   help="where the model runs: auto (the GPU if any), cpu, cuda")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    e.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("sample", help="a PNG grid of samples from the prior")
    s.add_argument("run", type=opt.existing_path)
    s.add_argument("-n", type=opt.count(4096), default=64)
    s.add_argument("--nrow", type=opt.count(4096), default=8)
    s.add_argument("--seed", type=opt.seed, default=0)
    s.add_argument("--label", type=opt.integer(0, 10**6),
                   help="class to generate (label-conditioned models, e.g. cvae)")
    s.add_argument("--out", type=opt.out_path)
    s.set_defaults(func=cmd_sample)

    r = sub.add_parser("reconstruct", help="a PNG of test images above their reconstructions")
    r.add_argument("run", type=opt.existing_path)
    r.add_argument("-n", type=opt.count(1024), default=32)
    r.add_argument("--seed", type=opt.seed, default=0)
    r.add_argument("--data-dir", type=opt.existing_path)
    r.add_argument("--out", type=opt.out_path)
    r.set_defaults(func=cmd_reconstruct)

    v = sub.add_parser("traverse", help="latent traversals (rows: latents by KL) and a KL-per-latent chart")
    v.add_argument("run", type=opt.existing_path)
    v.add_argument("--seeds", type=opt.count(100), default=3, help="seed images (one PNG each)")
    v.add_argument("--steps", type=opt.integer(2, 101), default=7, help="values per latent, from -radius to radius")
    v.add_argument("--radius", type=opt.number(0, 100), default=3.0)
    v.add_argument("--images", type=opt.count(10**6), default=1000,
                   help="test images the KL per latent is averaged over")
    v.add_argument("--data-dir", type=opt.existing_path)
    v.add_argument("--out", type=opt.out_path, help="folder (default RUN/traversals)")
    v.set_defaults(func=cmd_traverse)

    w = sub.add_parser("sweep", help="train and evaluate every run of a sweep recipe, then write its table")
    w.add_argument("recipe", type=opt.existing_file)
    w.add_argument("--jobs", type=opt.jobs(), default=1, help="runs trained at once (each its own process)")
    w.add_argument("--out", type=opt.out_path, help="sweep directory (default runs/<name>)")
    w.add_argument("--table-only", action="store_true", help="only (re)write the table from finished runs")
    w.add_argument("--status", action="store_true",
                   help="only say where each run stands (evaluated, kept from the record, started, to train)")
    w.set_defaults(func=cmd_sweep)

    c = sub.add_parser("check", help="whether a run is whole: its config, each weights file against its recorded "
                                     "checksum, and the checkpoint")
    c.add_argument("run", type=opt.existing_path, help="run directory")
    c.set_defaults(func=cmd_check)

    from vaekit.views.explore.app import add_explore_parser
    from vaekit.views.report import add_report_parser
    from vaekit.views.rollout import add_rollout_parser
    from vaekit.views.speak import add_speak_parser

    add_rollout_parser(sub)  # sequence models (TD-VAE): rollouts from a context, figures, GIFs and errors
    add_report_parser(sub)  # a self-contained HTML page of a run, or of several side by side
    add_explore_parser(sub)  # a local web page: a slider per latent, the decoded image follows
    add_speak_parser(sub)  # speech_vae: style transfer and control, WAV + mel PNG
    sub.add_parser("list", help="registered models, data sets and recipes").set_defaults(func=cmd_list)
    return p


def main(argv: list[str] | None = None) -> int:
    from vaekit.run.callbacks import Interrupted

    argv = sys.argv[1:] if argv is None else list(argv)
    p = parser()
    # key=value overrides may come after options too: `vaekit train vae --epochs 3 model.latent_dim=8`.
    try:  # a bad option is one line and exit status 2 (argparse's SystemExit), returned like any other error
        args, extra = p.parse_known_args(argv)
        stray = [a for a in extra if a.startswith("-") or "=" not in a or args.command not in ("train", "evaluate")]
        if stray:
            p.error(f"unrecognized arguments: {' '.join(stray)}")
        if extra:
            try:
                args.overrides = [*args.overrides, *(_override_arg(a) for a in extra)]
            except argparse.ArgumentTypeError as e:
                p.error(f"argument overrides: {e}")
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    try:
        args.func(args)
    except Interrupted as e:
        opt.say(f"vaekit: {e}; resume with:\n  {_resume_command(argv)}")
        return e.exit_status
    except (ConfigError, FileNotFoundError, KeyError, ValueError, RuntimeError, OSError, FloatingPointError) as e:
        if args.debug:
            raise
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"vaekit: error: {msg}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
