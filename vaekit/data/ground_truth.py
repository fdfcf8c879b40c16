"""Data with known generative factors, as disentanglement_lib has them: every metric and every training set of
the disentanglement experiments reads factors and observations through this one interface.

A data set is the full grid of factor combinations (dSprites: 3 x 6 x 40 x 32 x 32); an index enumerates it in
row-major order of ``factor_sizes`` (the last factor fastest).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
from torch import Tensor


class GroundTruthData(ABC):
    """Factors of variation with known values, and the observation each combination produces."""

    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    observation_shape: tuple[int, ...]  # (C, H, W)

    @property
    def num_factors(self) -> int:
        return len(self.factor_sizes)

    def __len__(self) -> int:
        return int(np.prod(self.factor_sizes))

    def sample_factors(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n factor combinations drawn uniformly, [n, num_factors] int64."""
        return np.stack([rng.integers(0, size, n) for size in self.factor_sizes], axis=1).astype(np.int64)

    def index(self, factors: np.ndarray) -> np.ndarray:
        """Row-major index of each combination, [n]."""
        return np.ravel_multi_index(tuple(np.asarray(factors).T), self.factor_sizes).astype(np.int64)

    def factors_of(self, index: np.ndarray) -> np.ndarray:
        """The combination at each index, [n, num_factors]."""
        return np.stack(np.unravel_index(np.asarray(index), self.factor_sizes), axis=1).astype(np.int64)

    @abstractmethod
    def observations(self, factors: np.ndarray) -> Tensor:
        """The observation of each combination, float [n, C, H, W] in [0, 1]."""

    def sample(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, Tensor]:
        """n combinations drawn uniformly and their observations."""
        factors = self.sample_factors(n, rng)
        return factors, self.observations(factors)
