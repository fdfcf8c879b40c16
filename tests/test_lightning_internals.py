"""vaekit trims Lightning's per-step bookkeeping in a few places that lean on Lightning internals (measured in
BENCHMARKS.md). pyproject.toml pins the Lightning range they were written for; these tests fail if a Lightning
release changes what they rely on, so the tweak is revisited rather than silently wrong or useless."""

from __future__ import annotations

import inspect

import lightning
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.core.module import LightningModule
from lightning.pytorch.profilers import PassThroughProfiler, Profiler

from vaekit.run.callbacks import _Checkpoint, _NoProfiler
from vaekit.run.module import VAEModule


def test_lightning_still_sets_current_fx_name_on_the_module() -> None:
    # VAEModule.__setattr__ stores _current_fx_name without nn.Module's checks; Lightning must still use it.
    source = inspect.getsource(lightning.pytorch.trainer.call)
    assert "_current_fx_name" in source and "_current_fx_name" in inspect.getsource(LightningModule)
    assert "__setattr__" in VAEModule.__dict__


def test_profiler_profile_is_still_the_per_hook_context_manager() -> None:
    assert "profiler.profile(" in inspect.getsource(lightning.pytorch.trainer.call)
    assert issubclass(_NoProfiler, PassThroughProfiler) and hasattr(Profiler, "profile")
    with _NoProfiler().profile("x"):
        pass


def test_model_checkpoint_state_key_is_still_a_property() -> None:
    assert isinstance(inspect.getattr_static(ModelCheckpoint, "state_key"), property)
    cb = _Checkpoint(monitor="val/elbo", mode="max")
    assert cb.state_key.startswith("_Checkpoint{'monitor': 'val/elbo', 'mode': 'max'")
    assert "_state_key" in cb.__dict__  # computed once, then read from the instance


def test_gradients_are_clipped_only_where_a_run_asks(tmp_path, data_dir) -> None:  # noqa: ANN001
    # VAEModule.configure_gradient_clipping skips Lightning's per-step clipping checks when no clip is set; a run
    # with trainer.gradient_clip_val must still have every step's gradient norm clipped to it.
    import torch
    from lightning.pytorch.callbacks import Callback

    from vaekit.run.config import load_config
    from vaekit.run.fit import fit

    class Norms(Callback):
        def __init__(self) -> None:
            self.norms: list[float] = []

        def on_before_zero_grad(self, trainer, module, optimizer) -> None:  # noqa: ANN001
            # the previous step's gradients, as clipped and then used by Adam (the first call has none)
            grads = [p.grad for p in module.parameters() if p.grad is not None]
            if grads:
                self.norms.append(float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))))

    norms = {}
    for clip in (None, 0.01):
        cb = Norms()
        over = ["trainer.max_steps=6", "trainer.limit_train_batches=6", "trainer.limit_val_batches=0",
                "train.epochs=1", "train.progress_bar=false", "train.figures_every_n_epochs=100",
                "data.batch_size=16", "model.hidden=[16]", "model.latent_dim=2", f"data.dir={data_dir}",
                f"trainer.gradient_clip_val={'null' if clip is None else clip}"]
        fit(load_config({"model": "vae", "name": "clip"}, over), tmp_path / str(clip), callbacks=[cb])
        norms[clip] = cb.norms
    assert len(norms[0.01]) == 5 and max(norms[0.01]) <= 0.01 * (1 + 1e-4)
    assert min(norms[None]) > 1.0  # an untrained VAE's gradients are far larger: the clip did something


def test_model_checkpoint_still_saves_by_steps_or_time_alone_on_train_batch_end() -> None:
    # _Checkpoint.on_train_batch_end returns at once when neither a step count nor a time interval is set;
    # Lightning's own must still skip exactly then (automatic optimization), or the shortcut drops a save.
    source = inspect.getsource(ModelCheckpoint.on_train_batch_end)
    assert "skip_batch = self._every_n_train_steps < 1 or" in source
    assert "skip_time = True" in source and "if train_time_interval is not None:" in source
    assert "if skip_batch and skip_time:\n            return" in source
