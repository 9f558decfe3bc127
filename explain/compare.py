"""Does the quantized model still look where the float model looks?

For each face: occlusion maps from the float Keras model and from every quantized
artifact (each explaining its own embedding: the target is the cosine to the
model's own unoccluded embedding), a float Grad-CAM reference, and per quantized
artifact: Spearman, SSIM and top-10 % IoU against the float occlusion map, the
deletion / insertion AUC of every map on its own model, the embedding cosine
float vs quantized, and the wall time of one occlusion map.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.base.errors import BundleError
from edge.model.bundle import RUNTIME_FORMATS, Bundle
from edge.model.embedder import Embedder
from explain.base import FeatureFn, embedder_features
from explain.crops import FaceCrop
from explain.gradcam import GradCAM
from explain.metrics import cosine, deletion_insertion, spearman, ssim, top_iou
from explain.models import ExplainModel
from explain.occlusion import Occlusion
from explain.targets import Target, self_target

QUANTIZED_DEFAULT = ("tflite-int8", "onnx-int8")
AGREEMENT = ("spearman", "ssim", "top10_iou", "embedding_cosine")


@dataclass
class CompareSettings:
    """Occlusion and faithfulness parameters shared by every model."""

    patch: int = 25
    stride: int = 14
    fill: float = 128.0
    deletion_steps: int = 16
    threads: int | None = 2
    batch_size: int = 32
    incremental: bool = True  # INT8 TFLite: occluded copies run only where the patch reaches


def quantized_formats(bundle: Bundle, formats: list[str] | None) -> list[str]:
    """The artifacts to check: the INT8 ones by default, or the user's list (validated)."""
    if formats is None:
        chosen = [f for f in QUANTIZED_DEFAULT if f in bundle.formats]
        if not chosen:
            raise BundleError(
                f"bundle {bundle.path} has no INT8 artifact ({', '.join(QUANTIZED_DEFAULT)});"
                " pass --formats with one it has"
            )
        return chosen
    for f in formats:
        if f not in RUNTIME_FORMATS:
            raise BundleError(
                f"format {f!r} is not an edge format: use {', '.join(RUNTIME_FORMATS)}"
            )
        bundle.artifact(f)  # raises with the list of formats the bundle has
    return list(formats)


class Comparer:
    """Holds the loaded models; :meth:`face` compares one face crop."""

    def __init__(
        self,
        model: ExplainModel,
        formats: list[str] | None = None,
        settings: CompareSettings | None = None,
    ) -> None:
        if model.bundle is None:
            raise BundleError("compare needs a bundle (--bundle DIR) with quantized artifacts")
        self.model = model
        self.settings = settings or CompareSettings()
        self.formats = quantized_formats(model.bundle, formats)
        layer = model.gradcam_layers[-1] if model.gradcam_layers else None
        self.gradcam = GradCAM(model.model, layer, model.spec) if layer else None
        self.features: dict[str, FeatureFn] = {"float": model.features()}
        for f in self.formats:
            embedder = Embedder(model.bundle, f, threads=self.settings.threads)
            self.features[f] = embedder_features(embedder, incremental=self.settings.incremental)

    def _occlusion(self, fmt: str, crop: FaceCrop) -> tuple[np.ndarray, Target, float, np.ndarray]:
        """(map, target, milliseconds, clean embedding) of one model on one face."""
        s = self.settings
        fn = self.features[fmt]
        clean = fn(crop.pixels[None])
        target = self_target(clean)
        occ = Occlusion(fn, s.patch, s.stride, s.fill, s.batch_size)
        start = time.perf_counter()
        heatmap = occ.explain(crop.pixels[None], target)[0]
        return heatmap, target, (time.perf_counter() - start) * 1000, clean[0]

    def face(self, crop: FaceCrop) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Maps (by row title) and numbers for one face."""
        s = self.settings
        maps: dict[str, np.ndarray] = {}
        float_map, float_target, float_ms, float_emb = self._occlusion("float", crop)
        faith = {"float": self._faithfulness(crop, float_map, "float", float_target)}
        result: dict[str, Any] = {"image": crop.source, "float_occlusion_ms": round(float_ms, 1)}
        if self.gradcam is not None:
            cam = self.gradcam.explain(crop.pixels[None], float_target)[0]
            maps[f"float Grad-CAM ({self.gradcam.layer})"] = cam
            faith["float_gradcam"] = self._faithfulness(crop, cam, "float", float_target)
            result["gradcam_vs_occlusion_spearman"] = spearman(cam, float_map)
        maps["float occlusion"] = float_map
        per_format = {}
        for f in self.formats:
            q_map, q_target, q_ms, q_emb = self._occlusion(f, crop)
            maps[f"{f} occlusion"] = q_map
            faith[f] = self._faithfulness(crop, q_map, f, q_target)
            per_format[f] = {
                "spearman": spearman(float_map, q_map),
                "ssim": ssim(float_map, q_map),
                "top10_iou": top_iou(float_map, q_map, 0.1),
                "embedding_cosine": cosine(float_emb, q_emb),
                "occlusion_ms": round(q_ms, 1),
            }
        result["formats"] = per_format
        result["faithfulness"] = faith
        result["settings"] = {"patch": s.patch, "stride": s.stride, "fill": s.fill}
        return maps, result

    def _faithfulness(
        self, crop: FaceCrop, heatmap: np.ndarray, fmt: str, target: Target
    ) -> dict[str, float]:
        s = self.settings
        return deletion_insertion(
            crop.pixels, heatmap, self.features[fmt], target, s.deletion_steps, s.fill
        )


def different_faces_baseline(float_maps: list[np.ndarray]) -> dict[str, float] | None:
    """Agreement between float maps of *different* faces (each with the next): what
    "unrelated maps" score on these metrics, to read the float-vs-quantized numbers against."""
    if len(float_maps) < 2:
        return None
    pairs = list(zip(float_maps, float_maps[1:] + float_maps[:1], strict=True))
    return {
        "spearman": float(np.mean([spearman(a, b) for a, b in pairs])),
        "ssim": float(np.mean([ssim(a, b) for a, b in pairs])),
        "top10_iou": float(np.mean([top_iou(a, b, 0.1) for a, b in pairs])),
    }


def aggregate(
    results: list[dict[str, Any]], formats: list[str], float_maps: list[np.ndarray] | None = None
) -> dict[str, Any]:
    """Mean and worst (lowest) of each agreement number per format, mean faithfulness, and
    the different-faces baseline when the float maps are given."""
    summary: dict[str, Any] = {"images": len(results), "formats": {}}
    summary["baseline_different_faces"] = different_faces_baseline(float_maps or [])
    for f in formats:
        rows = [r["formats"][f] for r in results]
        entry: dict[str, Any] = {}
        for key in AGREEMENT:
            values = np.array([row[key] for row in rows], float)
            entry[key] = {"mean": float(values.mean()), "worst": float(values.min())}
        entry["occlusion_ms"] = {"mean": float(np.mean([row["occlusion_ms"] for row in rows]))}
        summary["formats"][f] = entry
    faith_keys = results[0]["faithfulness"].keys() if results else []
    summary["faithfulness"] = {
        k: {
            m: float(np.mean([r["faithfulness"][k][m] for r in results]))
            for m in ("deletion_auc", "insertion_auc")
        }
        for k in faith_keys
    }
    summary["float_occlusion_ms"] = (
        float(np.mean([r["float_occlusion_ms"] for r in results])) if results else None
    )
    return summary


def failures(summary: dict[str, Any], floors: dict[str, float | None]) -> list[str]:
    """Formats whose worst per-image value of a metric is below its floor (empty = pass).

    ``floors`` maps an agreement metric (``spearman``, ``top10_iou``, ...) to its floor;
    a ``None`` floor is not checked.
    """
    return [
        f"{f}: worst {metric} {entry[metric]['worst']:.3f} < {floor}"
        for f, entry in summary["formats"].items()
        for metric, floor in floors.items()
        if floor is not None and entry[metric]["worst"] < floor
    ]


def report_markdown(summary: dict[str, Any], results: list[dict], title: str) -> str:
    """The human-readable report: aggregate table, faithfulness, then one line per image."""
    lines = [f"# {title}", "", f"{summary['images']} faces.", ""]
    lines += ["| format | metric | mean | worst |", "|---|---|---|---|"]
    for f, entry in summary["formats"].items():
        for key in AGREEMENT:
            lines.append(f"| {f} | {key} | {entry[key]['mean']:.3f} | {entry[key]['worst']:.3f} |")
        lines.append(f"| {f} | occlusion map ms | {entry['occlusion_ms']['mean']:.0f} | |")
    if summary.get("float_occlusion_ms") is not None:
        lines.append(
            f"| float (Keras) | occlusion map ms | {summary['float_occlusion_ms']:.0f} | |"
        )
    base = summary.get("baseline_different_faces")
    if base:
        lines += [
            "",
            "Baseline, float maps of *different* faces (each with the next): "
            f"Spearman {base['spearman']:.3f}, SSIM {base['ssim']:.3f}, "
            f"top-10% IoU {base['top10_iou']:.3f}.",
        ]
    lines += ["", "Faithfulness on each map's own model (deletion: lower is better; insertion:"]
    lines += ["higher is better):", "", "| map | deletion AUC | insertion AUC |", "|---|---|---|"]
    for k, v in summary["faithfulness"].items():
        lines.append(f"| {k} | {v['deletion_auc']:.3f} | {v['insertion_auc']:.3f} |")
    lines += ["", "| image | format | Spearman | SSIM | top-10% IoU | emb. cosine |"]
    lines += ["|---|---|---|---|---|---|"]
    for r in results:
        for f, m in r["formats"].items():
            lines.append(
                f"| {r['image']} | {f} | {m['spearman']:.3f} | {m['ssim']:.3f} | "
                f"{m['top10_iou']:.3f} | {m['embedding_cosine']:.4f} |"
            )
    return "\n".join(lines) + "\n"
