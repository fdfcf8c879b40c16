"""A digit classifier that judges predicted frames: does a TD-VAE rollout of moving MNIST keep the digit's
identity? A small conv net trained on MNIST's training digits, each rolled horizontally by a random number of
pixels with wrap-around (as moving MNIST's frames are), and scored on the test digits rolled the same way. Its
weights and test accuracy are cached (safetensors + JSON) so every evaluation uses the same judge."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from vaekit.data.files import cache_dir


class DigitNet(nn.Module):
    """Convolutions with circular padding, then the maximum over columns: the features follow a digit wherever a
    horizontal roll puts it, even split across the frame's edge. [N, 1, 28, 28] in [0, 1] -> 10 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, 5, padding=2, padding_mode="circular"), nn.ReLU(),
                                      nn.MaxPool2d(2),
                                      nn.Conv2d(32, 64, 5, padding=2, padding_mode="circular"), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 14, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x).amax(dim=-1))  # [N, 64, 14]: rows kept, columns pooled away


def _rolled(images: Tensor, g: torch.Generator) -> Tensor:
    """Each image rolled left or right by 0..27 pixels, wrapping around (the frames of moving MNIST)."""
    shifts = torch.randint(0, images.shape[-1], (len(images),), generator=g)
    cols = (torch.arange(images.shape[-1])[None, :] - shifts[:, None]) % images.shape[-1]
    return images.gather(-1, cols[:, None, None, :].expand_as(images))


def train_digit_classifier(train_x: Tensor, train_y: Tensor, test_x: Tensor, test_y: Tensor, epochs: int = 2,
                           seed: int = 0, batch_size: int = 128) -> tuple[DigitNet, float]:
    """Train on rolled, dynamically binarized ``train_x`` (uint8 [N, 1, 28, 28]); accuracy on rolled, binarized
    ``test_x``. Returns the net (eval mode) and that accuracy."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DigitNet()
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(train_x), generator=g)
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            x = torch.bernoulli(_rolled(train_x[idx].float() / 255, g), generator=g)
            loss = F.cross_entropy(net(x), train_y[idx].long())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    net.eval()
    x = torch.bernoulli(_rolled(test_x.float() / 255, g), generator=g)
    return net, float((predict(net, x) == test_y).float().mean())


@torch.no_grad()
def predict(net: nn.Module, frames: Tensor, batch_size: int = 1000) -> Tensor:
    """Digit labels of frames [N, 1, 28, 28] (probabilities or binary values)."""
    return torch.cat([net(frames[i : i + batch_size]).argmax(-1) for i in range(0, len(frames), batch_size)])


def digit_classifier(data_dir: str | os.PathLike | None = None, folder: Path | None = None) -> tuple[DigitNet, float]:
    """The cached judge (trained on first use, about a minute on one core) and its rolled-test accuracy."""
    folder = Path(folder or cache_dir() / "digit_classifier")
    weights, meta = folder / "digit_net_v1.safetensors", folder / "digit_net_v1.json"
    if weights.exists() and meta.exists():
        net = DigitNet()
        net.load_state_dict(load_file(str(weights)))
        return net.eval(), json.loads(meta.read_text())["test_accuracy"]
    from vaekit.data.mnist import load as load_mnist

    data = load_mnist(data_dir)
    net, accuracy = train_digit_classifier(data["train_images"], data["train_labels"], data["test_images"],
                                           data["test_labels"])
    folder.mkdir(parents=True, exist_ok=True)
    save_file(net.state_dict(), str(weights))
    meta.write_text(json.dumps({"test_accuracy": accuracy, "trained_on": "MNIST train, rolled and binarized",
                                "scored_on": "MNIST test (10,000), rolled and binarized"}))
    return net, accuracy
