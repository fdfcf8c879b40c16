"""pythae 0.1.2 on the same network and data: TrainingPipeline for one epoch, and VAE.get_nll (k = 5000) on
the weights vaekit trained. Runs in benchmarks/.venv-pythae. Usage: python bench_pythae.py ROUND"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import torch
from common import BATCH, HIDDEN, LATENT, LR, OUT, record
from pythae.models import VAE, VAEConfig
from pythae.models.base.base_utils import ModelOutput
from pythae.models.nn import BaseDecoder, BaseEncoder
from pythae.pipelines import TrainingPipeline
from pythae.trainers import BaseTrainerConfig
from pythae.trainers.training_callbacks import TrainingCallback
from torch import nn


class Encoder(BaseEncoder):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * LATENT))

    def forward(self, x: torch.Tensor) -> ModelOutput:
        mu, log_var = self.net(x.reshape(x.shape[0], -1)).chunk(2, -1)
        return ModelOutput(embedding=mu, log_covariance=log_var)


class Decoder(BaseDecoder):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 784))

    def forward(self, z: torch.Tensor) -> ModelOutput:
        return ModelOutput(reconstruction=torch.sigmoid(self.net(z)).reshape(z.shape[0], 1, 28, 28))


class EpochTimer(TrainingCallback):
    def on_train_step_begin(self, training_config, **kwargs) -> None:  # noqa: ANN001, ANN003
        self.start = time.perf_counter()

    def on_train_step_end(self, training_config, **kwargs) -> None:  # noqa: ANN001, ANN003
        self.seconds = time.perf_counter() - self.start


def build() -> VAE:
    cfg = VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce")
    return VAE(cfg, encoder=Encoder(), decoder=Decoder())


def main() -> None:
    round_ = int(sys.argv[1])
    data = torch.load(OUT / "data.pt", weights_only=True)
    torch.manual_seed(round_)
    # pythae takes a fixed tensor: binarize once (vaekit and the plain loop redraw every batch).
    train = torch.bernoulli(data["train"].float() / 255)
    model = build()
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = BaseTrainerConfig(output_dir=tmp, num_epochs=1, learning_rate=LR, per_device_train_batch_size=BATCH,
                                no_cuda=True, seed=round_)
        start = time.perf_counter()
        TrainingPipeline(model=model, training_config=cfg)(train_data=train, callbacks=[timer])
        total = time.perf_counter() - start
    result = {"epoch_s": timer.seconds, "total_s": total, "images": len(train)}
    # NLL on the weights vaekit trained (same layer names under encoder.net / decoder.net).
    state = torch.load(OUT / "weights.pt", weights_only=True)
    model = build()
    model.encoder.net.load_state_dict({k.removeprefix("encoder."): v for k, v in state.items()
                                       if k.startswith("encoder.")})
    model.decoder.net.load_state_dict({k.removeprefix("decoder."): v for k, v in state.items()
                                       if k.startswith("decoder.")})
    model.eval()
    test = data["test"][: int(os.environ.get("BENCH_NLL_IMAGES", 1000))]
    for batch_size in (100, 500):  # get_nll's default, and a larger batch that suits it better on a CPU
        torch.manual_seed(round_)
        start = time.perf_counter()
        with torch.no_grad():
            nll = -model.get_nll(test, n_samples=5000, batch_size=batch_size)
        result[f"nll_s_b{batch_size}"], result[f"nll_b{batch_size}"] = time.perf_counter() - start, float(nll)
    result.update(nll_s=min(result["nll_s_b100"], result["nll_s_b500"]), nll=float(nll))
    record(f"pythae_round{round_}", result)
    print(f"pythae round {round_}: epoch {result['epoch_s']:.2f}s total {total:.2f}s nll {result['nll_s_b100']:.1f}s "
          f"(batch 100) {result['nll_s_b500']:.1f}s (batch 500) ({nll:.2f} nats)")


if __name__ == "__main__":
    main()
