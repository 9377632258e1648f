"""Networks and their registry. Importing this package registers every model."""
from . import moewirnet, restormer  # noqa: F401  (registration side effect)
from .registry import create_model, list_models, model_config, model_description, recorded_config

__all__ = ["create_model", "list_models", "model_config", "model_description", "recorded_config"]
