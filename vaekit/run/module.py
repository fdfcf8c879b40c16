"""The one LightningModule: Adam on any registered model's ``loss``, its terms logged, non-finite steps caught.

The research code (model, loss, schedules) lives in ``vaekit.models`` and never imports Lightning; this module
is the step, given to the model through its contract (``loss(batch) -> LossOutput``, ``on_train_step``)."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from vaekit.run.config import TrainConfig, from_dict


def _to(t: torch.Tensor, device: torch.device, fmt: torch.memory_format | None) -> torch.Tensor:
    t = t.to(device, non_blocking=True)
    return t.contiguous(memory_format=fmt) if fmt is not None and t.dim() == 4 else t


def _what(t: torch.Tensor) -> str:
    return "NaN" if torch.isnan(t).any() else "infinite"


class VAEModule(L.LightningModule):
    """Adam on ``model.loss``; logs every named term of the LossOutput under train/ and val/."""

    def __init__(self, model: nn.Module, config: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        self.config = config
        # A plain dict, so Lightning's .ckpt loads with weights_only=True and carries no pickled classes.
        self.save_hyperparameters({"config": config})
        self.train_cfg: TrainConfig = from_dict(TrainConfig, config["train"], "train")
        self.skipped_batches = 0  # batches left out for a NaN/Inf (train.nonfinite=skip); kept in checkpoints
        self.bar_loss: float | None = None  # the loss the progress bar shows, read with the guard
        self.__dict__["_compiled_loss"] = self._compiled(model) if self.train_cfg.compile else None

    @staticmethod
    def _compiled(model: nn.Module) -> Any:
        """The model's loss through torch.compile, its random draws by the eager kernels (inductor's own
        generator would give other numbers than the eager run for the same seed)."""
        import torch._inductor.config as inductor

        inductor.fallback_random = True
        return torch.compile(model.loss, dynamic=False)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets _current_fx_name around every hook, ~40 times a step; nn.Module.__setattr__ checks
        # each value against parameters, buffers and submodules first (~100 us a step on a 2-core CPU).
        # tests/test_lightning_internals.py fails if Lightning stops using this attribute.
        if name == "_current_fx_name":
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Our batches are flat dicts of tensors: one comprehension instead of Lightning's generic tree walk.
        if isinstance(batch, dict):
            fmt = torch.channels_last if self.train_cfg.channels_last else None
            return {k: _to(v, device, fmt) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        return super().transfer_batch_to_device(batch, device, dataloader_idx)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        self.model.on_train_step(self.global_step, self.current_epoch)  # schedules: warm-up, capacity, fade-in

    # -- the non-finite guard without a host sync -----------------------------------------------------------------
    # With fused Adam (CPU and CUDA) a bad step is skipped on the device: Adam's ``found_inf`` (the flag PyTorch's
    # gradient scaler uses) leaves the parameters, the moments and the step count as they were. The first bad
    # step of a window, what was bad in it and the count are device tensors; ``read_guard`` reads them (the one
    # sync) every ``train.sync_every_n_steps`` steps and before anything is written, and stops or reports there.
    def _deferred(self) -> bool:
        if self._fused() is not True or self.trainer.precision == "16-mixed":
            return False
        wanted = self.train_cfg.deferred_guard
        # By default only on an accelerator: on the CPU the host is the device, a read waits for nothing, and
        # the deferred bookkeeping's dozen extra small ops a step cost more than the reads they save.
        return wanted if wanted is not None else self.device.type != "cpu"

    def _guard_state(self, device: torch.device) -> dict[str, torch.Tensor]:
        g = self.__dict__.get("_guard")
        if g is None or g["step"].device != device:
            g = {"step": torch.full((), -1, dtype=torch.long, device=device),
                 "code": torch.zeros((), dtype=torch.long, device=device),  # 2 x what was bad + (1 if NaN)
                 "count": torch.zeros((), dtype=torch.long, device=device)}
            self.__dict__["_guard"] = g
        return g

    def _record(self, bad: torch.Tensor, code: torch.Tensor) -> None:
        g = self._guard_state(bad.device)
        newly = bad & (g["step"] < 0)
        g["step"] = torch.where(newly, self.global_step, g["step"])
        g["code"] = torch.where(newly, code, g["code"])
        g["count"] = g["count"] + bad

    def read_guard(self) -> None:
        """The host reads the device's guard (one sync): stop at a bad step, or count and report the skipped
        ones. Called every ``sync_every_n_steps`` steps and before every checkpoint and weights file."""
        g = self.__dict__.get("_guard")
        if g is None:
            return
        count, step, code = torch.stack([g["count"], g["step"], g["code"]]).tolist()  # the one sync
        if count == 0:
            return
        which, kind = code // 2, "NaN" if code % 2 else "infinite"
        names = self.__dict__.get("_names", ([], []))
        terms, params = names
        if which < len(terms):
            what = f"loss term {terms[which]!r} is {kind}"
        elif which == len(terms):
            what = f"loss term 'loss' is {kind}"
        else:
            what = f"the gradient of {params[which - len(terms) - 1]} is {kind}"
        g["count"].zero_()
        g["step"].fill_(-1)
        if self.train_cfg.nonfinite == "stop":
            raise FloatingPointError(f"step {step}: {what}; training stopped, the last checkpoint is unchanged "
                                     "(train.nonfinite=skip leaves such batches out instead)")
        self.skipped_batches += count
        more = f" and {count - 1} more since" if count > 1 else ""
        # (no self.log here: checkpoint and validation hooks may not log; the next logged step carries the count)
        self.print(f"vaekit: step {step}: {what}{more}; batch skipped ({self.skipped_batches} so far)")

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step % self.train_cfg.sync_every_n_steps == 0:
            self.read_guard()
            loss = outputs["loss"] if isinstance(outputs, dict) else outputs
            if self.train_cfg.progress_bar and isinstance(loss, torch.Tensor):
                self.bar_loss = float(loss)  # read here, with the guard; callbacks.ProgressBar shows it

    def on_train_epoch_end(self) -> None:
        self.read_guard()

    def on_train_end(self) -> None:
        self.read_guard()

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        out = (self.__dict__["_compiled_loss"] or self.model.loss)(batch)
        if self._deferred():
            # No `if` on a device value: one number per term, then the loss, each non-finite if any of its
            # elements is (a sum keeps a NaN or an Inf), for on_before_optimizer_step to judge with the gradients.
            terms = list(out.terms)
            check = torch.stack([*(v.detach().float().sum() for v in out.terms.values()), out.loss.detach().float()])
            if (prev := self.__dict__.get("_step_check")) is not None and prev.shape == check.shape:
                check = check + prev  # another micro-batch of this optimizer step (accumulate_grad_batches > 1)
            self.__dict__["_step_check"] = check
            if "_names" not in self.__dict__ or self.__dict__["_names"][0] != terms:
                self.__dict__["_names"] = (terms, [n for n, p in self.model.named_parameters() if p.requires_grad])
            self._log_terms(out)
            return out.loss
        if not torch.isfinite(out.loss):
            bad = next((k for k, v in out.terms.items() if not torch.isfinite(v).all()), "loss")
            value = out.terms[bad] if bad in out.terms else out.loss
            return self._nonfinite(f"loss term {bad!r} is {_what(value)}")
        self._log_terms(out)
        return out.loss

    def _log_terms(self, out: Any) -> None:
        # Logging every step costs more than a small model's step; log on the steps Lightning writes a row for
        # (after optimizer step s, it writes when (s + 1) % n == 0), so each row holds its own step's values.
        if (self.global_step + 1) % self.train_cfg.log_every_n_steps == 0:
            self.log_dict({f"train/{k}": v.float().mean() for k, v in out.terms.items()}, prog_bar=False)
            # not prog_bar: Lightning turns progress-bar values into numbers after every step (a host sync); the
            # bar gets the loss as a number on the steps the guard is read (on_train_batch_end)
            self.log("train/loss", out.loss.detach())
            if self.skipped_batches:
                self.log("train/skipped_batches", float(self.skipped_batches))

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.trainer.precision == "16-mixed":
            return  # float16's gradient scaler expects overflows and skips those steps itself
        if self._deferred():
            check = self.__dict__.pop("_step_check")  # terms..., loss: every micro-batch of this step
            grads = [p.grad if p.grad is not None else torch.zeros((), device=p.device) for p in self._trainable()]
            values = torch.cat([check, torch.stack(torch._foreach_norm(grads)).float()])
            finite = torch.isfinite(values)
            n_terms = len(check) - 1
            # bad as the per-step guard judges it: the loss or a gradient non-finite
            bad = ~(finite[n_terms] & finite[n_terms + 1 :].all())
            which = torch.argmin(finite.int()).view(1)  # the first non-finite: a term, the loss, a gradient
            code = (which * 2 + torch.isnan(values.index_select(0, which)).long()).view(())
            self._record(bad, code)
            optimizer.found_inf = bad.float()  # fused Adam: the update is skipped on the device when 1
            return
        grads = [p.grad for p in self._trainable() if p.grad is not None]
        if not grads or torch.isfinite(torch.stack(torch._foreach_norm(grads))).all():
            return
        name, grad = next((n, p.grad) for n, p in self.model.named_parameters()
                          if p.grad is not None and not torch.isfinite(p.grad).all())
        self._nonfinite(f"the gradient of {name} is {_what(grad)}")
        for p in self.model.parameters():  # skip: Adam leaves parameters without a gradient untouched
            p.grad = None

    def _trainable(self) -> list[nn.Parameter]:
        # The parameters Adam steps, listed once instead of a walk over the module tree every step (a few dozen
        # us on a CPU); rebuilt if one is frozen during training. (One unfrozen later is not in Adam either.)
        cached = self.__dict__.get("_trainable_params")
        if cached is None or any(not p.requires_grad for p in cached):
            cached = self.__dict__["_trainable_params"] = [p for p in self.model.parameters() if p.requires_grad]
        return cached

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        # Lightning's default, without its per-step checks and norm bookkeeping on the runs that clip nothing
        if gradient_clip_val:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def _nonfinite(self, what: str) -> None:
        """Stop with a message naming the step and the term, or (train.nonfinite=skip) count and skip the batch."""
        if self.train_cfg.nonfinite == "stop":
            raise FloatingPointError(f"step {self.global_step}: {what}; training stopped, the last checkpoint is "
                                     "unchanged (train.nonfinite=skip leaves such batches out instead)")
        self.skipped_batches += 1
        self.print(f"vaekit: step {self.global_step}: {what}; batch skipped ({self.skipped_batches} so far)")
        self.log("train/skipped_batches", float(self.skipped_batches))
        return None

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.read_guard()  # a checkpoint is written only after a clean read: the last good one stays good
        checkpoint["skipped_batches"] = self.skipped_batches

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.skipped_batches = int(checkpoint.get("skipped_batches", 0))

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        out = self.model.loss(batch)
        n = batch["x"].shape[0]
        self.log_dict({f"val/{k}": v.float().mean() for k, v in out.terms.items()}, batch_size=n, sync_dist=True,
                      prog_bar=False)
        self.log("val/loss", out.loss, batch_size=n, sync_dist=True, prog_bar=True)

    def _fused(self) -> bool | None:
        # The fused Adam kernel (CPU and CUDA) does one pass per tensor instead of ~10 ops: on a 2-core CPU it
        # makes the optimizer step 5x faster, a third of a small VAE's step time. Same update rule.
        return True if self.device.type in ("cpu", "cuda") else None

    def configure_optimizers(self) -> Any:
        t = self.train_cfg
        params = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay, fused=self._fused())
        if t.lr_decay == "cosine":
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(t.epochs, 1), eta_min=t.lr * 0.05)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        if t.lr_decay == "burda":
            from vaekit.core.schedules import burda_lr_factor

            sched = torch.optim.lr_scheduler.LambdaLR(opt, burda_lr_factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}
        return opt
