"""Generate the TFX transform module and the TFRS trainer module from configs."""

from __future__ import annotations

from typing import Any, Mapping, Optional

from trainyard import _native

__all__ = ["generate", "TRANSFORM_MODULE", "TRAINER_MODULE"]

TRANSFORM_MODULE = "transform_module.py"
TRAINER_MODULE = "trainer_module.py"


def generate(
    feature_config: Mapping[str, Any],
    model_config: Mapping[str, Any],
    training_params: Optional[Mapping[str, Any]] = None,
    gpu_config: Optional[Mapping[str, Any]] = None,
) -> dict[str, str]:
    """Validates the configs and returns {file name: Python source}.

    Raises ValidationError (``field`` names the config) when a config is invalid.
    """
    return _native.generate(feature_config, model_config, training_params, gpu_config)
