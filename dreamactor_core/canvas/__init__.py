"""The spatiotemporal in-context canvas: ``[reference | motion]`` side by side (``composite.py``),
the fit of pictures into panels (``placement.py``), the given/generated masks and their latent
packings (``masks.py``), and the animation taken back out of a generated canvas (``result.py``)."""
