"""The command line (``python -m dreamactor_core``): ``animate`` (``cli.py``), ``train``
(``train_cli.py``, ``bootstrap_cli.py``), their shared options and the file names the shipped
workflows use (``default_models.py``). Nothing below ``app/`` imports it."""
