"""Training: the composite loss, multi-task reweighting, the trainer and its configuration."""
from .losses import CompositeLoss
from .weighting import WEIGHTINGS, TaskWeighting, create_weighting

__all__ = ["CompositeLoss", "WEIGHTINGS", "TaskWeighting", "create_weighting"]
