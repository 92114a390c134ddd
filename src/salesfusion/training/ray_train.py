"""Data-parallel training of the neural models on Ray Train: Lightning DDP across ``workers`` CPU
processes, with no change to model code.

A ``RayPlan`` (``ray_plan(workers, address)``) is passed explicitly: a model told to
``train_on(plan)`` hands it to ``train_module`` in its ``TrainingSettings``, and that training
puts its module and loaders in Ray's object
store (Ray serialises them with cloudpickle, so closures such as a loader's collate function
travel too) for a ``TorchTrainer`` whose workers
each run a Lightning trainer with ``RayDDPStrategy``. The setting never enters a model's
configuration or a checkpoint's resume key, so local results are unchanged.

Sharding keeps a run reproducible: every worker unpickles the same loader, so its seeded
shuffle generator draws the same batch order on every rank; each batch's indices are then dealt
out by rank (``RankSlices``), so an epoch has as many steps as locally, on every rank (DDP needs
equal step counts), and the all-reduced gradient is the mean of the ranks' means over the whole
batch. The driver's global random streams are restored on every worker, so each draws dropout
from the stream a local run would. Every rank
validates on the whole validation loader: the weights are the same on every rank, so is the
loss, and early stopping and the best weights agree. Rank 0 reports the best weights in a Ray
checkpoint (``torch.save``), the driver loads them with ``weights_only=True``.

Not supported with Ray: a ``checkpoint_dir`` (exact resume), accelerators other than the CPU
and a tuning trial's epoch listener. On a multi-node cluster, Ray's storage must be reachable
from every node (``SALESFUSION_RAY_STORAGE``, default a temporary folder on the driver).
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning
import torch

from salesfusion.errors import InputError

if TYPE_CHECKING:
    from salesfusion.training.trainer import TrainingOutcome, TrainingSettings

WEIGHTS = "weights.pt"


@dataclass
class RayPlan:
    """Where ``train_module`` trains when its settings carry the plan (``TrainingSettings.ray``);
    ``runs`` records each training's world size and rows trained per rank (as the workers
    measured them)."""

    workers: int
    address: str | None = None
    runs: list[RayRun] = field(default_factory=list)


@dataclass(frozen=True)
class RayRun:
    world_size: int
    rows_per_rank: tuple[int, ...]  # training rows each rank was dealt, over all epochs


def ray_plan(workers: int, address: str | None = None) -> RayPlan:
    """A plan to train with DDP on ``workers`` Ray workers (the cluster at
    ``address``/``RAY_ADDRESS``, the running session, else a local one)."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(f"--workers must be a positive integer, got {workers!r}")
    return RayPlan(workers, address)


class RankSlices:
    """The batches of ``batches`` (index sequences) dealt out by rank: rank r gets every
    ``world``-th index of each batch from the r-th; a batch smaller than ``world`` gives each
    rank one of its indices (repeated), so every rank takes a step for every batch."""

    def __init__(self, batches: Iterable[Sequence[int]], rank: int, world: int) -> None:
        self.batches, self.rank, self.world = batches, rank, world
        self.rows = 0

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            try:
                indices = list(batch)
            except TypeError:
                raise InputError(f"--backend ray shards batches of indices; the training "
                                 f"loader's sampler gave {type(batch).__name__}") from None
            part = (indices[self.rank::self.world] if len(indices) >= self.world
                    else [indices[self.rank % len(indices)]])
            self.rows += len(part)
            yield part

    def __len__(self) -> int:
        return len(self.batches)  # type: ignore[arg-type]


def shard_loader(loader: torch.utils.data.DataLoader, rank: int,
                 world: int) -> tuple[torch.utils.data.DataLoader, RankSlices]:
    """``loader`` with each batch's indices dealt to ``rank`` of ``world`` (same dataset,
    collate function, generator and worker settings), and its ``RankSlices``."""
    common = {"collate_fn": loader.collate_fn, "num_workers": loader.num_workers,
              "pin_memory": loader.pin_memory, "timeout": loader.timeout,
              "worker_init_fn": loader.worker_init_fn,
              "multiprocessing_context": loader.multiprocessing_context,
              "generator": loader.generator, "prefetch_factor": loader.prefetch_factor,
              "persistent_workers": loader.persistent_workers}
    if loader.batch_sampler is not None:
        slices = RankSlices(loader.batch_sampler, rank, world)
        return torch.utils.data.DataLoader(loader.dataset, batch_sampler=slices, **common), slices
    # batch_size=None: each key the sampler draws is a whole batch (a sequence of indices).
    slices = RankSlices(loader.sampler, rank, world)
    return (torch.utils.data.DataLoader(loader.dataset, batch_size=None, sampler=slices,
                                        **common), slices)


def refuse_checkpoint_dir(checkpoint_dir: Path | str | None) -> None:
    """Resuming from a checkpoint folder is local only."""
    if checkpoint_dir:
        raise InputError(f"checkpoint_dir ({checkpoint_dir}) cannot be used with "
                         f"--backend ray: resuming from a checkpoint folder is local only")


def train_on_ray(module: lightning.LightningModule, train_loader: Any, val_loader: Any | None,
                 settings: TrainingSettings, plan: RayPlan) -> TrainingOutcome:
    """``train_module``'s work on Ray Train: the module ends with the best validation weights
    (the last epoch's without a validation part); a ``TrainingOutcome``."""
    from salesfusion.training.hooks import epoch_listener_callback
    from salesfusion.training.random_state import capture_random
    from salesfusion.training.trainer import TrainingOutcome

    refuse_checkpoint_dir(settings.checkpoint_dir)
    if settings.accelerator not in ("auto", "cpu"):
        raise InputError(f"accelerator '{settings.accelerator}' cannot be used with --backend "
                         f"ray: its workers train on CPUs")
    if not isinstance(train_loader, torch.utils.data.DataLoader) or isinstance(
            train_loader.dataset, torch.utils.data.IterableDataset):
        raise InputError("--backend ray shards a DataLoader over a map-style dataset; the "
                         f"training loader is {type(train_loader).__name__}")
    if epoch_listener_callback(0) is not None:
        raise InputError("a tuning trial cannot train with --backend ray (its epochs are "
                         "reported from the trial's own process)")
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from salesfusion.distributed import ray_session

    job = {"module": module.cpu(), "train": train_loader, "val": val_loader,
           "epochs": settings.epochs, "patience": settings.patience,
           "gradient_clip": settings.gradient_clip, "progress": settings.progress,
           "random": capture_random(None)}
    storage = os.environ.get("SALESFUSION_RAY_STORAGE")
    with ray_session(plan.address, plan.workers), tempfile.TemporaryDirectory() as scratch:
        payload = ray.put(job)
        trainer = TorchTrainer(
            _worker_loop, train_loop_config={"payload": payload},
            scaling_config=ScalingConfig(num_workers=plan.workers, use_gpu=False,
                                         resources_per_worker={"CPU": 1}),
            # A fresh name: Ray resumes a run whose name it finds in the storage.
            run_config=RunConfig(name=f"salesfusion-train-{uuid.uuid4().hex[:12]}",
                                 storage_path=storage or scratch))
        result = _fit(trainer)
        with result.checkpoint.as_directory() as folder:
            saved = torch.load(Path(folder) / WEIGHTS, weights_only=True)
    module.load_state_dict(saved["weights"])
    module.cpu()
    world = int(saved["world_size"])
    plan.runs.append(RayRun(world, tuple(int(r) for r in saved["rows_per_rank"])))
    has_best = val_loader is not None and saved["best_epoch"] > 0
    return TrainingOutcome(epochs_run=int(saved["epochs_run"]),
                           best_epoch=int(saved["best_epoch"]) if has_best else None,
                           best_val_loss=float(saved["best_val_loss"]) if has_best else None,
                           resumed=False, ray_workers=world)


def _fit(trainer: Any) -> Any:
    """``trainer.fit()``; a worker's ``InputError`` comes back as itself."""
    from ray.train import WorkerGroupError

    try:
        return trainer.fit()
    except WorkerGroupError as error:
        for failure in error.worker_failures.values():
            cause = getattr(failure, "cause", failure)
            if isinstance(cause, InputError):
                raise InputError(str(cause).splitlines()[0]) from None
        raise


def _worker_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: Lightning DDP over its share of every batch; rank 0 reports the
    weights to keep."""
    import ray
    import ray.train
    from lightning.pytorch.callbacks import Callback, EarlyStopping
    from ray.train.lightning import RayDDPStrategy, RayLightningEnvironment, prepare_trainer

    from salesfusion.training.callbacks import BestWeights
    from salesfusion.training.random_state import restore_random
    from salesfusion.training.trainer import quiet_lightning

    torch.set_num_threads(1)  # one CPU per worker: more threads only contend
    job = ray.get(config["payload"])
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    restore_random(job["random"], None)
    module, val_loader = job["module"], job["val"]
    train_loader, slices = shard_loader(job["train"], rank, world)
    best = BestWeights()
    callbacks: list[Callback] = [best]
    if val_loader is not None:
        callbacks.append(EarlyStopping("val_loss", patience=job["patience"]))
    with tempfile.TemporaryDirectory() as scratch, quiet_lightning():
        trainer = lightning.Trainer(
            max_epochs=job["epochs"], accelerator="cpu", devices="auto",
            # A sub-batch may leave a branch unused (no launch window on this rank).
            strategy=RayDDPStrategy(find_unused_parameters=True),
            plugins=[RayLightningEnvironment()], use_distributed_sampler=False, logger=False,
            callbacks=callbacks, gradient_clip_val=job["gradient_clip"], deterministic=True,
            enable_progress_bar=job["progress"] and rank == 0, enable_model_summary=False,
            num_sanity_val_steps=0, enable_checkpointing=False, default_root_dir=scratch,
            limit_val_batches=1.0 if val_loader is not None else 0)
        trainer = prepare_trainer(trainer)
        trainer.fit(module, train_loader, val_loader)
        rows = [None] * world
        torch.distributed.all_gather_object(rows, slices.rows)
        weights = best.weights if best.weights is not None else {
            k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
        metrics = {"epochs_run": trainer.current_epoch, "world_size": trainer.world_size}
        if rank != 0:
            ray.train.report(metrics)
            return
        torch.save({"weights": weights, "epochs_run": trainer.current_epoch,
                    "best_epoch": best.epoch or 0, "best_val_loss": best.best,
                    "world_size": trainer.world_size, "rows_per_rank": rows},
                   Path(scratch) / WEIGHTS)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(scratch))

