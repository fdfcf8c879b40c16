"""The judge of rolled-out frames: a digit classifier that names MNIST digits wherever a roll puts them."""

from __future__ import annotations

import torch

from vaekit.metrics.digit_classifier import _rolled, predict, train_digit_classifier


def test_rolling_wraps_columns_around() -> None:
    img = torch.zeros(1, 1, 28, 28)
    img[..., 3] = 1.0
    g = torch.Generator().manual_seed(0)
    out = _rolled(img, g)
    assert out.sum() == img.sum() and out[0, 0, 0].nonzero().numel() == 1  # one full column, somewhere


def test_a_small_judge_names_rolled_digits(mnist: dict[str, torch.Tensor]) -> None:
    net, accuracy = train_digit_classifier(mnist["train_images"][:4000], mnist["train_labels"][:4000],
                                           mnist["test_images"][:1000], mnist["test_labels"][:1000], epochs=2)
    assert accuracy > 0.8  # 4,000 digits, 2 epochs; the cached judge trains on all 60,000
    blank = predict(net, torch.zeros(50, 1, 28, 28))
    assert blank.unique().numel() == 1  # a constant input gets one answer, not noise
