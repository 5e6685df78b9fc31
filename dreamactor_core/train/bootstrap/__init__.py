"""The RGB stage's self-bootstrapped data: V_o per source clip and identity (``job.py``), its
inputs (``inputs.py``), the quality filter (``scoring.py``, ``scorers.py``), the run's record
(``report.py``) and the contact sheets for the manual check."""
