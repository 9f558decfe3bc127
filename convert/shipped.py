"""Measure, once, what ``edge models install dlib-resnet`` needs to build its bundle offline.

On a workstation with LFW: the float graph (read from the ``.dat`` by ``edge``, written
as float ONNX) runs on the calibration faces convert would use, and every activation's
(min, max) is recorded; the INT8 TFLite and ONNX files ``edge`` then writes from those
ranges are run in their runtimes on held-out faces against the float graph (fidelity),
and the threshold is chosen on the float features as ``convert`` does. All of it goes,
as numbers and sha256 sums, into ``edge/model/shipped/dlib-resnet.json``; a device that
writes byte-identical files carries these measurements over.

    uv run python -m convert.shipped --calibration ../shared/data/lfw/images \\
        --detector ../shared/models/yunet/face_detection_yunet_2023mar.onnx
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from convert.calibration_set import calibration_and_eval
from convert.fidelity import artifact_features, cosine_stats
from convert.threshold import choose_threshold
from edge.base.assets import sha256_file
from edge.model import int8, shipped
from edge.model.bundle import ARTIFACT_FILES
from edge.model.dlib_file import find_model_file, read_dlib_net
from edge.model.dlib_graph import face_resnet, input_spec
from edge.model.write_onnx import write_onnx

MIN_COSINE = 0.98  # convert's default floor


def measure_ranges(float_onnx: bytes, keys: list[str], batch: np.ndarray) -> dict[str, list]:
    """(min, max) of each named tensor over ``batch``, through onnxruntime."""
    session = ort.InferenceSession(float_onnx, providers=["CPUExecutionProvider"])
    lo = dict.fromkeys(keys, np.inf)
    hi = dict.fromkeys(keys, -np.inf)
    for i in range(0, len(batch), 16):
        outs = session.run(keys, {"input": batch[i : i + 16]})
        for key, value in zip(keys, outs, strict=True):
            lo[key], hi[key] = min(lo[key], float(value.min())), max(hi[key], float(value.max()))
    return {k: [lo[k], hi[k]] for k in keys}


def measure(calibration: Path, detector: Path | None, count: int, eval_count: int) -> dict:
    """The record ``edge models install dlib-resnet`` reads (see the module docstring)."""
    weights = find_model_file()
    net = read_dlib_net(weights)
    graph, spec = face_resnet(net, weights), input_spec(net)
    cal, held = calibration_and_eval(calibration, spec, count, None, eval_count, 0, True, detector)
    keys = int8.range_keys(graph)
    measured = measure_ranges(write_onnx(graph, extra_outputs=keys), keys, cal.batch)
    # the numbers as stored: the device quantizes from exactly these
    ranges = {k: [round(v, 6) for v in r] for k, r in measured.items()}
    session = ort.InferenceSession(write_onnx(graph), providers=["CPUExecutionProvider"])
    reference = session.run(None, {"input": held.batch})[0]
    artifacts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in shipped.DLIB_FORMATS:
            path = Path(tmp) / ARTIFACT_FILES[fmt]
            path.write_bytes(shipped.write_artifact(fmt, graph, ranges))
            stats = cosine_stats(reference, artifact_features(fmt, path, held.batch))
            artifacts[fmt] = {
                "sha256": sha256_file(path),
                "fidelity": {
                    **stats,
                    "passed": stats["cosine_min"] >= MIN_COSINE,
                    "floor": MIN_COSINE,
                    "runtime": "litert" if fmt.startswith("tflite") else "onnxruntime",
                    "eval_count": len(held),
                },
            }
    loss = net.loss["distance_threshold"]
    return {
        "weights_sha256": sha256_file(weights),
        "ranges": ranges,
        "artifacts": artifacts,
        "threshold": choose_threshold(reference, held.identities, loss).to_dict(),
        "calibration": cal.describe().to_dict() | {"shuffle_seed": 0},
        "eval": held.describe().to_dict(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convert.shipped", description=__doc__)
    parser.add_argument("--calibration", type=Path, required=True, help="faces, one folder each")
    parser.add_argument("--detector", type=Path, help="YuNet .onnx file")
    parser.add_argument("--count", type=int, default=200, help="calibration faces")
    parser.add_argument("--eval-count", type=int, default=100, help="held-out faces")
    parser.add_argument("--out", type=Path, default=shipped.record_path("dlib-resnet"))
    args = parser.parse_args(argv)
    record = measure(args.calibration, args.detector, args.count, args.eval_count)
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    for fmt, a in record["artifacts"].items():
        f = a["fidelity"]
        print(f"{fmt}: cosine to float mean {f['cosine_mean']:.4f} min {f['cosine_min']:.4f}")
    print(f"threshold {record['threshold']['cosine']}; written {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
