"""The primitives every layer uses and that import nothing of vaekit's above them: networks, likelihoods as
``torch.distributions`` objects, the importance-weighted estimator, schedules, registries, errors, the typed
figures a model returns and their writer, and the audio DSP (log-mel, Griffin-Lim, WAV)."""
