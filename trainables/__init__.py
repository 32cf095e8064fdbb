"""The core trainer as a Ray Tune trainable, with checkpoints, and its MLflow child runs."""

from .config import TrialConfig, TrialConfigError
from .mlflow_logger import MlflowTrialLogger, find_trial_run, trial_params
from .trainable import epoch_metrics, train_trial

__all__ = [
    "MlflowTrialLogger",
    "TrialConfig",
    "TrialConfigError",
    "epoch_metrics",
    "find_trial_run",
    "train_trial",
    "trial_params",
]
