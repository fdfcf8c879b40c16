"""pythae 0.1.2 on the device, for benchmarks/bench_device.py (which runs this in an interpreter that has pythae):
its TrainingPipeline for one epoch of the given images on make bench's network (MLP VAE 784-400-20, batch 128),
then VAE.get_nll with k importance samples on the given test images, on that trained model. pythae uses CUDA
when it is there. Prints one JSON line.

Usage: python benchmarks/bench_pythae_device.py DATA.pt K   (DATA.pt: {"train": uint8 [N, 1, 28, 28],
"test": uint8 [M, 1, 28, 28]}, written by bench_device.py)"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pythae import EpochTimer, build  # noqa: E402  (the network make bench gives pythae)
from common import BATCH, LR  # noqa: E402
from pythae.pipelines import TrainingPipeline  # noqa: E402
from pythae.trainers import BaseTrainerConfig  # noqa: E402


def main() -> int:
    data = torch.load(sys.argv[1], weights_only=True)
    k = int(sys.argv[2])
    cuda = torch.cuda.is_available()
    torch.manual_seed(0)
    train = torch.bernoulli(data["train"].float() / 255)  # pythae takes a fixed tensor: binarized once
    model = build()
    timer = EpochTimer()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = BaseTrainerConfig(output_dir=tmp, num_epochs=1, learning_rate=LR, per_device_train_batch_size=BATCH,
                                no_cuda=not cuda, seed=0)
        TrainingPipeline(model=model, training_config=cfg)(train_data=train, callbacks=[timer])
    steps = -(-len(train) // BATCH)
    model.eval()
    device = next(model.parameters()).device
    test = (data["test"].float() / 255).to(device)
    if cuda:
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.no_grad():
        nll = -float(model.get_nll(test, n_samples=k, batch_size=100))
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(json.dumps({"device": str(device), "train_images": len(train), "steps": steps,
                      "epoch_s": round(timer.seconds, 3), "steps_per_s": round(steps / timer.seconds, 2),
                      "nll_k": k, "nll_images": len(test), "nll_s": round(seconds, 3),
                      "nll_images_per_s": round(len(test) / seconds, 2), "nll": round(nll, 3)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
