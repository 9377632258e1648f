"""moewir: all-in-one adverse-weather image restoration (MOE-WIRNet, UniRain)."""
from .inference import load
from .models import create_model, list_models
from .profiling import profile

__version__ = "0.1.0"
__all__ = ["load", "create_model", "list_models", "profile", "__version__"]
