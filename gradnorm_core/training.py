"""The training loop: a problem, a model, a balancer; one record per epoch; resumable.

Its settings, :class:`~gradnorm_core.train_config.TrainConfig`, and the device it trains on are
:mod:`gradnorm_core.train_config`'s; the optimizer, schedule, precision and evaluation cadence
:mod:`gradnorm_core.optim`'s."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from .balancers.base import Balancer
from .optim import EvaluationPlan, autocast, clip_gradients, make_optimizer, make_scheduler
from .problems.base import Problem
from .problems.data import Split, iterate_batches
from .problems.models import accepts_branch
from .problems.shapes import check_target_shapes
from .records import EpochRecord
from .train_config import DeviceClock, TrainConfig, cpu_clock_now, resolve_device


class Training:
    """One training run, iterated epoch by epoch, with a state that resumes it exactly.

    ::

        training = Training(problem, balancer, model=model, config=TrainConfig(epochs=20))
        for record in training:            # one EpochRecord per epoch
            torch.save(training.state_dict(), "checkpoint.pt")

    ``Training(..., state=torch.load("checkpoint.pt"))`` continues where that state stopped
    (model, optimizer, learning-rate schedule, balancer, shuffling RNG, best validation score,
    epoch, elapsed seconds) and produces the same
    records as the uninterrupted run. A non-finite loss stops the run with the balancer's
    :class:`NonFiniteLossError`; a target that its loss broadcasts against an output of another
    shape, on the first batch, with :class:`~gradnorm_core.problems.shapes.TargetShapeError`. A balancer that ``wants_losses_after_step`` (FAMO) gets the
    batch's losses re-evaluated after each optimizer step (``Balancer.after_step``).

    Data: each epoch draws one permutation of the train split from the shuffling generator
    (``torch.randperm``, seeded with ``config.seed``, its state checkpointed) and takes batches
    of ``batch_size`` consecutive indices of it. A :class:`Split` is moved to the device once
    and indexed there; any other Dataset goes through a ``DataLoader`` yielding exactly those
    index batches (``num_workers`` workers, pinned memory on CUDA, non-blocking copies), so
    both give the same records. Evaluation goes through the splits in order, batch by batch.
    """

    def __init__(
        self,
        problem: Problem,
        balancer: Balancer,
        *,
        model: nn.Module | None = None,
        config: TrainConfig | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.problem = problem
        self.balancer = balancer
        self.config = config or TrainConfig()
        if balancer.num_tasks != problem.num_tasks:
            raise ValueError(
                f"balancer has num_tasks={balancer.num_tasks} but problem {problem.name!r} has "
                f"{problem.num_tasks} tasks; build the balancer with num_tasks={problem.num_tasks}"
            )
        if model is None:
            if balancer.shared_parameters():
                raise ValueError(
                    "balancer is bound to a model's shared layer: pass that model as model="
                )
            model = problem.build_model(seed=self.config.seed)
        self._check_bound(model)
        self.device = resolve_device(self.config.device)
        self.model = model.to(self.device)
        self.optimizer = make_optimizer(self.model.parameters(), self.config)
        self.shuffle = torch.Generator().manual_seed(self.config.seed)
        self.epoch = 0
        self.elapsed_seconds = 0.0
        self.cpu_seconds: float | None = 0.0
        self.gpu_seconds: float | None = 0.0 if self.device.type == "cuda" else None
        self.samples = 0
        # where the run is within its epoch (steps taken), and the last step's losses: what a
        # trainer reports when a step fails (a non-finite loss)
        self.steps_this_epoch = 0
        self.last_losses: torch.Tensor | None = None
        self._shapes_checked = False  # the first step checks each task's output and target shapes
        # branch= only for a balancer that declares it needs it (GradNorm's Linear fast path)
        self._branch = balancer.branch if balancer.uses_branch else None
        if self._branch is not None and not accepts_branch(self.model):
            raise ValueError(
                f"balancer {type(balancer).__name__} reads the trunk's output through branch=, which "
                "needs a model whose forward takes branch= (MultiHeadNet); for GradNorm on another "
                "model build it as GradNorm(layer.parameters(), ...) (make_balancer does so)"
            )
        # a Split moves to the device once and is indexed there; any other Dataset is batched
        # by a DataLoader (iterate_batches) with the same index order
        self._splits = {
            name: split.to(self.device) if isinstance(split, Split) else split
            for name in ("train", "val", "test")
            for split in (getattr(problem, name),)
        }
        # the learning rate is scheduled per step (None: constant); validation every val_every
        # epochs, test at a new best validation score and at the end (gradnorm_core.optim)
        self.steps_per_epoch = -(-len(self._splits["train"]) // self.config.batch_size)
        self.scheduler = make_scheduler(self.optimizer, self.config, self.steps_per_epoch)
        self.plan = EvaluationPlan(self.config.val_every, self.config.epochs)
        if state is not None:
            self.load_state_dict(state)

    def _check_bound(self, model: nn.Module) -> None:
        own = {id(p) for p in model.parameters()}
        if any(id(p) not in own for p in self.balancer.shared_parameters()):
            raise ValueError(
                "balancer's shared parameters are not parameters of model: build the balancer "
                "from this model (e.g. GradNorm.for_linear(model.last_shared_layer, ...))"
            )

    def __iter__(self) -> Iterator[EpochRecord]:
        while self.epoch < self.config.epochs:
            yield self.run_epoch()

    def run_epoch(self) -> EpochRecord:
        start, cpu_clock = time.perf_counter(), cpu_clock_now()
        cpu_start = cpu_clock()
        gpu_clock = DeviceClock(self.device) if self.gpu_seconds is not None else None
        train = self._splits["train"]
        self.model.train()
        totals = torch.zeros(self.problem.num_tasks, dtype=torch.float64, device=self.device)
        # summed on the device: a copy to the host every step would synchronise a GPU each time
        weight_totals = torch.zeros(self.problem.num_tasks, dtype=torch.float64, device=self.device)
        steps = self.steps_this_epoch = 0
        order = torch.randperm(len(train), generator=self.shuffle)
        batches = iterate_batches(
            train,
            self.config.batch_size,
            self.device,
            order=order.to(self.device) if isinstance(train, Split) else order,
            num_workers=self.config.num_workers,
            seed=(self.config.seed, self.epoch),
        )
        for x, targets in batches:
            weight_totals += self.balancer.weights.to(self.device)
            totals += self.step(x, targets).double()
            steps = self.steps_this_epoch = steps + 1
        self.balancer.end_epoch()
        self.epoch += 1
        val = self._evaluate("val") if self.plan.validates(self.epoch) else {}
        test = self._evaluate("test") if self.plan.tests(self.epoch, val.get("score")) else {}
        self.elapsed_seconds += time.perf_counter() - start
        if self.cpu_seconds is not None:
            self.cpu_seconds += cpu_clock() - cpu_start
        if gpu_clock is not None:
            self.gpu_seconds += gpu_clock.seconds()
        self.samples += len(train)
        train_losses = {
            f"{task}/loss": float(total / steps)
            for task, total in zip(self.problem.task_names, totals)
        }
        return EpochRecord(
            epoch=self.epoch,
            score=val.get("score"),
            train=train_losses,
            val=val,
            test=test,
            weights=[float(w) for w in self.balancer.weights],
            mean_weights=(weight_totals / steps).tolist(),
            elapsed_seconds=self.elapsed_seconds,
            cpu_seconds=self.cpu_seconds,
            gpu_seconds=self.gpu_seconds,
            samples=self.samples,
        )

    def step(self, x: Any, targets: Any) -> torch.Tensor:
        """One optimisation step on the batch ``(x, targets)`` (on the device): the task losses,
        the balancer's backward, gradient clipping, the optimizer's and the schedule's step (and
        for FAMO the losses after the step). Returns the T losses, detached."""
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.config.precision):
            outputs = self._forward(x)
            losses = self.problem.task_losses(outputs, targets)
            if not self._shapes_checked:  # the first batch: no target broadcast against its output
                check_target_shapes(self.problem, outputs, targets, losses)
                self._shapes_checked = True
        if self.config.precision == "bf16":
            losses = losses.float()  # the balancer weighs float32 losses
        self.balancer.backward(losses)
        self.last_losses = losses.detach()
        clip_gradients(self.model, self.config.clip_grad_norm)
        self.optimizer.step()
        if self.balancer.wants_losses_after_step:  # FAMO: this batch's losses after the step
            self.balancer.after_step(self._losses_after_step(x, targets))
        if self.scheduler is not None:
            self.scheduler.step()
        return losses.detach()

    def _forward(self, x: Any) -> Any:
        return self.model(x) if self._branch is None else self.model(x, branch=self._branch)

    @torch.no_grad()
    def _losses_after_step(self, x: Any, targets: Any) -> torch.Tensor:
        """The batch's task losses re-evaluated after the optimizer's step (one forward pass in
        training mode, as the public FAMO code does; no graph, no branch)."""
        with autocast(self.device, self.config.precision):
            return self.problem.task_losses(self.model(x), targets).float()

    def _evaluate(self, split: str) -> dict[str, float]:
        return self.problem.evaluate(
            self.model, self._splits[split], num_workers=self.config.num_workers
        )

    def state_dict(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "elapsed_seconds": self.elapsed_seconds,
            "cpu_seconds": self.cpu_seconds,
            "gpu_seconds": self.gpu_seconds,
            "samples": self.samples,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "best_score": self.plan.best,
            "balancer": self.balancer.state_dict(),
            "shuffle_rng": self.shuffle.get_state(),
            "torch_rng": torch.get_rng_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.plan.best = state.get("best_score")
        self.balancer.load_state_dict(state["balancer"])
        self.shuffle.set_state(state["shuffle_rng"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch = int(state["epoch"])
        self.elapsed_seconds = float(state["elapsed_seconds"])
        # a state saved before these were counted: CPU and GPU time unknown, samples exact
        self.cpu_seconds = state.get("cpu_seconds")
        if self.device.type == "cuda":
            self.gpu_seconds = state.get("gpu_seconds")
        self.samples = int(state.get("samples", self.epoch * len(self._splits["train"])))


    def adopt(self, state: dict[str, Any], epoch: int | None = None, elapsed_seconds: float = 0.0) -> None:
        """Continue another run's :meth:`state_dict` with this run's own settings, as population
        based training's exploit does: a member takes a better member's model and goes on training
        it with its own (perturbed) task weights and learning rate, for its own remaining epochs.

        From ``state``: the model, the optimizer's moments, the best validation score, the
        shuffling and torch RNGs. Kept from this run: the balancer (its weights; its state), and
        the network's learning rate ``config.lr``. ``epoch``: this run's own epochs so far (None:
        ``state``'s), where it goes on from; the schedule is placed at that epoch's first step, and
        every parameter group's rate is ``config.lr`` times the schedule's factor there (1 without
        a schedule). ``elapsed_seconds``: the compute this run had spent before (``state``'s own
        is the other run's, and is not taken)."""
        epoch = int(state["epoch"]) if epoch is None else int(epoch)
        adopted = {**state, "balancer": self.balancer.state_dict(), "epoch": epoch}
        if self.scheduler is not None and state.get("scheduler") is not None:
            adopted["scheduler"] = {**state["scheduler"], "last_epoch": epoch * self.steps_per_epoch}
        self.load_state_dict(adopted)
        factor = 1.0 if self.scheduler is None else self.scheduler.lr_lambdas[0](self.scheduler.last_epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * factor
            if "initial_lr" in group:
                group["initial_lr"] = self.config.lr
        if self.scheduler is not None:
            self.scheduler.base_lrs = [self.config.lr for _ in self.optimizer.param_groups]
        self.elapsed_seconds = float(elapsed_seconds)


def fit(
    problem: Problem,
    balancer: Balancer,
    *,
    model: nn.Module | None = None,
    state: dict[str, Any] | None = None,
    **config: Any,
) -> Training:
    """Train ``model`` (or a fresh one from ``problem``) with ``balancer``; iterate for records.

    ``config`` holds the fields of :class:`TrainConfig` (epochs, batch_size, lr, weight_decay,
    seed, device, num_workers, optimizer, schedule, clip_grad_norm, precision, val_every, ...: see
    :mod:`gradnorm_core.optim`); ``state`` is a :meth:`Training.state_dict` to resume from.
    """
    return Training(problem, balancer, model=model, config=TrainConfig.from_options(config), state=state)
