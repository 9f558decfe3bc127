"""Exact incremental inference of edited copies of one image through an INT8 TFLite model.

An occluded copy differs from its base image only inside the patch, so in the early
layers only a neighbourhood of the patch changes. The model is cut into stages (see
:mod:`explain.stages`); every stage's output map of the base image is kept. For a
batch of copies, each stage runs on a crop of its input around the region that
changed (grown by what the stage reads, aligned to its stride, moved inside the map
but never shrunk, so every crop of a batch has one size and the true border keeps its
padding); the crop's outputs over the changed region go on. Once a crop would be about
the whole map, or at a stage whose footprint is unknown, the rest of the model runs
whole on the patched maps. Every output is computed by the same integer operators on
the same inputs as in the whole model: the features are the whole model's, to the bit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.python import schema_py_generated as schema

from edge.model.backends import Backend
from edge.model.embedder import Embedder
from explain.base import Features
from explain.stages import Geometry, Interval, Stage, cut, read, submodel

# A crop at least this share of its map's area runs the rest of the model whole.
WHOLE_FROM = 0.8


@dataclass(frozen=True)
class AxisPlan:
    """Where each image's crop lies along one axis of a stage's input, and what comes out."""

    length: int  # of every crop of the batch
    starts: list[int]  # each crop's first input index
    out_starts: list[int]  # each crop output's first index in the output map
    affected: list[Interval | None]  # the outputs each image changes


def plan_axis(geometry: Geometry, axis: int, n: int, changed: list[Interval]) -> AxisPlan:
    """Crops along ``axis`` (input length ``n``) that compute every affected output exactly."""
    align, out_stride = geometry.steps(axis)
    affected = [geometry.affected(c, n, axis) for c in changed]
    needs = [geometry.needed(a, n, axis) if a else None for a in affected]
    starts = [need[0] // align * align if need else 0 for need in needs]
    span = max((need[1] - s + 1 for need, s in zip(needs, starts, strict=True) if need), default=1)
    length = n - align * ((n - span) // align)  # >= span, and congruent to n: same padding
    pads = geometry.pads(n, axis)
    while length < n and (
        geometry.pads(length, axis) != pads or min(geometry.sizes(length, axis).values()) < 1
    ):
        length += align
    length = min(length, n)
    starts = [min(start, n - length) for start in starts]
    return AxisPlan(length, starts, [s // out_stride for s in starts], affected)


def _paste(
    dest: np.ndarray, at: tuple[int, int], box: tuple[Interval, Interval], src: np.ndarray,
    src_at: tuple[int, int],
) -> None:  # fmt: skip
    """Copy ``box`` (map coordinates) from ``src`` into ``dest``, each lying at its
    (row, column) offset ``at`` / ``src_at`` in the map; only what ``dest`` covers."""
    (r0, r1), (c0, c1) = box
    r0, c0 = max(r0, at[0]), max(c0, at[1])
    r1, c1 = min(r1, at[0] + dest.shape[0] - 1), min(c1, at[1] + dest.shape[1] - 1)
    if r0 <= r1 and c0 <= c1:
        dest[r0 - at[0] : r1 - at[0] + 1, c0 - at[1] : c1 - at[1] + 1] = src[
            r0 - src_at[0] : r1 - src_at[0] + 1, c0 - src_at[1] : c1 - src_at[1] + 1
        ]


def _interval(flags: np.ndarray) -> Interval:
    """The first and last True of a 1-d mask."""
    where = np.flatnonzero(flags)
    return int(where[0]), int(where[-1])


@dataclass
class _Edit:
    """One edited image on its way through the stages: what changed, and its values there."""

    box: tuple[Interval, Interval]  # the changed region of the current stage's input map
    values: np.ndarray  # holds the new values over ``box``
    at: tuple[int, int]  # where ``values`` lies in the map


@dataclass
class StageWork:
    """How much of one stage's whole-map work the edits ran, in whole maps."""

    stage: Stage
    ran: float = 0.0  # crop area / map area, summed over the images run
    whole: float = 0.0  # images asked for

    @property
    def fraction(self) -> float:
        """The share of the whole-map work the stage ran (1: all of it)."""
        return self.ran / self.whole if self.whole else 1.0


class IncrementalRunner:
    """A ``.tflite`` model cut into stages, run on edits of a base image where they reach.

    ``threads``: LiteRT threads of every stage interpreter. ``whole_from``: a crop of
    at least this share of its map runs the rest whole.
    """

    def __init__(
        self, path: Path | str, threads: int | None = None, whole_from: float = WHOLE_FROM
    ) -> None:
        self.path = Path(path)
        self.threads = threads
        self.whole_from = whole_from
        self.model = read(self.path)
        self.stages = cut(self.model)
        self.work = [StageWork(stage) for stage in self.stages]
        self._interpreters: dict[tuple[int, int], Interpreter] = {}  # by first and stop op

    @property
    def float_io(self) -> bool:
        """Float32 in and out (quantizing inside), as every convert bundle's INT8 model."""
        graph = self.model.subgraphs[0]
        return all(
            graph.tensors[t].type == schema.TensorType.FLOAT32
            for t in (*graph.inputs, *graph.outputs)
        )

    @property
    def croppable(self) -> bool:
        """Some stage can run on a crop (else every edit runs the whole model)."""
        return any(stage.geometry is not None for stage in self.stages)

    def _run(self, first: int, stop: int, x: np.ndarray) -> np.ndarray:
        """Stages ``first`` to ``stop - 1`` on the batch ``x``.

        One interpreter per run of stages, resized when the batch's shape changes (cheap:
        the weights stay packed), so memory stays at about one model's.
        """
        a, b = self.stages[first], self.stages[stop - 1]
        interpreter = self._interpreters.get((a.first, b.stop))
        new = interpreter is None
        if new:
            part = submodel(self.model, a.first, b.stop, a.input, b.output)
            interpreter = Interpreter(model_content=part, num_threads=self.threads)
            self._interpreters[a.first, b.stop] = interpreter
        details = interpreter.get_input_details()[0]
        if new or tuple(details["shape"]) != x.shape:
            interpreter.resize_tensor_input(details["index"], x.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(details["index"], np.ascontiguousarray(x, details["dtype"]))
        interpreter.invoke()
        return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])

    def base(self, x0: np.ndarray) -> list[np.ndarray]:
        """Every stage's input map for the image ``x0``, and the model's output, last."""
        maps = [np.asarray(x0)]
        for k in range(len(self.stages)):
            maps.append(self._run(k, k + 1, maps[-1][None])[0])
        return maps

    def _plans(
        self, stage: Stage, shape: tuple[int, ...], edits: list[_Edit]
    ) -> tuple[AxisPlan, AxisPlan] | None:
        """The crops of one stage, or None: run it and the rest whole."""
        if stage.geometry is None:
            return None
        rows, cols = (
            plan_axis(stage.geometry, axis, shape[axis], [e.box[axis] for e in edits])
            for axis in (0, 1)
        )
        if rows.length * cols.length >= self.whole_from * shape[0] * shape[1]:
            return None
        return rows, cols

    def edits(self, maps: list[np.ndarray], batch: np.ndarray) -> np.ndarray:
        """(N, D) float32 outputs of images that differ from ``maps``' base image in places."""
        n = len(batch)
        out = np.repeat(maps[-1][None], n, axis=0)
        changed = np.any(batch != maps[0], axis=-1)
        rows, cols = changed.any(axis=2), changed.any(axis=1)
        edits = {
            int(i): _Edit((_interval(rows[i]), _interval(cols[i])), batch[i], (0, 0))
            for i in np.flatnonzero(rows.any(axis=1))
        }
        for work in self.work:
            work.whole += n
        for k, stage in enumerate(self.stages):
            if not edits:
                break
            shape = maps[k].shape
            plans = self._plans(stage, shape, list(edits.values()))
            if plans is None:  # the rest of the model, whole, on the patched maps
                full = np.repeat(maps[k][None], len(edits), axis=0)
                for j, edit in enumerate(edits.values()):
                    _paste(full[j], (0, 0), edit.box, edit.values, edit.at)
                out[list(edits)] = self._run(k, len(self.stages), full)
                for work in self.work[k:]:
                    work.ran += len(edits)
                return out.reshape(n, -1).astype(np.float32)
            rows_plan, cols_plan = plans
            crops = np.empty((len(edits), rows_plan.length, cols_plan.length, *shape[2:]),
                             maps[k].dtype)  # fmt: skip
            for j, edit in enumerate(edits.values()):
                r, c = rows_plan.starts[j], cols_plan.starts[j]
                crops[j] = maps[k][r : r + rows_plan.length, c : c + cols_plan.length]
                _paste(crops[j], (r, c), edit.box, edit.values, edit.at)
            self.work[k].ran += (
                len(edits) * rows_plan.length * cols_plan.length / (shape[0] * shape[1])
            )
            y = self._run(k, k + 1, crops)
            edits = {
                i: _Edit((rows_plan.affected[j], cols_plan.affected[j]), y[j],
                         (rows_plan.out_starts[j], cols_plan.out_starts[j]))
                for j, i in enumerate(edits)
                if rows_plan.affected[j] is not None and cols_plan.affected[j] is not None
            }  # fmt: skip
        for i, edit in edits.items():  # every stage ran on crops: paste into the output
            _paste(out[i], (0, 0), edit.box, edit.values, edit.at)
        return out.reshape(n, -1).astype(np.float32)


class IncrementalBackend(Backend):
    """LiteRT on edits of one base image (see :meth:`around`), through the staged model.

    Until a base is set, or for inputs of another size, ``whole`` (the plain LiteRT
    backend of the same file) runs. Either way the outputs are the whole model's.
    """

    runtime = "litert"

    def __init__(self, whole: Backend, runner: IncrementalRunner) -> None:
        super().__init__(whole.path, whole.threads)
        self.whole = whole
        self.runner = runner
        self._maps: list[np.ndarray] | None = None

    def around(self, x0: np.ndarray) -> None:
        """Keep every stage's map of the normalised image ``x0``: later batches are its edits."""
        self._maps = self.runner.base(x0)

    def run(self, batch: np.ndarray) -> np.ndarray:
        if self._maps is None or batch.shape[1:] != self._maps[0].shape:
            return self.whole.run(batch)
        return self.runner.edits(self._maps, batch)


@dataclass(frozen=True)
class IncrementalFeatures(Features):
    """An INT8 TFLite feature function that runs edits of one image only where they reach."""

    backend: IncrementalBackend = field(kw_only=True, repr=False)

    def around(self, x0: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        self.backend.around(x0)
        return self.run


def incremental_features(embedder: Embedder, whole_from: float = WHOLE_FROM) -> Features:
    """The embedder's feature function, with occluded copies run incrementally.

    The embedder's backend becomes an :class:`IncrementalBackend` over the same file and
    threads. A model that cannot be cut or whose input or output is not float32 keeps
    the plain backend (its features are the same either way).
    """
    runner = IncrementalRunner(embedder.backend.path, embedder.backend.threads, whole_from)
    if not (runner.float_io and runner.croppable):
        return Features(embedder.embed_batch, embedder.spec, embedder.batch_size)
    backend = IncrementalBackend(embedder.backend, runner)
    embedder.backend = backend
    return IncrementalFeatures(
        embedder.embed_batch, embedder.spec, embedder.batch_size, backend=backend
    )
