"""Networks, their registry and their weights files. Importing this package registers every model."""
from . import dcp, mgf, moewirnet, promptir, restormer  # noqa: F401  (registration side effect)
from .builder import (DEFAULT_MODEL, build_from_weights, check_fit, convert_weights, create_model, load_weights,
                      model_spec, read_metadata, read_tensors, save_weights, shipped_weights, stored_shapes)
from .registry import list_models, model_config, needs_weights, recorded_config

__all__ = ["create_model", "list_models", "model_config", "recorded_config", "model_spec", "build_from_weights",
           "shipped_weights", "save_weights", "load_weights", "read_metadata", "stored_shapes", "check_fit",
           "read_tensors", "convert_weights", "needs_weights", "DEFAULT_MODEL"]
