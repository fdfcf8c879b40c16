"""The engine: recipes (``config``), run folders and safe loading (``io``), training (``module``, ``callbacks``,
``logs``, ``fit``), evaluation (``evaluate``) and grids of runs (``sweep``)."""
