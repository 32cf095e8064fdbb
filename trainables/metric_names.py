"""The names of a trial's metrics, in one place: the keys of its epoch record (what the trainable
reports to Tune and keeps in its checkpoints) and the names MLflow shows them under.

An epoch record (:func:`trainables.epoch_metrics`) holds, every epoch: ``train/<task>/loss``, the
task weights ``weight/<task>`` (at the epoch's end), ``mean_weight/<task>`` (their mean over the
epoch's steps) and ``avg_weight/<task>`` (the running mean of the latter over the epochs so far),
``best_score``, and the cost so far: ``compute_seconds`` (wall-clock), ``cpu_seconds`` (the
trial's own CPU time), ``gpu_seconds`` (on CUDA only) and ``samples`` (training items processed);
on an epoch that validated ``score`` (the validation score, lower is better) and
``val/<task>/<metric>``; where it tested ``test/score``, ``test/<task>/<metric>`` and
``best_test_score``.

MLflow shows each under a name that says its split and uses one word, ``weight``, for the task
weights (:func:`mlflow_name`):

========================  ================================
record key                MLflow name
========================  ================================
``score``                 ``val/score``
``best_score``            ``best_val_score``
``weight/<task>``         ``weight/<task>``
``mean_weight/<task>``    ``weight/<task>/epoch_mean``
``avg_weight/<task>``     ``weight/<task>/time_average``
anything else             itself
========================  ================================

Records keep their keys, so that a sweep started before the names changed resumes with its
searcher, its schedulers and its checkpoints as they are. :func:`record_key` reads both the
names above and the names earlier records were written under (the record keys themselves).
"""

from __future__ import annotations

__all__ = [
    "AVERAGE_WEIGHT",
    "BEST_SCORE",
    "BEST_TEST_SCORE",
    "COMPUTE_SECONDS",
    "COST_KEYS",
    "CPU_SECONDS",
    "GPU_SECONDS",
    "MEAN_WEIGHT",
    "SAMPLES",
    "SCORE",
    "TEST_SCORE",
    "WEIGHT",
    "mlflow_name",
    "record_key",
]

SCORE = "score"  # the validation score (lower is better)
TEST_SCORE = "test/score"
BEST_SCORE = "best_score"  # the lowest validation score so far: what the sweep's searchers read
BEST_TEST_SCORE = "best_test_score"  # the test score at that epoch
COMPUTE_SECONDS = "compute_seconds"  # wall-clock seconds of the trial's epochs so far
CPU_SECONDS = "cpu_seconds"  # the trial's own CPU time so far (gradnorm_core's Training)
GPU_SECONDS = "gpu_seconds"  # its time on a CUDA device so far (CUDA only)
SAMPLES = "samples"  # training items processed so far: epochs run x the train split's size
#: the units a trial's cost is counted in, wall-clock first
COST_KEYS = (COMPUTE_SECONDS, CPU_SECONDS, GPU_SECONDS, SAMPLES)
WEIGHT = "weight/"  # weight/<task>: the task's weight at the end of the epoch
MEAN_WEIGHT = "mean_weight/"  # mean_weight/<task>: its mean over the epoch's steps
AVERAGE_WEIGHT = "avg_weight/"  # avg_weight/<task>: the running mean of mean_weight over the epochs

_RENAMED = {SCORE: "val/score", BEST_SCORE: "best_val_score"}
_WEIGHT_SUFFIXES = {MEAN_WEIGHT: "/epoch_mean", AVERAGE_WEIGHT: "/time_average"}


def mlflow_name(key: str) -> str:
    """The MLflow name of an epoch record's key (see the module's table)."""
    if key in _RENAMED:
        return _RENAMED[key]
    for prefix, suffix in _WEIGHT_SUFFIXES.items():
        if key.startswith(prefix):
            return WEIGHT + key[len(prefix):] + suffix
    return key


def record_key(name: str) -> str:
    """The record key of an MLflow metric name, of this version (:func:`mlflow_name`) or earlier
    (the record's keys themselves): the inverse of :func:`mlflow_name`."""
    for key, renamed in _RENAMED.items():
        if name == renamed:
            return key
    if name.startswith(WEIGHT):
        for prefix, suffix in _WEIGHT_SUFFIXES.items():
            if name.endswith(suffix) and len(name) > len(WEIGHT) + len(suffix):
                return prefix + name[len(WEIGHT):-len(suffix)]
    return name
