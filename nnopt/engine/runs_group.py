"""Runs on a runs axis: one run's view, and the runs that share a program.

A :class:`RunSlot` is one run of a :class:`nnopt.engine.runs.RunsTrainer`:
its seed, hyperparameters, sampler, hooks and history. Between hook events
its :class:`~nnopt.engine.step.TrainState` lives as one row of a
:class:`Group`: the runs that share an architecture and an optimizer
function, stacked along a leading axis that the mesh axis ``'runs'`` shards,
and stepped by one vmapped, jitted program. A hook sees a slot exactly as it
sees a single run (:class:`nnopt.hooks.RunView`); when it swaps the
architecture, parameters or optimizer, the slot leaves its group and the
engine regroups (one compilation per distinct architecture and optimizer).
"""

from __future__ import annotations

import collections.abc
import dataclasses
from typing import Any, Mapping, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.tree_utils as otu
from jax.sharding import Mesh, NamedSharding, PartitionSpec

RUNS_AXIS, DATA_AXIS = "runs", "data"


@dataclasses.dataclass(frozen=True)
class RunSpec:
  """One run of a runs axis.

  Attributes:
    seed: seeds the initialization, the data order and the step's keys
      (sampled targets, dropout), exactly as ``Trainer(seed=...)``.
    hparams: float hyperparameters of this run, by the optimizer factory's
      argument names (or the names injected by ``optax.inject_hyperparams``).
    name: directory and record label (default ``run000``, ``run001``, …).
  """

  seed: int = 0
  hparams: Mapping[str, float] = dataclasses.field(default_factory=dict)
  name: str | None = None

  def label(self, index: int) -> str:
    return self.name if self.name is not None else f"run{index:03d}"


def runs_mesh(runs: int | None = None, data: int = 1,
              devices: Sequence[Any] | None = None) -> Mesh:
  """A 2-D ``('runs', 'data')`` mesh: runs sharded over ``runs`` device rows,
  each run's batch over ``data`` devices (default: all devices on runs)."""
  devices = list(jax.devices() if devices is None else devices)
  if runs is None:
    runs = len(devices) // data
  if runs * data != len(devices):
    raise ValueError(f"a runs x data mesh of {runs} x {data} needs "
                     f"{runs * data} devices, got {len(devices)}")
  return Mesh(np.asarray(devices).reshape(runs, data), (RUNS_AXIS, DATA_AXIS))


def axis_size(mesh: Mesh, axis: str) -> int:
  return int(mesh.shape[axis]) if axis in mesh.axis_names else 1


def stacked_sharding(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec(
      RUNS_AXIS if RUNS_AXIS in mesh.axis_names else None))


def batch_sharding(mesh: Mesh, per_run: bool) -> NamedSharding:
  runs = RUNS_AXIS if RUNS_AXIS in mesh.axis_names else None
  data = DATA_AXIS if DATA_AXIS in mesh.axis_names else None
  return NamedSharding(mesh, PartitionSpec(runs, data) if per_run
                       else PartitionSpec(data))


def stack(trees: Sequence[Any]) -> Any:
  """Stacks the trees on the host (one transfer each, nothing left in flight:
  see :func:`build_group`)."""
  trees = jax.device_get(list(trees))
  return jax.tree.map(lambda *a: np.stack(a), *trees)


@jax.jit
def _take_row(tree: Any, row: jax.Array) -> Any:
  return jax.tree.map(lambda a: a[row], tree)


def run_specs(runs: int | Sequence[RunSpec | int]) -> list[RunSpec]:
  """The :class:`RunSpec` s of ``runs``: a count, seeds or specs."""
  if isinstance(runs, int):
    runs = range(runs)
  specs = [r if isinstance(r, RunSpec) else RunSpec(seed=int(r)) for r in runs]
  if not specs:
    raise ValueError("RunsTrainer needs at least one run")
  names = {frozenset(s.hparams) for s in specs}
  if len(names) > 1:
    raise ValueError("every run must name the same hyperparameters, got "
                     f"{sorted(sorted(n) for n in names)}")
  labels = [s.label(i) for i, s in enumerate(specs)]
  if len(set(labels)) != len(labels):
    raise ValueError("run names must be unique")
  return specs


def with_injected(optimizer: optax.GradientTransformation,
                  hparams: Mapping[str, float]) -> optax.GradientTransformation:
  """``optimizer`` whose ``init`` sets the ``inject_hyperparams`` values
  named in ``hparams``."""
  if not hparams:
    return optimizer

  def init(params):
    state = optimizer.init(params)
    for name, value in hparams.items():
      found = otu.tree_get_all_with_path(state, name)
      if not found:
        raise ValueError(
            f"hyperparameter {name!r} is not injected in the optimizer's "
            "state; wrap it in optax.inject_hyperparams or pass a factory "
            "(**hparams) -> transformation")
      state = otu.tree_set(state, **{name: jnp.asarray(
          value, jnp.result_type(found[0][1]))})
    return state

  return optax.GradientTransformationExtraArgs(
      init, getattr(optimizer, "update"))


class RowMetrics(collections.abc.Mapping):
  """One run's row of a group's stacked step metrics, sliced on access (a
  hook that does not read the metrics costs no device work)."""

  def __init__(self, metrics: Mapping[str, jax.Array], row: int):
    self._metrics, self._row = metrics, row

  def __getitem__(self, key: str) -> jax.Array:
    return self._metrics[key][self._row]

  def __iter__(self):
    return iter(self._metrics)

  def __len__(self) -> int:
    return len(self._metrics)


class RunSlot:
  """One run on the runs axis; a :class:`nnopt.hooks.RunView` for hooks.

  Attributes:
    index, spec: position in the trainer's run list and its :class:`RunSpec`.
    model, optimizer: the run's current architecture and optax transformation
      (concrete: built with this run's hyperparameters).
    sampler, hooks: the run's own batch sampler and hook instances.
    step, log, stop: as :class:`nnopt.engine.run.Run`.
    history: the run's metric records.
    custom_optimizer: a hook swapped in an optimizer of its own (the run then
      steps with that object instead of the trainer's optimizer function).
    finished: the run reached its budget, stopped or diverged.
  """

  def __init__(self, index: int, spec: RunSpec, model: nn.Module,
               optimizer: optax.GradientTransformation, sampler, hooks,
               mesh: Mesh):
    self.index, self.spec = index, spec
    self.model, self.optimizer = model, optimizer
    self.sampler, self.hooks, self.mesh = sampler, list(hooks), mesh
    self.step = 0
    self.log: dict[str, Any] = {}
    self.stop = False
    self.history: list[dict[str, Any]] = []
    self.custom_optimizer = False
    self.finished = False
    self.changed = False
    self.group: Group | None = None
    self.row = -1
    self._state = None
    self.ckpt = None
    self.workdir: str | None = None

  @property
  def label(self) -> str:
    return self.spec.label(self.index)

  @property
  def epoch(self) -> int:
    return self.sampler.epoch

  @property
  def state(self):
    """The run's TrainState (a row of its group's stacked state)."""
    if self._state is None:
      return self.group.row_state(self.row)
    return self._state

  @state.setter
  def state(self, value) -> None:
    self._state = value
    self.changed = True

  @property
  def params(self):
    return self.state.params

  def replace(self, *, model: nn.Module | None = None, params: Any = None,
              optimizer: optax.GradientTransformation | None = None,
              opt_state: Any = None, model_state: Any = None) -> None:
    """As :meth:`nnopt.engine.run.Run.replace`; the run leaves its group and
    joins (or founds) the group of its new architecture and optimizer."""
    state = self.state
    if model is not None:
      self.model = model
    if optimizer is not None:
      self.optimizer = optimizer
      self.custom_optimizer = True
    params = state.params if params is None else params
    if opt_state is None:
      opt_state = (self.optimizer.init(params) if optimizer is not None
                   else state.opt_state)
    if model_state is None:
      model_state = state.model_state
    self.state = state._replace(params=params, opt_state=opt_state,
                                model_state=model_state)

  def detach(self) -> None:
    """Materializes the run's own state so that its group may drop it."""
    if self._state is None:
      self._state = self.group.row_state(self.row)
    self.group, self.row = None, -1


@dataclasses.dataclass
class Group:
  """Runs stepped by one program: same architecture and optimizer function.

  Attributes:
    key: ``(model, optimizer key)``; the optimizer key is ``'shared'`` for
      the trainer's optimizer function, or the id of a hook's optimizer.
    members: the runs, row ``i`` of every stacked array belongs to
      ``members[i]``; rows past ``len(members)`` pad the group to a multiple
      of the mesh's runs axis (copies of row 0, discarded).
    state: the stacked TrainState.
    hparams: ``{name: (rows,) float32}``, the runs' hyperparameters.
    sums: the stacked running metric sums since each run's last log.
  """

  key: tuple[Any, Any]
  members: list[RunSlot]
  state: Any
  hparams: dict[str, jax.Array]
  sums: dict[str, jax.Array]
  _rows: dict[int, Any] = dataclasses.field(default_factory=dict)
  evals: dict[str, Any] = dataclasses.field(default_factory=dict)
  zero_sums: Any = None

  @property
  def model(self) -> nn.Module:
    return self.key[0]

  @property
  def optimizer(self) -> optax.GradientTransformation:
    return self.members[0].optimizer

  @property
  def custom(self) -> bool:
    return self.members[0].custom_optimizer

  @property
  def rows(self) -> int:
    return len(jax.tree.leaves(self.state)[0])

  def row_state(self, row: int) -> Any:
    if row not in self._rows:
      # One program, finished before anything else is dispatched (two
      # programs in flight can starve each other's collectives on simulated
      # CPU devices).
      self._rows[row] = jax.block_until_ready(
          _take_row(self.state, jnp.asarray(row, jnp.int32)))
    return self._rows[row]

  def advanced(self) -> None:
    """Forgets the row views and evaluations of the previous state."""
    self._rows.clear()
    self.evals.clear()


def group_key(slot: RunSlot) -> tuple[Any, Any]:
  return (slot.model, id(slot.optimizer) if slot.custom_optimizer
          else "shared")


def build_group(members: list[RunSlot], mesh: Mesh,
                zero_sums: Mapping[str, Any]) -> Group:
  """Stacks the (detached) members' states into one group, padded to a
  multiple of the mesh's runs axis, and places it on the mesh."""
  size = axis_size(mesh, RUNS_AXIS)
  pad = -len(members) % size
  rows = [m.state for m in members] + [members[0].state] * pad
  names = sorted(members[0].spec.hparams)
  hparams = {n: np.asarray([float(m.spec.hparams[n]) for m in members]
                           + [float(members[0].spec.hparams[n])] * pad,
                           np.float32) for n in names}
  sharding = stacked_sharding(mesh)
  place = lambda tree: jax.device_put(tree, sharding)
  n = len(rows)
  sums = {k: np.zeros((n,), np.float32) for k in zero_sums}
  # Placed before the next step is dispatched: on simulated CPU devices two
  # programs in flight can starve each other's collectives (see Trainer).
  state, hparams, sums = jax.block_until_ready(
      (place(stack(rows)), place(hparams), place(sums)))
  group = Group(group_key(members[0]), list(members), state, hparams, sums)
  for row, m in enumerate(members):
    m.group, m.row, m._state, m.changed = group, row, None, False
  return group


__all__ = ["DATA_AXIS", "Group", "RowMetrics", "RUNS_AXIS", "RunSlot", "RunSpec",
           "axis_size", "batch_sharding", "build_group", "group_key",
           "run_specs", "runs_mesh", "stack", "stacked_sharding",
           "with_injected"]
