"""Flow families behind one contract (base.py): continuous (FFJORD), spline coupling and
autoregressive spline flows; `load_flow` rebuilds any of them from a model folder."""

from ..errors import ConditionError
from .autoregressive_spline import AutoregressiveSplineConfig, ConditionalAutoregressiveSplineFlow
from .base import FAMILIES, Flow, load_flow, load_metadata
from .continuous import ContinuousFlow, FlowConfig
from .spline_coupling import SplineCouplingFlow, SplineFlowConfig

__all__ = ["FAMILIES", "AutoregressiveSplineConfig", "ConditionError",
           "ConditionalAutoregressiveSplineFlow", "ContinuousFlow", "Flow", "FlowConfig",
           "SplineCouplingFlow", "SplineFlowConfig", "load_flow", "load_metadata"]
