"""Generate the TFX transform module and the TFRS trainer module from configs."""

from __future__ import annotations

from typing import Optional

from trainyard import _native
from trainyard.config_types import FeatureConfig, GpuConfig, ModelConfig, TrainingParams

__all__ = ["generate", "TRANSFORM_MODULE", "TRAINER_MODULE", "TRAINER_SUPPORT_MODULE"]

TRANSFORM_MODULE = "transform_module.py"
TRAINER_MODULE = "trainer_module.py"
# the trainer's support code (metrics, weight statistics, MLflow), imported by TRAINER_MODULE
TRAINER_SUPPORT_MODULE = "trainyard_trainer_support.py"


def generate(
    feature_config: FeatureConfig,
    model_config: ModelConfig,
    training_params: Optional[TrainingParams] = None,
    gpu_config: Optional[GpuConfig] = None,
) -> dict[str, str]:
    """Validates the configs and returns {file name: Python source}.

    Each config may give only some keys (``{}``, ``{"model_type": "ranking"}``): it is merged
    over the defaults, as a run config's sections are. Raises ValidationError (``field`` names
    the config) when a config is invalid or has a key no config has.
    """
    return _native.generate(feature_config, model_config, training_params, gpu_config)
