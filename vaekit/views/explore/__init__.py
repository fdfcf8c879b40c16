"""``vaekit explore RUN``: a local web page with a slider per latent. ``app`` serves it (FastAPI, loopback only),
``page`` is its HTML and script, ``base`` the explorer interface, ``kinds`` one explorer per kind of model."""
