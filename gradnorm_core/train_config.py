"""The settings of one training run (:class:`TrainConfig`: which keys exist, their defaults and
their checks), the device a run trains on (:func:`resolve_device`) and the clocks of its
cost: its CPU time (:func:`cpu_clock_now`) and its time on a GPU (:class:`DeviceClock`)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from .optim import check_options


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. ``device="auto"`` takes CUDA when there is one."""

    epochs: int = 10  # passes over the train split
    batch_size: int = 128  # items per optimizer step
    lr: float = 1e-3  # the network's learning rate (a balancer's own is its option)
    weight_decay: float = 0.0  # L2 for "adam" and "sgd", decoupled for "adamw"
    seed: int = 0  # the model's initial weights and the order of the batches
    device: str = "auto"  # "auto" (CUDA when there is one), "cpu", "cuda", "cuda:1", ...
    num_workers: int = 0  # DataLoader worker processes for a split that is not a Split
    # optimisation, precision and evaluation cadence: see gradnorm_core.optim for each one
    optimizer: str = "adam"  # "adam", "adamw" or "sgd"
    momentum: float = 0.0  # sgd only
    nesterov: bool = False  # sgd only, with momentum > 0
    schedule: str = "none"  # "none", "cosine" or "step"; the lr is updated every step
    warmup_epochs: int = 0  # linear warm-up, in epochs (< epochs)
    step_size: int | None = None  # schedule "step": epochs between decays
    gamma: float = 0.1  # schedule "step": the decay factor
    clip_grad_norm: float | None = None  # max total gradient norm; None: no clipping
    precision: str = "fp32"  # "fp32" or "bf16" (bfloat16 autocast)
    val_every: int = 1  # validate every N epochs and at the last; test at the best and the last

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.lr, (int, float)) or not self.lr > 0:
            raise ValueError(f"lr must be a number > 0, got {self.lr!r}")
        if not isinstance(self.weight_decay, (int, float)) or self.weight_decay < 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an integer >= 0, got {self.seed!r}")
        if isinstance(self.num_workers, bool) or not isinstance(self.num_workers, int) or self.num_workers < 0:
            raise ValueError(f"num_workers must be an integer >= 0, got {self.num_workers!r}")
        check_options(self)
        resolve_device(self.device)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TrainConfig:
        """The settings of keyword ``options``; an unknown key is a one-line ValueError listing the
        accepted ones (a bad value, the field's own)."""
        unknown = sorted(set(options) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(
                f"unknown training option {unknown[0]!r}; accepted: {', '.join(cls.__dataclass_fields__)}"
            )
        return cls(**options)


def resolve_device(device: str) -> torch.device:
    """The device a run of ``device`` (``"auto"``, ``"cpu"``, ``"cuda[:N]"``) trains on here:
    ``"auto"`` takes CUDA when there is one; CUDA without one is a one-line ValueError."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {device!r}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device is {device!r} but no CUDA device is available: use 'cpu' or 'auto'")
    return resolved


class DeviceClock:
    """The seconds between two events on a CUDA device's current stream: one recorded when the
    clock is made, one when :meth:`seconds` is called (which waits for the device to reach it)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.start = torch.cuda.Event(enable_timing=True)
        self.start.record(torch.cuda.current_stream(device))

    def seconds(self) -> float:
        end = torch.cuda.Event(enable_timing=True)
        end.record(torch.cuda.current_stream(self.device))
        end.synchronize()
        return self.start.elapsed_time(end) / 1000.0


def cpu_clock_now():
    """The clock of an epoch's CPU time: the calling thread's (:func:`time.thread_time`) when torch
    computes on it alone (one intra-op thread: the usual trial, whose Ray worker sets
    ``OMP_NUM_THREADS`` to its one CPU), so that other threads of the process (a Ray worker's run
    about 2 ms a second whatever the trial does) do not count; else the whole process's
    (:func:`time.process_time`), torch's intra-op threads included."""
    return time.thread_time if torch.get_num_threads() == 1 else time.process_time
