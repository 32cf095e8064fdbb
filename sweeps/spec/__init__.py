"""Sweep specs: one YAML file describes a problem, its training settings, the resources of one
trial and the searches to run. Loading validates everything and turns every mistake into a
one-line :class:`SpecError` of the form ``"<source>: <field.path>: <what is wrong>; <how to fix>"``.

Pure validation: nothing here imports MLflow or Optuna, Ray only to check a ``runtime_env``, and
no problem data is loaded (the problem's task names come from
:func:`gradnorm_core.problems.problem_tasks`, which constructs the problem: cheap, no data).

The format::

    name: demo                        # required, [A-Za-z0-9_-]+
    experiment: gradnorm-tune-demo    # optional, default "gradnorm-tune/<name>"
    problem:
      name: multidigits               # a key of gradnorm_core.problems.PROBLEMS, an entry point of
                                      # gradnorm_tune.problems, or module:attribute (your Problem)
      options: {num_train: 2000}      # optional keyword options of that problem
    runtime_env:                      # optional: Ray's runtime_env for the sweep's job (Ray's keys)
      working_dir: .                  # shipped to every node; relative to the spec's directory
    training: {epochs: 8, batch_size: 64, lr: 0.002, weight_decay: 0.0, seed: 0, device: auto}
    resources: {cpu: 1, gpu: 0, max_concurrent: 2}
    searches:                         # required, name -> search (see sweeps.searches)
      gradnorm: {type: gradnorm, search: optuna, alpha: {low: 0.0, high: 3.0}, num_trials: 6}
      alphas: {type: gradnorm, search: grid, alpha: [0, 0.5, 1]}
      static_grid: {type: static_grid, levels: [1, 2, 4], max_trials: 10}
      equal: {type: equal}
      equal_lr: {type: equal, lr: {low: 0.0002, high: 0.02}, num_trials: 6}   # the network's lr, searched
      uncertainty: {type: uncertainty, weight_lr: 0.025}
      dwa: {type: dwa, temperature: 2.0}
      fixed: {type: static, weights: [1, 2, 3]}
    recommended_static: true          # optional

Numbers such as ``2e-3`` are read as floats (YAML 1.2 style), and a key given twice in one
mapping is an error rather than silently overriding the first.

Modules: :mod:`.yamlfile` (reading the file), :mod:`.problem`, :mod:`.runtime_env`, :mod:`.training`,
:mod:`.trials` (the trials' own checks and the names' limits, before Ray starts) and :mod:`.model`
(the spec itself). The search types live in :mod:`sweeps.searches`; each trial's configuration is
a :class:`trainables.TrialConfig`, built from :meth:`SweepSpec.trial_base` by its search.
"""

from __future__ import annotations

from ..searches import static_grid_points
from ..validation import SpecError
from .model import ProblemSpec, Resources, SweepSpec, load_spec, parse_spec, spec_path

__all__ = [
    "ProblemSpec",
    "Resources",
    "SpecError",
    "SweepSpec",
    "load_spec",
    "parse_spec",
    "spec_path",
    "static_grid_points",
]
