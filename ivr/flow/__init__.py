"""The call-flow language: YAML in ``flows/``, validated before any call uses it,
run by a pure interpreter over a ``CallChannel``."""
