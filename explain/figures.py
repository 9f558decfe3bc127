"""PNG figures: heatmap overlays with colour bars and titles, filter grids, mask examples."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np

from explain.crops import FaceCrop


def _rgb(pixels: np.ndarray) -> np.ndarray:
    return np.clip(pixels[..., ::-1], 0, 255).astype(np.uint8)


def _overlay(ax, fig, crop: FaceCrop, heatmap: np.ndarray, title: str, label: str) -> None:
    ax.imshow(_rgb(crop.pixels))
    im = ax.imshow(heatmap, cmap="jet", alpha=0.45)
    if crop.landmarks is not None:
        ax.scatter(*crop.landmarks.T, s=8, c="white", edgecolors="black", linewidths=0.5)
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04).set_label(label, fontsize=8)


def _save(fig, path: Path, suptitle: str) -> Path:
    fig.suptitle(suptitle, fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def heatmap_row(
    path: Path, crop: FaceCrop, maps: dict[str, np.ndarray], title: str, label: str
) -> Path:
    """The face, then one overlay per map (e.g. Grad-CAM at three layers), side by side."""
    fig, axes = plt.subplots(
        1, len(maps) + 1, figsize=(3.6 * (len(maps) + 1), 3.6), layout="constrained"
    )
    axes[0].imshow(_rgb(crop.pixels))
    axes[0].set_title(Path(crop.source).name, fontsize=9)
    axes[0].axis("off")
    for ax, (name, heatmap) in zip(axes[1:], maps.items(), strict=True):
        _overlay(ax, fig, crop, heatmap, name, label)
    return _save(fig, path, title)


def models_row(path: Path, panels: list[tuple[FaceCrop, np.ndarray, str]], title: str) -> Path:
    """One overlay per model, each on that model's own crop of the same photo."""
    fig, axes = plt.subplots(
        1, len(panels), figsize=(4.0 * len(panels), 3.9), squeeze=False, layout="constrained"
    )
    for ax, (crop, heatmap, text) in zip(axes[0], panels, strict=True):
        _overlay(ax, fig, crop, heatmap, text, "Grad-CAM (max = 1)")
    return _save(fig, path, title)


def compare_figure(
    path: Path, crop: FaceCrop, maps: dict[str, np.ndarray], notes: dict[str, str], title: str
) -> Path:
    """One row per map (float Grad-CAM, float occlusion, each quantized occlusion)."""
    fig, axes = plt.subplots(len(maps), 1, figsize=(4.4, 3.8 * len(maps)), layout="constrained")
    for ax, (name, heatmap) in zip(np.atleast_1d(axes), maps.items(), strict=True):
        label = "Grad-CAM (max = 1)" if "Grad-CAM" in name else "drop in cosine"
        text = f"{name}\n{notes[name]}" if notes.get(name) else name
        _overlay(ax, fig, crop, heatmap, text, label)
    return _save(fig, path, title)


def regions_figure(
    path: Path,
    crop: FaceCrop,
    heatmap: np.ndarray,
    masks: dict[str, np.ndarray],
    scores: dict[str, float | None],
    title: str,
    label: str,
) -> Path:
    """The heatmap with each landmark region outlined and its mean score."""
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.8), layout="constrained")
    _overlay(axes[0], fig, crop, heatmap, "heatmap", label)
    axes[1].imshow(_rgb(crop.pixels))
    colours = plt.cm.tab10(np.arange(len(masks)))
    for (name, mask), colour in zip(masks.items(), colours, strict=True):
        if mask.any():
            axes[1].contour(mask, levels=[0.5], colors=[colour], linewidths=1.5)
            ys, xs = np.nonzero(mask)
            score = scores[name]
            axes[1].text(
                xs.mean(),
                ys.mean(),
                f"{name}\n{score:.3g}",
                color="white",
                fontsize=7,
                ha="center",
                va="center",
                bbox={"facecolor": colour, "alpha": 0.7, "pad": 1},
            )
    axes[1].set_title("mean heatmap per region", fontsize=9)
    axes[1].axis("off")
    return _save(fig, path, title)


def filters_figure(path: Path, layers: dict[str, tuple[np.ndarray, list[int], dict]], title: str):
    """Rows = layers, columns = filters; each row titled with its layer's statistics."""
    cols = max(len(f) for _, f, _ in layers.values())
    fig = plt.figure(figsize=(1.6 * cols, 2.1 * len(layers)), layout="constrained")
    for sub, (layer, (patterns, filters, stats)) in zip(
        np.atleast_1d(fig.subfigures(len(layers), 1)), layers.items(), strict=True
    ):
        sub.suptitle(
            f"{layer}: entropy {stats['entropy']:.2f} bits, mean |r| "
            f"{stats['mean_abs_correlation']:.2f}, "
            f"spatial variance {stats['spatial_variance']:.3g} px²",
            fontsize=9,
        )
        for c, ax in enumerate(np.atleast_1d(sub.subplots(1, cols))):
            ax.axis("off")
            if c < len(filters):
                ax.imshow(_rgb(patterns[c].astype(np.float32)))
                ax.set_title(f"filter {filters[c]}", fontsize=7)
    return _save(fig, path, title)


def masks_figure(path: Path, crops: dict[str, FaceCrop], notes: dict[str, str], title: str):
    """The same probe under each mask, with its similarity to the enrolled photo."""
    fig, axes = plt.subplots(1, len(crops), figsize=(2.6 * len(crops), 3.2), layout="constrained")
    for ax, (mask, crop) in zip(np.atleast_1d(axes), crops.items(), strict=True):
        ax.imshow(_rgb(crop.pixels))
        ax.set_title(f"{mask}\n{notes.get(mask, '')}", fontsize=8)
        ax.axis("off")
    return _save(fig, path, title)


def occlusion_grid(path: Path, crops: list[FaceCrop], maps: list[np.ndarray], title: str, label):
    """Several faces, one overlay each (for occlusion over many images)."""
    n = len(crops)
    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.6), squeeze=False, layout="constrained")
    for ax, crop, heatmap in zip(axes[0], crops, maps, strict=True):
        _overlay(ax, fig, crop, heatmap, Path(crop.source).name, label)
    return _save(fig, path, title)
