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

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor | None:
        out = self.model.loss(batch)
        if not torch.isfinite(out.loss):
            bad = next((k for k, v in out.terms.items() if not torch.isfinite(v).all()), "loss")
            value = out.terms[bad] if bad in out.terms else out.loss
            return self._nonfinite(f"loss term {bad!r} is {_what(value)}")
        # Logging every step costs more than a small model's step; log on the steps Lightning writes a row for
        # (after optimizer step s, it writes when (s + 1) % n == 0), so each row holds its own step's values.
        if (self.global_step + 1) % self.train_cfg.log_every_n_steps == 0:
            self.log_dict({f"train/{k}": v.float().mean() for k, v in out.terms.items()}, prog_bar=False)
            self.log("train/loss", out.loss.detach(), prog_bar=True)
            if self.skipped_batches:
                self.log("train/skipped_batches", float(self.skipped_batches))
        return out.loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        if self.trainer.precision == "16-mixed":
            return  # float16's gradient scaler expects overflows and skips those steps itself
        grads = {n: p.grad for n, p in self.model.named_parameters() if p.grad is not None}
        if not grads or torch.isfinite(torch.stack(torch._foreach_norm(list(grads.values())))).all():
            return
        name = next(n for n, g in grads.items() if not torch.isfinite(g).all())
        self._nonfinite(f"the gradient of {name} is {_what(grads[name])}")
        for p in self.model.parameters():  # skip: Adam leaves parameters without a gradient untouched
            p.grad = None

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
