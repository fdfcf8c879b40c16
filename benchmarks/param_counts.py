"""Parameter counts of dense vs convolutional VAEs at 28x28 and 64x64 (a markdown table for the README).

A dense layer holds (inputs x outputs) weights, so the first and last layers of a dense VAE grow with the
number of pixels; a conv layer holds k*k*C_in*C_out whatever the image size."""

from __future__ import annotations

from vaekit.core.nets import count_parameters
from vaekit.models import registry


def row(label: str, name: str, first_layer: str, **cfg: object) -> str:
    model = registry.build(name, registry.get(name).config(**cfg))
    first = next(p for n, p in model.named_parameters() if n.endswith("weight"))
    return f"| {label} | {cfg['input_shape'][1]}x{cfg['input_shape'][2]} | {count_parameters(model):,} | " \
           f"{first_layer}: {first.numel():,} |"


def main() -> None:
    print("| model | input | parameters | first encoder layer's weights |")
    print("|---|---|---|---|")
    print(row("dense VAE 784-200-200-50 (Burda)", "vae", "784 x 200", input_shape=(1, 28, 28)))
    print(row("dense VAE 4096-200-200-50", "vae", "4096 x 200", input_shape=(1, 64, 64)))
    print(row("dense VAE 4096-1200-1200-10 (Higgins' dSprites MLP)", "vae", "4096 x 1200",
              input_shape=(1, 64, 64), hidden=(1200, 1200), latent_dim=10))
    print(row("conv VAE 32-64, fc 256, z 32", "conv_vae", "4x4x1x32", input_shape=(1, 28, 28), channels=(32, 64),
              latent_dim=32))
    print(row("conv VAE 32-32-64-64, fc 256, z 10 (Higgins/Burgess)", "conv_vae", "4x4x1x32",
              input_shape=(1, 64, 64), latent_dim=10))


if __name__ == "__main__":
    main()
