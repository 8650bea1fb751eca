"""Restoration networks. Import an architecture's module to register it; all shipped ones are imported here."""
from .registry import (  # noqa: F401
    WeightSpec, create, list_models, load_weights, model_class, model_config, register_model, register_weights,
    split_name, weight_spec, weight_specs, weights_path,
)
from .base import RestorationModel  # noqa: F401
# Architectures (each file registers its sizes):
# (architecture imports are added below as files land)
from . import nafnet  # noqa: E402,F401
from . import deeprft  # noqa: E402,F401
from . import deeprftv2  # noqa: E402,F401
from . import gdunet  # noqa: E402,F401
from . import upadnet  # noqa: E402,F401
from . import fdikp  # noqa: E402,F401
