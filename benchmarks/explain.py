"""Wall time of explain's methods against the notebook's own way of doing the same work.

In one process, on one face (Grad-CAM also on a second face of the same size):
- Grad-CAM: explain's one compiled pass for one layer and for the notebook's three
  layers at once, against one eager GradientTape per layer; map correlation to the
  eager maps is reported.
- one occlusion map: explain's batched maps through float TF and through the INT8
  artifacts at each measured (threads, batch) setting, every occluded copy run whole,
  and through INT8 TFLite incrementally (each copy recomputed only where its patch
  reaches; the share of the model's MACs that ran and whether the map is the plain
  INT8 one to the bit are reported), against one ``predict`` per occluded image; INT8
  map correlation to the float map is reported.
- the notebook's 24-filter figure (3 layers x 8 filters): explain's one compiled batch
  per layer cut at that layer, in float32 and in the CPU's fastest safe precision
  (bfloat16 where native; SSIM and top filters against float32 reported), against one
  filter at a time, each step an eager GradientTape. Both also in CPU seconds, and
  explain's against the arithmetic it cannot avoid (its kernels' FLOPs per CPU-second).

Speed-ups are ratios of medians measured in this one run. Writes explain.json,
explain.csv, explain.png.

    uv run python benchmarks/explain.py --bundle /work/bundles/faceres
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
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
    parse_threads,
    progress,
    pyplot,
    run_cli,
    save_figure,
    write_csv,
    write_json,
)

from edge.base.errors import FacelensError
from edge.faces.detect import create_detector
from edge.model.embedder import Embedder
from explain.base import embedder_features
from explain.crops import FaceLoader
from explain.filters import (
    LayerActivation,
    ascent_precision,
    default_filter_layers,
    maximize_filters,
    pattern_agreement,
)
from explain.gradcam import GradCAM
from explain.incremental import IncrementalFeatures
from explain.metrics import spearman, top_iou
from explain.models import ExplainModel, from_bundle
from explain.occlusion import Occlusion, patch_starts
from explain.precision import fastest_safe_precision
from explain.stages import macs, op_name
from explain.targets import Target, self_target

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


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two maps' pixels."""
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


# -- the notebook's ways ---------------------------------------------------------------


def eager_gradcam(model: ExplainModel, layer: str):
    """Grad-CAM as a notebook writes it: an eager GradientTape per layer, no compilation."""
    grad_model = keras.Model(
        model.model.inputs, [model.model.get_layer(layer).output, model.model.output]
    )

    def run(pixels: np.ndarray, target: Target) -> np.ndarray:
        x = tf.constant(model.spec.normalize(pixels)[None])
        w = tf.constant(np.asarray(target.weights, np.float32).reshape(1, -1))
        with tf.GradientTape() as tape:
            maps, out = grad_model(x, training=False)
            score = tf.reduce_sum(tf.reshape(out, (1, -1)) * w)
        grads = tape.gradient(score, maps)
        cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grads, (1, 2), keepdims=True) * maps, -1))
        return cam.numpy()[0]

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


def conv_rate(precision: str, runs: int = 5) -> float:
    """FLOPs per CPU-second of one lone convolution in ``precision`` on this CPU.

    A VGG16-sized 3x3 convolution (8 x 28 x 28 x 512 -> 512): the yardstick the ascent's
    own rate is held against.
    """
    dtype = tf.dtypes.as_dtype(precision)
    x = tf.cast(tf.random.stateless_normal((8, 28, 28, 512), (0, 0)), dtype)
    kernel = tf.cast(tf.random.stateless_normal((3, 3, 512, 512), (0, 1)) * 0.02, dtype)

    @tf.function
    def conv(a: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
        return tf.nn.conv2d(a, k, 1, "SAME")

    conv(x, kernel).numpy()  # trace and build the primitive outside the timing
    c0 = time.process_time()
    for _ in range(runs):
        conv(x, kernel).numpy()
    return runs * 2 * 8 * 28 * 28 * 9 * 512 * 512 / (time.process_time() - c0)


def gradcam_layers(model: ExplainModel) -> list[str]:
    """The notebook's three Grad-CAM layers (VGG16), else three spread over the depth."""
    if len(model.gradcam_layers) > 1:
        return list(model.gradcam_layers)
    return default_filter_layers(model.model, model.backbone)


def bench_gradcam(
    model: ExplainModel, faces: list[np.ndarray], layers: list[str], runs: int
) -> list[dict]:
    """One layer, then all ``layers`` at once; medians over runs alternating two faces."""
    fn = model.features()
    targets = [self_target(fn(f[None])) for f in faces]
    eager = {layer: eager_gradcam(model, layer) for layer in layers}
    rows = []
    for chosen in ([layers[-1]], layers):
        cam = GradCAM(model.model, chosen, model.spec)
        first = wall(lambda c=cam: c.explain_layers(faces[0][None], targets[0]))
        turn = iter(range(10**9))

        def ours(c=cam, t=turn) -> dict:
            k = next(t) % len(faces)
            return c.explain_layers(faces[k][None], targets[k])

        def notebook(t=turn, ch=chosen) -> dict:
            k = next(t) % len(faces)
            return {layer: eager[layer](faces[k], targets[k]) for layer in ch}

        notebook()  # build the layers' eager state outside the timing
        eager_s, ours_s = wall(notebook, runs), wall(ours, runs)
        ref = {layer: eager[layer](faces[0], targets[0]) for layer in chosen}
        got = cam.explain_layers(faces[0][None], targets[0])
        worst = min(
            correlation(cv2.resize(ref[layer], got[layer].shape[2:0:-1]), got[layer][0])
            for layer in chosen
        )
        task = f"Grad-CAM ({', '.join(chosen)})"
        rows += [
            {
                "task": task,
                "method": "notebook: eager GradientTape per layer",
                "seconds": eager_s,
                "speedup": 1.0,
            },
            {
                "task": task,
                "method": "explain: one tf.function pass for all layers",
                "seconds": ours_s,
                "speedup": eager_s / ours_s,
                "note": f"first call (tracing) {first:.2f} s; map correlation to eager "
                f"(worst layer) {worst:.4f}; {len(faces)} faces, same size, one trace",
            },
        ]
    return rows


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
    runners: dict[str, Callable[[], Any]] = {
        "float TF (Keras, batched 16)": lambda: model.features(16)
    }
    for fmt in ("tflite-int8", "onnx-int8"):
        if fmt not in model.bundle.formats:
            continue
        runtime = "LiteRT" if fmt.startswith("tflite") else "onnxruntime"
        # the whole grid for LiteRT (the edge default); onnxruntime at the most threads
        grid = (
            [(t, b) for t in args.threads for b in args.occlusion_batches]
            if fmt == "tflite-int8"
            else [(max(args.threads), 8)]
        )
        for threads, batch in grid:
            setting = f"{runtime}, {threads} thread{'s' * (threads > 1)}, batch {batch}"
            runners[f"{fmt} ({setting})"] = lambda f=fmt, t=threads, b=batch: embedder_features(
                Embedder(model.bundle, f, threads=t), b, incremental=False
            )
            if fmt == "tflite-int8":
                runners[f"{fmt} incremental ({setting})"] = lambda t=threads, b=batch: (
                    embedder_features(Embedder(model.bundle, "tflite-int8", threads=t), b)
                )
    float_map, maps = None, {}
    for label, make in runners.items():
        try:
            fn = make()
            target = self_target(fn(pixels[None]))
            occlusion = Occlusion(
                fn, patch=args.patch, stride=args.stride, batch_size=fn.batch_size
            )
            # warm-up with the batch shapes a map uses, so the timed map traces nothing new
            for size in {fn.batch_size, patches % fn.batch_size} - {0}:
                fn(np.repeat(pixels[None], size, axis=0))
            heatmap = None

            def one(o=occlusion, t=target) -> None:
                nonlocal heatmap
                heatmap = o.explain(pixels[None], t)[0]

            # incremental: a first map builds the stage interpreters (once per model)
            first = wall(one) if isinstance(fn, IncrementalFeatures) else None
            seconds = wall(one)
            float_map = heatmap if float_map is None else float_map
            maps[label] = heatmap
            note = f"map correlation to float TF {correlation(float_map, heatmap):.4f}"
            row = {
                "task": "occlusion map",
                "method": f"explain: {label}",
                "seconds": seconds,
                "speedup": base_s / seconds,
                "note": note,
            }
            if isinstance(fn, IncrementalFeatures):
                row.update(incremental_report(fn, heatmap, maps[label.replace(" incremental", "")]))
                row["note"] += f"; {row.pop('summary')}; first map {first:.2f} s"
            rows.append(row)
        except Exception as exc:  # one failing runtime is a row, not the end of the run
            rows.append(
                {"task": "occlusion map", "method": f"explain: {label}", "note": one_line(exc)}
            )
    if "tflite-int8" in model.bundle.formats and args.refine:
        rows.append(coarse_to_fine(args, model, pixels, base_s))
    return rows


def incremental_report(fn: IncrementalFeatures, heatmap: np.ndarray, plain: np.ndarray) -> dict:
    """How the incremental map compares with the plain INT8 one, and the work per stage."""
    runner = fn.backend.runner
    stages = []
    for work in runner.work:
        ops = runner.model.subgraphs[0].operators[work.stage.first : work.stage.stop]
        names = "+".join(sorted({op_name(runner.model, op) for op in ops}))
        stages.append(
            {"ops": names, "macs": macs(runner.model, work.stage), "fraction": work.fraction}
        )
    total = sum(s["macs"] for s in stages)
    share = sum(s["macs"] * s["fraction"] for s in stages) / total if total else 1.0
    same = "identical" if np.array_equal(heatmap, plain) else (
        f"max difference {np.abs(heatmap - plain).max():.3g}"
    )  # fmt: skip
    return {
        "macs_share": share,
        "stage_work": stages,
        "summary": f"map vs the plain INT8 row: {same}; {share:.0%} of the model's "
        f"{total / 1e9:.2f} G MACs per copy run",
    }


def coarse_to_fine(
    args: argparse.Namespace, model: ExplainModel, pixels: np.ndarray, base_s: float
) -> dict:
    """The INT8 map coarse-to-fine, with its agreement to the full INT8 map."""
    fn = embedder_features(Embedder(model.bundle, "tflite-int8", threads=max(args.threads)), 8)
    target = self_target(fn(pixels[None]))
    full = Occlusion(fn, args.patch, args.stride, batch_size=8)
    rough = Occlusion(fn, args.patch, args.stride, batch_size=8, refine=args.refine)
    full_map = full.explain(pixels[None], target)[0]
    seconds = wall(lambda: rough.explain(pixels[None], target))
    rough_map = rough.explain(pixels[None], target)[0]
    return {
        "task": "occlusion map",
        "method": f"explain: tflite-int8 incremental, coarse-to-fine, refine {args.refine} "
        f"({max(args.threads)} threads, batch 8)",
        "seconds": seconds,
        "speedup": base_s / seconds,
        "note": f"vs the full INT8 map: correlation {correlation(full_map, rough_map):.4f}, "
        f"Spearman {spearman(full_map, rough_map):.4f}, "
        f"top-10% IoU {top_iou(full_map, rough_map, 0.1):.3f}",
    }


def bench_filters(args: argparse.Namespace, model: ExplainModel) -> list[dict]:
    layers = args.filter_layers or default_filter_layers(model.model, model.backbone)
    filters = list(range(args.filters))
    task = f"filters ({len(layers)} layers x {len(filters)}, {args.steps} steps)"
    precisions = ["float32"] + (["bfloat16"] if fastest_safe_precision() == "bfloat16" else [])
    timed: dict[str, tuple[float, float]] = {}  # precision -> (wall s, CPU s)
    patterns: dict[str, list] = {}
    for precision in precisions:
        t0, c0 = time.perf_counter(), time.process_time()
        patterns[precision] = [
            maximize_filters(
                model.model, model.spec, layer, filters, steps=args.steps, precision=precision
            )
            for layer in progress(layers, f"explain filters {precision}")
        ]
        timed[precision] = (time.perf_counter() - t0, time.process_time() - c0)
    per_layer = args.baseline_filters or len(filters)
    t0, c0 = time.perf_counter(), time.process_time()
    for layer in progress(layers, "notebook filters"):
        sub = keras.Model(model.model.inputs, model.model.get_layer(layer).output)
        for index in filters[:per_layer]:
            notebook_filter(sub, index, tuple(model.model.input.shape[1:]), args.steps, 1.0)
    scale = len(filters) / per_layer
    baseline, baseline_cpu = (time.perf_counter() - t0) * scale, (time.process_time() - c0) * scale
    # the arithmetic explain cannot avoid: per filter, forward + backward each step, and
    # the two float32 measurements (start, final); the rate it ran at says how close to
    # the CPU's peak it is, whatever else shared the machine
    flops = (
        sum(LayerActivation(model.model, layer, filters, "float32").flops for layer in layers)
        * len(filters)
        * (2 * args.steps + 2)
    )
    note = f"CPU {baseline_cpu:.0f} s"
    if per_layer < len(filters):
        note = f"{per_layer} of {len(filters)} per layer run and scaled; {note}"
    rows = [
        {
            "task": task,
            "method": "notebook: one filter at a time, eager",
            "seconds": baseline,
            "cpu_seconds": baseline_cpu,
            "speedup": 1.0,
            "note": note,
        }
    ]
    for precision, (seconds, cpu) in timed.items():
        row = {
            "task": task,
            "method": f"explain: one compiled batch per layer, cut at it, {precision}",
            "seconds": seconds,
            "cpu_seconds": cpu,
            "speedup": baseline / seconds,
            "tflop": flops / 1e12,
        }
        rate = flops / cpu
        row["rate_of_lone_conv"] = rate / conv_rate(precision)
        cost = (
            f"CPU {cpu:.0f} s ({baseline_cpu / cpu:.1f}x less than the notebook's) for "
            f"{flops / 1e12:.1f} TFLOP of kernels: {rate / 1e9:.0f} GFLOP per CPU-second, "
            f"{row['rate_of_lone_conv']:.0%} of a lone {precision} convolution's"
        )
        row["note"] = f"{cost}; {', '.join(layers)}"
        if precision != "float32":
            agree = [
                pattern_agreement(model.model, model.spec, ref, low)
                for ref, low in zip(patterns["float32"], patterns[precision], strict=True)
            ]
            row["agreement"] = dict(zip(layers, agree, strict=True))
            auto = [
                layer
                for layer in layers
                if ascent_precision(LayerActivation(model.model, layer, [0], "float32").network)
                == precision
            ]
            row["note"] = (
                f"{cost}; --precision auto runs it at: "
                f"{', '.join(auto) or 'none of these layers'}; "
                f"vs float32: pattern SSIM min {min(a['ssim_min'] for a in agree):.3f} / mean "
                f"{np.mean([a['ssim_mean'] for a in agree]):.3f}; top-3 filters same in "
                f"{sum(a['top3_same'] for a in agree)}/{len(agree)} layers; strongest filter "
                f"same for {np.mean([a['strongest_filter_agreement'] for a in agree]):.0%} "
                f"of patterns; final activations differ by at most "
                f"{max(a['activation_deviation'] for a in agree):.1%} of the largest"
            )
        rows.append(row)
    return rows


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


def default_images() -> list[Path]:
    """The two photos of the first LFW devtest pair."""
    pairs = LFW / "pairs_devtest.csv"
    if not pairs.is_file():
        raise FacelensError(f"no --images given and {pairs} is missing: pass --images PHOTO ...")
    first = pairs.read_text().splitlines()[1].split(",")
    return [LFW / "images" / first[0], LFW / "images" / first[1]]


def positive_ints(text: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``."""
    try:
        values = [int(part) for part in text.split(",")]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give positive integers, e.g. 1,8,32")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = new_parser(__doc__, "model bundle folder (needs model_float.keras)")
    parser.add_argument(
        "--images",
        nargs="+",
        type=Path,
        help="face photos: the first is timed everywhere, all of them (same size once cut) "
        "take turns in Grad-CAM (default: the first LFW devtest pair)",
    )
    parser.add_argument(
        "--layers", nargs="+", help="Grad-CAM layers (default: the notebook's three for VGG16)"
    )
    parser.add_argument("--runs", type=int, default=6, help="runs per Grad-CAM timing (default 6)")
    parser.add_argument("--patch", type=int, default=25, help="occlusion patch px (default 25)")
    parser.add_argument("--stride", type=int, default=14, help="occlusion stride px (default 14)")
    parser.add_argument(
        "--baseline-patches",
        type=int,
        help="run only N of the notebook's predicts and scale (default: all)",
    )
    parser.add_argument(
        "--refine",
        type=float,
        default=0.25,
        help="coarse-to-fine INT8 map: fraction of the fine patches run (default 0.25; 0: skip)",
    )
    parser.add_argument("--filter-layers", nargs="+", help="layers to visualise (default: three)")
    parser.add_argument("--filters", type=int, default=8, help="filters per layer (default 8)")
    parser.add_argument("--steps", type=int, default=30, help="gradient-ascent steps (default 30)")
    parser.add_argument(
        "--baseline-filters", type=int, help="run only N filters per layer one at a time and scale"
    )
    parser.add_argument(
        "--threads",
        type=parse_threads,
        default=[1, 2],
        help="INT8 runtime threads to measure, e.g. 1,2,all (default 1,2)",
    )
    parser.add_argument(
        "--occlusion-batches",
        type=positive_ints,
        default=[1, 8, 32],
        help="occluded images per INT8 runtime call to measure (default 1,8,32)",
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
    images = args.images or default_images()
    loader = FaceLoader(model.spec, detector=create_detector(args.detector))
    faces = [loader.load(image).pixels for image in images]
    pixels = faces[0]
    rows: list[dict] = []
    if "gradcam" not in args.skip:
        rows += bench_gradcam(model, faces, args.layers or gradcam_layers(model), args.runs)
    if "occlusion" not in args.skip:
        rows += bench_occlusion(args, model, pixels)
    if "filters" not in args.skip:
        rows += bench_filters(args, model)
    print(markdown_table(rows, COLUMNS))
    print(
        f"\nimages: {', '.join(map(str, images))}; speed-up = the notebook method's seconds"
        " / explain's, both measured in this process, in this run."
    )
    dest = out_dir(args, "explain")
    write_json(
        dest / "explain.json",
        {
            "bundle": str(args.bundle),
            "model": model.source_record(),
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
