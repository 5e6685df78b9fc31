"""Sampling the canvas: noise schedules, solvers, guidance and temporal windows.

The public names are re-exported here (``from dreamactor_core.sampling import sample``).
"""

from .sampler import EMPTY_REGIONS, GuidedVelocity, conditioning_kwargs, sample
from .schedules import sigma_schedule
from .solvers import SOLVERS, dpmpp_2m_step
from .windows import temporal_windows, window_weights

__all__ = ["EMPTY_REGIONS", "SOLVERS", "GuidedVelocity", "conditioning_kwargs", "dpmpp_2m_step", "sample",
           "sigma_schedule", "temporal_windows", "window_weights"]
