"""Metrics take a representation (a function of x) and data, never a particular model class."""

from vaekit.metrics.active_units import active_units

__all__ = ["active_units"]
