"""Figures: overlays in a fixed palette, image/truth/prediction grids, error maps, training curves, optical flow.

Images are uint8 ``(H, W, 3)`` arrays; masks are ``(H, W)`` arrays of class ids (0 = background).
Every function returns the matplotlib figure so a notebook can save it.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.patches import Patch
from torchvision.utils import flow_to_image

# A fixed palette, so class k has the same colour in every figure of the course.
# Index 0 (background) is black; then a colour-blind-friendly set (Okabe-Ito), then tab20.
PALETTE = np.array(
    [(0, 0, 0), (0, 158, 115), (230, 159, 0), (86, 180, 233), (204, 121, 167), (240, 228, 66),
     (0, 114, 178), (213, 94, 0)]
    + [tuple(int(255 * c) for c in plt.cm.tab20(i)[:3]) for i in range(20)], dtype=np.uint8)

# error map colours: what the model got wrong, and how
ERROR_COLORS = {"true positive": (200, 200, 200), "false positive": (230, 159, 0),
                "false negative": (0, 114, 178)}

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_numpy_image(image, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """A normalised ``(3, H, W)`` tensor back to a uint8 ``(H, W, 3)`` picture; arrays pass through."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        return image
    image = torch.as_tensor(image).detach().float().cpu()
    if image.ndim == 3 and image.shape[0] in (1, 3):
        image = image.permute(1, 2, 0)
    image = image * torch.tensor(std) + torch.tensor(mean)
    return (image.clamp(0, 1) * 255).round().byte().numpy()


def colorize(mask, palette=PALETTE) -> np.ndarray:
    """Class ids ``(H, W)`` to an RGB picture; ids outside the palette (ignore labels) are black."""
    mask = np.asarray(mask).astype(np.int64)
    palette = np.asarray(palette, dtype=np.uint8)
    return np.where((mask < len(palette))[..., None], palette[mask.clip(0, len(palette) - 1)], 0).astype(np.uint8)


def overlay(image, mask, alpha: float = 0.5, palette=PALETTE, skip_zero: bool = True) -> np.ndarray:
    """Blend the palette colours of ``mask`` over ``image``. With ``skip_zero`` (binary masks, where
    0 is background) class 0 stays untouched; for class maps pass ``skip_zero=False``."""
    image = to_numpy_image(image).astype(np.float32)
    mask = np.asarray(mask).astype(np.int64)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} differs from image shape {image.shape[:2]}")
    colour = colorize(mask, palette).astype(np.float32)
    painted = (mask > 0) if skip_zero else (mask < len(palette))
    blended = np.where(painted[..., None], (1 - alpha) * image + alpha * colour, image)
    return blended.round().astype(np.uint8)


def draw_instances(ax: plt.Axes, image, masks, boxes=None, scores=None, alpha: float = 0.5,
                   palette=PALETTE) -> plt.Axes:
    """One image with its instances (instance segmentation: each object its own colour, not a class
    colour): mask ``k`` of ``masks`` ``(N, H, W)`` is blended in palette colour ``1 + k`` (cycling), its
    box ``(x1, y1, x2, y2)`` outlined in the same colour, and its score written on the box. Masks may be
    probabilities (drawn where > 0.5, as they are scored)."""
    picture = to_numpy_image(image).astype(np.float32)
    masks = np.asarray(masks.cpu() if isinstance(masks, torch.Tensor) else masks)
    masks = masks.reshape(-1, *masks.shape[-2:]) > (0.5 if masks.dtype.kind == "f" else 0)
    colours = [np.asarray(palette[1 + k % (len(palette) - 1)], dtype=np.float32) for k in range(len(masks))]
    for mask, colour in zip(masks, colours):
        picture[mask] = (1 - alpha) * picture[mask] + alpha * colour
    ax.imshow(picture.round().astype(np.uint8))
    boxes = [] if boxes is None else np.asarray(boxes.cpu() if isinstance(boxes, torch.Tensor) else boxes)
    for k, (x1, y1, x2, y2) in enumerate(boxes):
        colour = colours[k] / 255 if k < len(colours) else np.asarray(palette[1 + k % (len(palette) - 1)]) / 255
        ax.add_patch(plt.Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=colour, linewidth=1.5))
        if scores is not None:
            ax.text(x1, y1, f"{float(scores[k]):.2f}", color="white", fontsize=7, va="bottom",
                    bbox={"facecolor": colour, "edgecolor": "none", "pad": 1})
    ax.set_axis_off()
    return ax


def panoptic_rgb(id_map, segments_info: Sequence[dict], class_colours: dict[int, Sequence[int]]) -> np.ndarray:
    """A panoptic map ``(H, W)`` of segment ids (0 = void, black) drawn with one colour per segment:
    a stuff segment in its class colour, the instances of a thing class in shades of that colour
    (lighter and darker in turn), so that both the class and the separate objects show; a crowd region
    (``iscrowd`` 1: many objects labelled as one) in its class colour with dark diagonal stripes, since it is
    not one object. ``segments_info``: dicts with ``id`` and ``category_id``; ``class_colours``: category -> RGB."""
    id_map = np.asarray(id_map)
    out = np.zeros((*id_map.shape, 3), np.uint8)
    ys, xs = np.indices(id_map.shape)
    stripes = (ys + xs) // 3 % 2 == 0
    shade_of: dict[int, int] = {}
    for segment in sorted(segments_info, key=lambda s: s["id"]):
        category = segment["category_id"]
        if category not in class_colours:
            raise KeyError(f"segment {segment['id']} has category {category}, which class_colours lacks")
        colour = np.asarray(class_colours[category], dtype=np.float32)
        if segment.get("iscrowd", 0):
            inside = id_map == segment["id"]
            out[inside] = colour.round().astype(np.uint8)
            out[inside & stripes] = (colour * 0.55).round().astype(np.uint8)
            continue
        k = shade_of.get(category, 0)
        shade_of[category] = k + 1
        if segment.get("isthing", True) and k:  # 2nd, 3rd... instance: alternately lighter and darker, 4 steps
            step = 0.15 * (1 + (k - 1) // 2 % 4)  # at most 60 % of the way: never white, never void's black
            colour = colour + (255 - colour) * step if k % 2 else colour * (1 - step)
        out[id_map == segment["id"]] = colour.clip(0, 255).round().astype(np.uint8)
    return out


def error_map(pred, truth) -> np.ndarray:
    """RGB picture of a binary prediction against the truth: hits grey, false positives orange,
    false negatives blue, correct background black."""
    pred, truth = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    out = np.zeros((*truth.shape, 3), np.uint8)
    out[pred & truth] = ERROR_COLORS["true positive"]
    out[pred & ~truth] = ERROR_COLORS["false positive"]
    out[~pred & truth] = ERROR_COLORS["false negative"]
    return out


CLASS_ERROR_COLORS = {"right": (200, 200, 200), "wrong": (230, 159, 0), "ignored": (0, 0, 0)}


def class_error_map(pred, truth, ignore_index: int) -> np.ndarray:
    """RGB picture of a class map against the truth: right grey, wrong orange, ignored pixels black."""
    pred, truth = np.asarray(pred), np.asarray(truth)
    out = np.zeros((*truth.shape, 3), np.uint8)
    valid = truth != ignore_index
    out[valid & (pred == truth)] = CLASS_ERROR_COLORS["right"]
    out[valid & (pred != truth)] = CLASS_ERROR_COLORS["wrong"]
    return out


def show_predictions(images, truths, preds=None, titles: Sequence[str] | None = None, max_rows: int = 6,
                     class_names: Sequence[str] | None = None, palette=PALETTE,
                     ignore_index: int | None = None, mask_label: str | None = None) -> plt.Figure:
    """One row per sample: image | truth | (prediction | error map).

    Binary masks by default, drawn as overlays on the image. For class maps pass ``class_names``:
    truth and prediction are then drawn in the palette's own colours, unblended, so that they match
    the legend's swatches exactly (the image column shows the frame); with ``ignore_index`` ignored
    pixels are black and errors become right/wrong. ``mask_label`` names a binary mask's colour in
    the legend ("polyp")."""
    n = min(len(images), max_rows)
    columns = ["image", "truth"] + (["prediction", "errors"] if preds is not None else [])
    first = to_numpy_image(images[0])
    panel_width = 3.2  # inches; rows take the images' own aspect, so no blank band is left between them
    width = panel_width * len(columns) + (0.4 if titles is not None else 0)  # room for the row labels
    height = n * (panel_width * first.shape[0] / first.shape[1] + 0.15) + 0.35  # and the column titles
    fig, axes = plt.subplots(n, len(columns), figsize=(width, height), squeeze=False)
    class_maps = class_names is not None

    def draw(image, mask):
        return colorize(mask, palette) if class_maps else overlay(image, mask, palette=palette)

    for row in range(n):
        image = to_numpy_image(images[row])
        panels = [image, draw(image, truths[row])]
        if preds is not None:
            errors = (error_map(preds[row], truths[row]) if ignore_index is None
                      else class_error_map(preds[row], truths[row], ignore_index))
            panels += [draw(image, preds[row]), errors]
        for col, panel in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(panel)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(columns[col])
        if titles is not None:
            axes[row, 0].set_ylabel(titles[row], fontsize=9)
    legend = {}
    if mask_label is not None and not class_maps:
        legend[f"{mask_label} (drawn at 50 % over the image)"] = palette[1]
    if class_maps:
        legend.update({name: palette[i] for i, name in enumerate(class_names)})
        if ignore_index is not None:
            legend["ignored"] = CLASS_ERROR_COLORS["ignored"]
    if preds is not None:
        legend.update(ERROR_COLORS if ignore_index is None else CLASS_ERROR_COLORS)
    if legend:
        add_legend(fig, legend)
    else:
        fig.tight_layout()
    return fig


def add_legend(fig: plt.Figure, colours: dict, ncol: int = 8, fontsize: int = 8):
    """Colour swatches (``{label: (r, g, b)}``, 0-255) in rows under the panels. The legend is
    measured once drawn, and the panels are laid out in the space above it, with no gap."""
    handles = [Patch(facecolor=np.asarray(c) / 255, edgecolor="0.5", label=k) for k, c in colours.items()]
    entry_width = 0.45 + 0.075 * fontsize / 8 * max(len(str(k)) for k in colours)  # inches: swatch and label
    fits = max(1, int(fig.get_figwidth() / entry_width))  # no more columns than the figure is wide
    legend = fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), ncol, fits), frameon=False,
                        fontsize=fontsize)
    height = legend.get_window_extent(fig.canvas.get_renderer()).height / (fig.dpi * fig.get_figheight())
    fig.tight_layout(rect=(0, min(height + 0.01, 0.5), 1, 1))
    return legend


def plot_confusion_matrix(cm, class_names: Sequence[str], normalize: bool = True) -> plt.Figure:
    """The confusion matrix (rows = truth) as a heat map; normalised per row, each row shows where
    the pixels of one true class went (the diagonal is that class's recall)."""
    cm = np.asarray(cm, dtype=np.float64)
    values = cm / np.maximum(cm.sum(1, keepdims=True), 1) if normalize else cm
    n = len(class_names)
    fig, ax = plt.subplots(figsize=(0.55 * n + 2.5, 0.55 * n + 2))
    im = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(n), class_names, rotation=60, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted", ylabel="true")
    if n <= 20:
        for t in range(n):
            for p in range(n):
                if values[t, p] >= 0.01:
                    ax.text(p, t, f"{values[t, p]:.2f}" if normalize else f"{int(values[t, p])}", ha="center",
                            va="center", fontsize=7, color="white" if values[t, p] > 0.5 * values.max() else "black")
    bar = fig.colorbar(im, ax=ax, fraction=0.046)
    bar.set_label("share of the true class's pixels" if normalize else "pixels")
    fig.tight_layout()
    return fig


def plot_history(history: Sequence[dict], metrics: Sequence[str] | None = None) -> plt.Figure:
    """Training curves from ``fit``'s history: losses on the left, validation metrics on the right."""
    if not history:
        raise ValueError("the history is empty: train for at least one epoch first")
    epochs = [h["epoch"] for h in history]
    skip = {"epoch", "train_loss", "val_loss", "lr", "seconds"}
    metrics = list(metrics) if metrics is not None else [k for k in history[0] if k not in skip]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6))
    for key in ("train_loss", "val_loss"):
        if key in history[0]:
            left.plot(epochs, [h[key] for h in history], marker="o", label=key.replace("_", " "))
    left.set(xlabel="epoch", ylabel="loss", title="loss")
    left.legend()
    for key in metrics:
        right.plot(epochs, [h[key] for h in history], marker="o", label=key)
    right.set(xlabel="epoch", ylabel="score", title="validation")
    if metrics:
        right.legend()
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    fig.tight_layout()
    return fig


def label_legend(fig: plt.Figure, names: dict[int, str], palette=PALETTE, alpha: float = 1.0, ncol: int = 8):
    """A legend for label ids drawn with ``overlay(..., alpha)``: each swatch is the label's colour
    blended with ``alpha`` over a mid grey, as it looks over a grey scan (alpha=1: the pure colour)."""
    grey = 160
    colours = {name: alpha * np.asarray(palette[k], dtype=float) + (1 - alpha) * grey for k, name in names.items()}
    return add_legend(fig, colours, ncol=ncol)


def _grey_rgb(values) -> np.ndarray:
    """Scale any array to 0-255 and repeat it into three channels, to draw label colours over it."""
    values = np.asarray(values, dtype=np.float32)
    grey = (255 * (values - values.min()) / max(float(np.ptp(values)), 1e-6)).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def orthogonal_slices(volumes: dict, label=None, centre: Sequence[int] | None = None, palette=PALETTE,
                      label_names: dict[int, str] | None = None, alpha: float = 0.6) -> plt.Figure:
    """Axial, coronal and sagittal planes through ``centre`` (default: the label's centre of mass)
    of each ``(X, Y, Z)`` volume, one row per volume, and a last row with the label over the first,
    blended with ``alpha`` (the legend's swatches are blended the same way)."""
    first = np.asarray(next(iter(volumes.values())))
    if centre is None:
        centre = (np.argwhere(np.asarray(label) > 0).mean(0).round().astype(int) if label is not None
                  and np.asarray(label).any() else np.array(first.shape) // 2)
    x, y, z = centre
    planes = {"axial": lambda v: v[:, :, z].T, "coronal": lambda v: v[:, y, :].T, "sagittal": lambda v: v[x, :, :].T}
    rows = list(volumes.items()) + ([("label", None)] if label is not None else [])
    fig, axes = plt.subplots(len(rows), 3, figsize=(8, 2.6 * len(rows)), squeeze=False)
    for r, (name, volume) in enumerate(rows):
        for c, (plane, cut) in enumerate(planes.items()):
            ax = axes[r, c]
            if volume is None:
                ax.imshow(overlay(_grey_rgb(cut(first)), cut(np.asarray(label)), alpha, palette), origin="lower")
            else:
                ax.imshow(cut(np.asarray(volume)), cmap="gray", origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(plane)
        axes[r, 0].set_ylabel(name)
    if label_names:
        label_legend(fig, label_names, palette, alpha)
    else:
        fig.tight_layout()
    return fig


def slice_montage(volume, labels: dict, n: int = 6, palette=PALETTE, alpha: float = 0.6) -> plt.Figure:
    """``n`` axial slices through the labelled region, one row per label map overlaid on ``volume``
    (for example the truth and a prediction), blended with ``alpha``: give ``label_legend`` the same."""
    volume = np.asarray(volume, dtype=np.float32)
    any_label = np.any([np.asarray(lab) > 0 for lab in labels.values()], axis=0)
    zs = np.nonzero(any_label.any((0, 1)))[0]
    zs = np.linspace(zs.min(), zs.max(), n).round().astype(int) if len(zs) else np.linspace(0, volume.shape[2] - 1, n)
    grey = _grey_rgb(volume)
    fig, axes = plt.subplots(len(labels), n, figsize=(1.9 * n, 2.0 * len(labels)), squeeze=False)
    for r, (name, label) in enumerate(labels.items()):
        for c, z in enumerate(zs):
            ax = axes[r, c]
            picture = overlay(grey[:, :, z].transpose(1, 0, 2), np.asarray(label)[:, :, z].T, alpha, palette)
            ax.imshow(picture, origin="lower")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"z = {z}", fontsize=9)
        axes[r, 0].set_ylabel(name)
    fig.tight_layout()
    return fig


# --- optical flow ------------------------------------------------------------------------------------------

def flow_rgb(flow, valid=None) -> np.ndarray:
    """Optical flow in the standard colour coding (torchvision's ``flow_to_image``, after the Middlebury code):
    hue = direction, saturation = length relative to the longest vector. ``flow`` (2, H, W) gives (H, W, 3) uint8;
    a batch (N, 2, H, W) gives (N, H, W, 3) on **one** scale (the longest vector of the whole batch), so flows
    drawn side by side can be compared. Pixels where ``valid`` ((H, W) or (N, H, W)) is false are black."""
    flow = torch.as_tensor(np.asarray(flow, dtype=np.float32))
    if flow.ndim not in (3, 4) or flow.shape[-3] != 2:
        raise ValueError(f"flow must be (2, H, W) or (N, 2, H, W), got {tuple(flow.shape)}")
    picture = flow_to_image(flow).movedim(-3, -1).numpy()
    if valid is not None:
        picture = picture * np.asarray(valid, dtype=bool)[..., None]
    return picture.astype(np.uint8)


def flow_wheel(ax: plt.Axes, size: int = 101) -> None:
    """The legend of ``flow_rgb``: each point of a disc coloured as the flow from the centre to it. Image rows
    grow downwards, so a flow that points up (v < 0) is drawn at the top of the wheel."""
    ys, xs = np.mgrid[-1:1:size * 1j, -1:1:size * 1j]
    disc = np.hypot(xs, ys) <= 1
    ax.imshow(flow_rgb(np.stack([xs * disc, ys * disc])) * disc[..., None])
    for text, (x, y) in {"right": (1.0, 0.5), "left": (0.0, 0.5), "down": (0.5, 1.0), "up": (0.5, 0.0)}.items():
        ax.text(x * (size - 1), y * (size - 1), text, ha="center", va="center", fontsize=7,
                bbox=dict(facecolor="white", alpha=0.7, lw=0))
    ax.set_title("flow colour:\ndirection (hue), length", fontsize=8)
    ax.set_axis_off()


def flow_arrows(ax: plt.Axes, flow, step: int = 8, valid=None, color: str = "yellow") -> None:
    """Arrows of a (2, H, W) flow on a sparse grid (one every ``step`` pixels), drawn to scale in pixels over
    whatever ``ax`` shows (an image has y downwards; ``angles="xy"`` draws from (x, y) to (x + u, y + v))."""
    flow = np.asarray(flow, dtype=np.float32)
    height, width = flow.shape[-2:]
    ys, xs = np.mgrid[step // 2:height:step, step // 2:width:step]
    keep = np.ones(ys.shape, bool) if valid is None else np.asarray(valid, dtype=bool)[ys, xs]
    ax.quiver(xs[keep], ys[keep], flow[0][ys, xs][keep], flow[1][ys, xs][keep], color=color, angles="xy",
              scale_units="xy", scale=1, width=0.004)


# --- point clouds ------------------------------------------------------------------------------------------

def _up_last(points, up: str) -> np.ndarray:
    """(P, 3) points reordered so that the ``up`` axis comes last (matplotlib's and plotly's vertical axis)."""
    points = np.asarray(points, dtype=np.float32)
    order = {"x": (1, 2, 0), "y": (2, 0, 1), "z": (0, 1, 2)}[up]  # cyclic: a rotation, never a mirror image
    return points[:, order]


def plot_points(ax, points, labels=None, palette=PALETTE, up: str = "y", size: float = 2.0, elev: float = 20,
                azim: float = -60, title: str | None = None) -> None:
    """A static 3D scatter of a (P, 3) point cloud on a matplotlib 3D axis (``projection="3d"``), coloured by
    integer ``labels`` (P,) through ``palette`` (label k: ``palette[k % len]``), the ``up`` axis drawn vertical
    (ShapeNet: y; ModelNet meshes: z), equal scales on the three axes so shapes are not squashed. It renders
    everywhere (CI, exported HTML), unlike interactive views."""
    xyz = _up_last(points, up)
    colours = None if labels is None else np.asarray(palette)[np.asarray(labels) % len(palette)] / 255
    ax.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], c=colours if colours is not None else "0.3", s=size, linewidths=0,
               depthshade=False)
    centre, half = (xyz.max(0) + xyz.min(0)) / 2, (xyz.max(0) - xyz.min(0)).max() / 2 or 1.0
    ax.set_xlim(centre[0] - half, centre[0] + half)
    ax.set_ylim(centre[1] - half, centre[1] + half)
    ax.set_zlim(centre[2] - half, centre[2] + half)
    ax.set_box_aspect((1, 1, 1))
    ax.view_init(elev=elev, azim=azim)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)


def points_3d(points, labels=None, names: dict[int, str] | None = None, palette=PALETTE, up: str = "y",
              size: float = 2.0, title: str | None = None):
    """An interactive 3D view (a plotly figure: rotate and zoom in the notebook) of a (P, 3) point cloud, one trace
    per label so that the legend names them (``names``: label -> name). ``fig.show()`` displays it."""
    import plotly.graph_objects as go

    xyz = _up_last(points, up)
    labels = np.zeros(len(xyz), int) if labels is None else np.asarray(labels)
    traces = []
    for label in np.unique(labels).tolist():
        r, g, b = (int(c) for c in np.asarray(palette)[label % len(palette)])
        part = xyz[labels == label]
        traces.append(go.Scatter3d(x=part[:, 0], y=part[:, 1], z=part[:, 2], mode="markers",
                                   marker=dict(size=size, color=f"rgb({r},{g},{b})"),
                                   name=(names or {}).get(label, str(label))))
    fig = go.Figure(traces)
    fig.update_layout(title=title, scene=dict(aspectmode="data", xaxis_visible=False, yaxis_visible=False,
                                              zaxis_visible=False), margin=dict(l=0, r=0, t=30 if title else 0, b=0),
                      legend=dict(itemsizing="constant"))
    return fig
