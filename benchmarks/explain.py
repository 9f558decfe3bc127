"""Wall time of explain's methods against the notebook's own way of doing the same work.

In one process, on one face: Grad-CAM (explain's compiled tf.function vs an eager
GradientTape), one occlusion map (explain's batched maps through float TF, INT8
TFLite and INT8 ONNX vs the notebook's one ``predict`` per occluded image) and the
notebook's 24-filter visualisation (3 layers x 8 filters: explain's one batch per
layer vs one filter at a time, each step an eager GradientTape). Speed-ups are ratios
of medians measured in this one run. Writes explain.json, explain.csv, explain.png.

    uv run python benchmarks/explain.py --bundle /work/bundles/faceres
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from _common import (
    LFW,
    machine_info,
    machine_line,
    markdown_table,
    new_parser,
    one_line,
    out_dir,
    progress,
    pyplot,
    run_cli,
    save_figure,
    write_csv,
    write_json,
)

from edge.detect import create_detector
from edge.embedder import Embedder
from edge.errors import FacelensError
from explain.base import embedder_features
from explain.faces import FaceLoader
from explain.filters import default_filter_layers, maximize_filters
from explain.gradcam import GradCAM, spatial_layers
from explain.models import ExplainModel, from_bundle
from explain.occlusion import Occlusion, patch_starts
from explain.targets import Target, self_target

OCCLUSION_BATCH = 32  # occluded copies scored per call (explain's default)
COLUMNS = [
    ("task", "task", 0),
    ("method", "method", 0),
    ("seconds", "wall s", 3),
    ("speedup", "speed-up vs notebook", 1),
    ("note", "note", 0),
]


def wall(fn: Callable[[], Any], runs: int = 1) -> float:
    """Median wall time of ``runs`` calls, in seconds."""
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return float(np.median(samples))


# -- the notebook's ways ---------------------------------------------------------------


def eager_gradcam(model: ExplainModel, layer: str, pixels: np.ndarray, target: Target):
    """Grad-CAM as a notebook writes it: an eager GradientTape, no compilation."""
    grad_model = keras.Model(
        model.model.inputs, [model.model.get_layer(layer).output, model.model.output]
    )
    x = tf.constant(model.spec.normalize(pixels)[None])
    w = tf.constant(np.asarray(target.weights, np.float32).reshape(1, -1))

    def run() -> np.ndarray:
        with tf.GradientTape() as tape:
            maps, out = grad_model(x, training=False)
            score = tf.reduce_sum(tf.reshape(out, (1, -1)) * w)
        grads = tape.gradient(score, maps)
        cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, (1, 2), keepdims=True) * maps, -1))
        return cam.numpy()

    return run


def notebook_occlusion(
    model: ExplainModel, pixels: np.ndarray, patch: int, stride: int, limit: int | None
) -> tuple[float, int, int]:
    """One ``model.predict`` per occluded image, as the notebook did.

    Returns (seconds for all patches, patches run, patches in a map); with ``limit``
    only that many are run and the time is scaled to the whole map.
    """
    h, w = pixels.shape[:2]
    boxes = [(y, x) for y in patch_starts(h, patch, stride) for x in patch_starts(w, patch, stride)]
    run = boxes[:limit] if limit else boxes
    model.model.predict(model.spec.normalize(pixels)[None], verbose=0)  # build predict once
    t0 = time.perf_counter()
    for y, x in progress(run, "notebook occlusion"):
        occluded = pixels.copy()
        occluded[y : y + patch, x : x + patch] = 128.0
        model.model.predict(model.spec.normalize(occluded)[None], verbose=0)
    seconds = time.perf_counter() - t0
    return seconds * len(boxes) / len(run), len(run), len(boxes)


def notebook_filter(sub: keras.Model, index: int, shape: tuple, steps: int, step: float) -> None:
    """One filter's gradient ascent, each step an eager GradientTape (the notebook's loop)."""
    x = tf.Variable(np.random.default_rng(index).normal(0, 20, (1, *shape)).astype(np.float32))
    for _ in range(steps):
        with tf.GradientTape() as tape:
            act = tf.reduce_mean(sub(x, training=False)[..., index])
        grad = tape.gradient(act, x)
        x.assign_add(step * grad / (tf.sqrt(tf.reduce_mean(tf.square(grad))) + 1e-5))


# -- the benchmark ---------------------------------------------------------------------


def bench_gradcam(model: ExplainModel, pixels: np.ndarray, layer: str, runs: int) -> list[dict]:
    features = model.features()(pixels[None])
    target = self_target(features)
    cam = GradCAM(model.model, layer, model.spec)
    first = wall(lambda: cam.explain(pixels[None], target))
    compiled = wall(lambda: cam.explain(pixels[None], target), runs)
    eager = eager_gradcam(model, layer, pixels, target)
    eager()  # build the layers' eager state outside the timing
    eager_s = wall(eager, runs)
    return [
        {
            "task": f"Grad-CAM ({layer})",
            "method": "notebook: eager GradientTape",
            "seconds": eager_s,
            "speedup": 1.0,
        },
        {
            "task": f"Grad-CAM ({layer})",
            "method": "explain: tf.function",
            "seconds": compiled,
            "speedup": eager_s / compiled,
            "note": f"first call (tracing) {first:.2f} s",
        },
    ]


def bench_occlusion(
    args: argparse.Namespace, model: ExplainModel, pixels: np.ndarray
) -> list[dict]:
    base_s, ran, patches = notebook_occlusion(
        model, pixels, args.patch, args.stride, args.baseline_patches
    )
    rows = [
        {
            "task": "occlusion map",
            "method": "notebook: one predict per occluded image (float Keras)",
            "seconds": base_s,
            "speedup": 1.0,
            "note": f"{patches} patches" + (f", {ran} run and scaled" if ran < patches else ""),
        }
    ]
    runners: dict[str, Callable[[], Any]] = {"float TF (Keras, batched)": lambda: model.features()}
    for fmt in ("tflite-int8", "onnx-int8"):
        if fmt in model.bundle.formats:
            runners[f"{fmt} ({'LiteRT' if fmt.startswith('tflite') else 'onnxruntime'})"] = (
                lambda f=fmt: embedder_features(Embedder(model.bundle, f, threads=args.threads))
            )
    for label, make in runners.items():
        try:
            fn = make()
            target = self_target(fn(pixels[None]))
            occlusion = Occlusion(
                fn, patch=args.patch, stride=args.stride, batch_size=OCCLUSION_BATCH
            )
            # warm-up with the batch shapes a map uses, so the timed map traces nothing new
            for size in {OCCLUSION_BATCH, patches % OCCLUSION_BATCH} - {0}:
                fn(np.repeat(pixels[None], size, axis=0))
            seconds = wall(lambda o=occlusion, t=target: o.explain(pixels[None], t))
            rows.append(
                {
                    "task": "occlusion map",
                    "method": f"explain: {label}",
                    "seconds": seconds,
                    "speedup": base_s / seconds,
                }
            )
        except Exception as exc:  # one failing runtime is a row, not the end of the run
            rows.append(
                {"task": "occlusion map", "method": f"explain: {label}", "note": one_line(exc)}
            )
    return rows


def bench_filters(args: argparse.Namespace, model: ExplainModel) -> list[dict]:
    layers = args.filter_layers or default_filter_layers(model.model, model.source.get("backbone"))
    filters = list(range(args.filters))
    t0 = time.perf_counter()
    for layer in progress(layers, "explain filters"):
        maximize_filters(model.model, model.spec, layer, filters, steps=args.steps)
    batched = time.perf_counter() - t0
    per_layer = args.baseline_filters or len(filters)
    t0 = time.perf_counter()
    for layer in progress(layers, "notebook filters"):
        sub = keras.Model(model.model.inputs, model.model.get_layer(layer).output)
        for index in filters[:per_layer]:
            notebook_filter(sub, index, tuple(model.model.input.shape[1:]), args.steps, 1.0)
    baseline = (time.perf_counter() - t0) * len(filters) / per_layer
    task = f"filters ({len(layers)} layers x {len(filters)}, {args.steps} steps)"
    note = (
        f"{per_layer} of {len(filters)} per layer run and scaled"
        if per_layer < len(filters)
        else ""
    )
    return [
        {
            "task": task,
            "method": "notebook: one filter at a time, eager",
            "seconds": baseline,
            "speedup": 1.0,
            "note": note,
        },
        {
            "task": task,
            "method": "explain: one batch per layer, tf.function",
            "seconds": batched,
            "speedup": baseline / batched,
            "note": ", ".join(layers),
        },
    ]


def plot(rows: list[dict], path: Path, title: str) -> None:
    plt = pyplot()

    shown = [r for r in rows if r.get("seconds")]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(shown) + 1.5))
    colors = ["C3" if r["method"].startswith("notebook") else "C0" for r in shown]
    labels = [f"{r['task']}: {r['method']}" for r in shown]
    ax.barh(range(len(shown)), [r["seconds"] for r in shown], color=colors)
    ax.set_yticks(range(len(shown)), labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("wall seconds (log); red = the notebook's method")
    for i, r in enumerate(shown):
        if not r["method"].startswith("notebook"):
            ax.annotate(
                f"{r['speedup']:.1f}x",
                (r["seconds"], i),
                xytext=(4, -3),
                textcoords="offset points",
                fontsize=7,
            )
    ax.set_title(title, fontsize=9)
    save_figure(fig, path)


def default_image() -> Path:
    pairs = LFW / "pairs_devtest.csv"
    if not pairs.is_file():
        raise FacelensError(f"no --image given and {pairs} is missing: pass --image PHOTO")
    return LFW / "images" / pairs.read_text().splitlines()[1].split(",")[0]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__, "model bundle folder (needs model_float.keras)")
    parser.add_argument(
        "--image", type=Path, help="face photo (default: the first LFW devtest photo)"
    )
    parser.add_argument("--layer", help="Grad-CAM layer (default: the model's first default layer)")
    parser.add_argument("--runs", type=int, default=5, help="runs per Grad-CAM timing (default 5)")
    parser.add_argument("--patch", type=int, default=25, help="occlusion patch px (default 25)")
    parser.add_argument("--stride", type=int, default=14, help="occlusion stride px (default 14)")
    parser.add_argument(
        "--baseline-patches",
        type=int,
        help="run only N of the notebook's predicts and scale (default: all)",
    )
    parser.add_argument("--filter-layers", nargs="+", help="layers to visualise (default: three)")
    parser.add_argument("--filters", type=int, default=8, help="filters per layer (default 8)")
    parser.add_argument("--steps", type=int, default=30, help="gradient-ascent steps (default 30)")
    parser.add_argument(
        "--baseline-filters", type=int, help="run only N filters per layer one at a time and scale"
    )
    parser.add_argument(
        "--threads", type=int, help="threads for the INT8 runtimes (default: theirs)"
    )
    parser.add_argument(
        "--skip", nargs="+", default=[], choices=["gradcam", "occlusion", "filters"]
    )
    args = parser.parse_args(argv)
    if args.runs < 1 or args.filters < 1 or args.steps < 1:
        parser.error("--runs, --filters and --steps must be >= 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model = from_bundle(args.bundle)
    info = machine_info()
    print(f"# explain: {model.title('wall time')}\n\nmachine: {machine_line(info)}\n")
    image = args.image or default_image()
    pixels = FaceLoader(model.spec, detector=create_detector(args.detector)).load(image).pixels
    layer = args.layer or (model.gradcam_layers or (spatial_layers(model.model)[-1],))[-1]
    rows: list[dict] = []
    if "gradcam" not in args.skip:
        rows += bench_gradcam(model, pixels, layer, args.runs)
    if "occlusion" not in args.skip:
        rows += bench_occlusion(args, model, pixels)
    if "filters" not in args.skip:
        rows += bench_filters(args, model)
    print(markdown_table(rows, COLUMNS))
    print(
        f"\nimage: {image}; speed-up = the notebook method's seconds / explain's, "
        "both measured in this process, in this run."
    )
    dest = out_dir(args, "explain")
    write_json(
        dest / "explain.json",
        {
            "bundle": str(args.bundle),
            "model": model.source,
            "machine": info,
            "settings": {k: str(v) for k, v in vars(args).items()},
            "rows": rows,
        },
    )
    write_csv(dest / "explain.csv", rows, [k for k, _, _ in COLUMNS])
    plot(
        rows,
        dest / "explain.png",
        f"{model.title('explain wall time')}\n{info['cpu']}, {info['cores']} cores",
    )
    print(f"\nwrote {dest / 'explain.json'}, explain.csv, explain.png")
    return 0


if __name__ == "__main__":
    run_cli(main)
