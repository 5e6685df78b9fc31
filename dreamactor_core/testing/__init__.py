"""Tiny random-weight models and encoders of the real classes and file layouts, for the tests, the
demo and ``--tiny`` smoke runs. The engine imports this only inside those smoke paths, never on a
real run."""
