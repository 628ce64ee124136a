"""DAVIS 2017 (semi-supervised video object segmentation): the annotations' format, the torch Dataset over the
official layout, and its synthetic twin.

Layout of ``DAVIS-2017-trainval-480p.zip`` (it unpacks to a folder ``DAVIS/``; ``root`` may be that folder or any
folder above it, which is searched)::

    DAVIS/JPEGImages/480p/<sequence>/00000.jpg, 00001.jpg, ...   the frames, 480 pixels high
    DAVIS/Annotations/480p/<sequence>/00000.png, 00001.png, ...  one annotation per frame (train and val)
    DAVIS/ImageSets/2017/train.txt, val.txt                      one sequence name per line: 60 and 30
    DAVIS/ImageSets/2016/...                                     DAVIS 2016's single-object lists (not used)

The test-dev archive (``DAVIS-2017-test-dev-480p.zip``) unpacks into the same ``DAVIS/`` folder and adds
``ImageSets/2017/test-dev.txt``; its annotations give the **first frame only** (the task: given the objects in
frame 0, segment them in every later frame). ``Davis(root, "test-dev")`` reads such a split too.

An annotation (``Annotations/480p/<sequence>/<frame:05d>.png``) is a **palette PNG** (PIL mode "P") whose pixel
values are object ids, 0 = background, 1..N the objects of the sequence (N differs per sequence), 255 = void in
the ground truth; the palette is PASCAL VOC's (id 1 dark red, 2 green, ...), so the file looks coloured although
it holds ids. ``np.asarray(Image.open(path))`` gives the ids; ``convert("RGB")`` gives colours, and
``convert("L")`` gives grey levels of those colours, not ids. Frames are 480 pixels high, mostly 854 wide (some
sequences 910 or others), so the sequences of a batch differ in size.

``read_davis_mask`` returns the ids however the file was saved: as the official palette PNG, as a grey
PNG of ids (mode "L"), or as an RGB PNG of the VOC colours (a tool converted it); a lossy JPEG, or colours
that are not VOC's, are refused, since guessing would relabel objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from course_utils.datasets import (
    DatasetInfo,
    carve_monitor,
    check_monitor_fraction,
    find_folder,
    read_image,
    report_unused,
)

VOID = 255
TWIN_VERSION = 1
RESOLUTIONS = ("480p", "Full-Resolution")  # the subfolders of JPEGImages/ and Annotations/
MONITOR_FRACTION = 0.1  # of the official train sequences, held out to choose the best epoch (6 of 60)
URL = "https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip"
# sha256 and size (832,766,765 bytes) as TensorFlow Datasets recorded them (tensorflow/datasets,
# tensorflow_datasets/video/davis/checksums.tsv); DAVIS itself publishes no checksum
SHA256 = "e3d0b5b77c3d031b000a19e0e25e3e2cac65d183755601bc2cf066df1a2aa492"
SPLIT_FOLDER = "ImageSets/2017"


def voc_palette(n: int = 256) -> np.ndarray:
    """PASCAL VOC's colour of each id (n, 3) uint8: the bits of the id spread over R, G and B, high bits first."""
    palette = np.zeros((n, 3), np.uint8)
    for index in range(n):
        value, shift = index, 7
        while value:
            for channel in range(3):
                palette[index, channel] |= ((value >> channel) & 1) << shift
            value >>= 3
            shift -= 1
    return palette


def read_davis_mask(path: str | Path) -> np.ndarray:
    """The (H, W) uint8 object ids of a DAVIS annotation (0 background, 1..N objects, 255 void)."""
    path = Path(path)
    with Image.open(path) as image:
        kind, mode = image.format, image.mode
        if kind != "PNG":
            raise ValueError(f"{path}: a {kind} file; DAVIS annotations are PNGs (a lossy JPEG changes the ids "
                             f"along every edge: use the original PNG)")
        if mode == "P" or mode == "L":
            return np.asarray(image).copy()
        if mode not in ("RGB", "RGBA"):
            raise ValueError(f"{path}: PNG mode {mode!r}; expected a palette ('P'), grey ('L') or RGB PNG of ids")
        rgb = np.asarray(image.convert("RGB"))
    palette = voc_palette()
    codes = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    table = {(int(r) << 16) | (int(g) << 8) | int(b): i for i, (r, g, b) in enumerate(palette)}
    colours = np.unique(codes)
    unknown = [c for c in colours.tolist() if c not in table]
    if unknown:
        examples = ", ".join(str(((c >> 16) & 255, (c >> 8) & 255, c & 255)) for c in unknown[:3])
        raise ValueError(f"{path}: an RGB annotation with {len(unknown)} colour(s) that are not DAVIS's (VOC) palette, "
                         f"e.g. {examples}; it was resized or recoloured. Use the original palette PNG.")
    lookup = np.array([table[c] for c in colours.tolist()], np.uint8)
    return lookup[np.searchsorted(colours, codes)]


# --- the dataset ----------------------------------------------------------------------------------

def find_davis_root(root: str | Path) -> Path:
    """The ``DAVIS/`` folder at or below ``root``: the one holding ``ImageSets/2017/`` and ``JPEGImages/``."""
    return find_folder(Path(root), lambda f: (f / SPLIT_FOLDER).is_dir() and (f / "JPEGImages").is_dir(),
                       f"{SPLIT_FOLDER}/ and JPEGImages/ (the DAVIS/ folder of the unzipped {URL})")


def read_sequence_list(path: str | Path) -> list[str]:
    """The sequence names of a split file (``ImageSets/2017/<split>.txt``), one per line, in file order."""
    path = Path(path)
    names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
    if not names:
        raise ValueError(f"{path} is empty; expected one sequence name per line")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path} lists {len(repeated)} sequences more than once, e.g. {repeated[0]!r}; "
                         f"each sequence belongs in a split once")
    return names


class Davis(Dataset):
    """DAVIS 2017 for semi-supervised video object segmentation: an item is one whole **sequence**.

    ``split``: the name of a list in ``ImageSets/2017/`` ("train", "val", and "test-dev" or "test-challenge"
    where those archives were unpacked into the same folder), or "monitor". With both official lists, the
    course's protocol is: train on "train", choose the best epoch (or the settings of a method) on "monitor",
    and report once on "val", the split papers report. "monitor" is a seeded ``monitor_fraction`` of the
    official train sequences (6 of 60), and "train" is the official list **without** them; with
    ``monitor_fraction=0`` "train" is the whole official list. The split depends only on the names and ``seed``.

    ``resolution``: "480p" (the course's archive) or "Full-Resolution" (another archive).

    An item is a dict: ``name`` (the sequence), ``frames`` (T, H, W, 3) uint8 RGB, ``masks`` (T, H, W) uint8
    object ids (0 background, 1..n_objects, 255 void where the annotators left it), ``n_objects`` (the largest
    id of the first annotation, as the official evaluation counts them) and ``first_frame_only``. T differs
    per sequence, and so do H and W, so sequences do not batch: iterate over them.

    **First frame only**: in a split whose sequences come with their first annotation alone (test-dev and
    test-challenge: the task's input; the challenge's server scored the later frames), ``masks`` is (1, H, W),
    the first frame's, ``first_frame_only`` is True, and nothing can be scored locally. train and val annotate
    every frame: a sequence there with fewer annotations than frames is an error, as is a split that mixes both.

    Decoding a sequence costs about 100 frames of 480x854: ``frame_paths(i)`` and ``mask_paths(i)`` give
    the files without decoding them, and ``read_frame(i, t)`` decodes one frame and its annotation.
    """

    def __init__(self, root: str | Path, split: str = "train", resolution: str = "480p",
                 monitor_fraction: float = MONITOR_FRACTION, seed: int = 0):
        if resolution not in RESOLUTIONS:
            raise ValueError(f"resolution must be one of {RESOLUTIONS}, not {resolution!r}")
        check_monitor_fraction(split, monitor_fraction, "train sequences")
        self.root = find_davis_root(root)
        self.split, self.resolution = split, resolution
        self.frame_dir = self.root / "JPEGImages" / resolution
        self.mask_dir = self.root / "Annotations" / resolution
        for folder in (self.frame_dir, self.mask_dir):
            if not folder.is_dir():
                there = sorted(p.name for p in folder.parent.iterdir() if p.is_dir()) if folder.parent.is_dir() else []
                raise FileNotFoundError(f"no folder {folder} (found {there or 'nothing'} in {folder.parent}); the "
                                        f"480p archive ({URL}) has JPEGImages/480p and Annotations/480p: unzip it "
                                        f"again, or pass the resolution you have")
        lists = {p.stem: p for p in sorted((self.root / SPLIT_FOLDER).glob("*.txt"))}
        base = "train" if split == "monitor" else split  # the monitor split is carved out of the train sequences
        if base not in lists:
            raise ValueError(f"no split {split!r}: {self.root / SPLIT_FOLDER} has the lists {sorted(lists)} (and "
                             f"'monitor' is carved out of train). train and val come with {URL}, test-dev with "
                             f"DAVIS-2017-test-dev-480p.zip unzipped into the same folder.")
        listed = {name: read_sequence_list(path) for name, path in lists.items()}
        if "train" in listed and "val" in listed:
            both = sorted(set(listed["train"]) & set(listed["val"]))
            if both:
                raise ValueError(f"{len(both)} sequences are in both {lists['train']} and {lists['val']}, e.g. "
                                 f"{both[0]!r}: validation sequences would be trained on. Restore the official lists.")
        every = {n for names in listed.values() for n in names}
        report_unused(self.frame_dir, f"sequence folders in none of the lists of {SPLIT_FOLDER}",
                      sorted(p.name for p in self.frame_dir.iterdir() if p.is_dir() and p.name not in every))
        names, self.split_source = listed[base], str(lists[base])
        if base == "train" and monitor_fraction > 0:
            names, self.split_source = carve_monitor(names, split, monitor_fraction, seed, self.split_source)
        self.sequence_names = list(names)
        self._frames, self._masks = [], []
        for name in self.sequence_names:
            frames, masks = self._files(name, lists[base])
            self._frames.append(frames)
            self._masks.append(masks)
        first_only = [i for i, (f, m) in enumerate(zip(self._frames, self._masks)) if len(m) < len(f)]
        if first_only and (base in ("train", "val") or len(first_only) < len(self.sequence_names)):
            i = first_only[0]
            raise ValueError(f"{len(first_only)} of the {len(self)} sequences of split {split!r} have only their first "
                             f"frame annotated, e.g. {self.mask_dir / self.sequence_names[i]} (1 annotation for "
                             f"{len(self._frames[i])} frames). DAVIS 2017 train and val annotate every frame, test-dev "
                             f"and test-challenge the first frame of every sequence: the copy is incomplete. Unzip "
                             f"{URL} again.")
        self.first_frame_only = bool(first_only)
        if self.first_frame_only:
            print(f"DAVIS {split}: only the first frame of each sequence is annotated here (as in test-dev): masks "
                  f"are (1, H, W), and nothing can be scored locally")

    def _files(self, name: str, split_file: Path) -> tuple[list[Path], list[Path]]:
        """The frames and annotations of sequence ``name``, checked: one annotation per frame, or the first only."""
        frame_folder, mask_folder = self.frame_dir / name, self.mask_dir / name
        for folder in (frame_folder, mask_folder):
            if not folder.is_dir():
                raise FileNotFoundError(f"{split_file} lists the sequence {name!r}, but there is no folder {folder}: "
                                        f"the copy is incomplete (or another split's archive is missing). Unzip {URL} "
                                        f"again into the same folder.")
        frames = sorted(frame_folder.glob("*.jpg"))
        masks = sorted(mask_folder.glob("*.png"))
        if not frames:
            raise FileNotFoundError(f"{frame_folder} has no .jpg frames; the copy is incomplete: unzip {URL} again")
        if len(frames) > 1 and [p.stem for p in masks] == [frames[0].stem]:
            return frames, masks  # the first frame only, as in test-dev
        frame_stems, mask_stems = [p.stem for p in frames], [p.stem for p in masks]
        if mask_stems != frame_stems:
            odd = sorted(set(frame_stems) ^ set(mask_stems))[0]
            example = (f"{frame_folder / odd}.jpg has no annotation" if odd in frame_stems
                       else f"{mask_folder / odd}.png has no frame")
            raise ValueError(f"sequence {name!r}: {len(frames)} frames in {frame_folder} but {len(masks)} annotations "
                             f"in {mask_folder} ({example}). DAVIS 2017 train and val annotate every frame, test-dev "
                             f"the first only: the copy is incomplete or mixed up. Unzip {URL} again.")
        return frames, masks

    def __len__(self) -> int:
        return len(self.sequence_names)

    def frame_paths(self, index: int) -> list[Path]:
        """The frames of sequence ``index`` in order (``JPEGImages/<resolution>/<name>/00000.jpg``, ...)."""
        return list(self._frames[index])

    def mask_paths(self, index: int) -> list[Path]:
        """Its annotations in order: one per frame, or the first frame's only (``first_frame_only``)."""
        return list(self._masks[index])

    def n_objects(self, index: int) -> int:
        """The number of objects of sequence ``index``: the largest id of its first annotation (void aside)."""
        ids = read_davis_mask(self._masks[index][0])
        return int(ids[ids != VOID].max(initial=0))

    def read_frame(self, index: int, t: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Frame ``t`` of sequence ``index`` (H, W, 3) uint8 and its object ids (H, W) uint8, or None where that
        frame has no annotation (after the first, in a ``first_frame_only`` split)."""
        frame = read_image(self._frames[index][t])
        if t >= len(self._masks[index]):
            return frame, None
        mask_path = self._masks[index][t]
        mask = read_davis_mask(mask_path)
        if mask.shape != frame.shape[:2]:
            raise ValueError(f"{mask_path} is {mask.shape[1]}x{mask.shape[0]} but its frame {self._frames[index][t]} "
                             f"is {frame.shape[1]}x{frame.shape[0]}; a frame and its annotation must be the same size "
                             f"(one of them resized, or taken from the other resolution?). Unzip {URL} again.")
        return frame, mask

    def __getitem__(self, index: int) -> dict:
        frames, masks = [], []
        for t in range(len(self._frames[index])):
            frame, mask = self.read_frame(index, t)
            if frames and frame.shape != frames[0].shape:
                raise ValueError(f"{self._frames[index][t]} is {frame.shape[1]}x{frame.shape[0]} but the first frame "
                                 f"of {self.sequence_names[index]!r} is {frames[0].shape[1]}x{frames[0].shape[0]}; "
                                 f"the frames of a sequence have one size. Unzip {URL} again.")
            frames.append(frame)
            if mask is not None:
                masks.append(mask)
        first = masks[0]
        return {"name": self.sequence_names[index], "frames": np.stack(frames), "masks": np.stack(masks),
                "n_objects": int(first[first != VOID].max(initial=0)), "first_frame_only": self.first_frame_only}


# --- the synthetic twin ---------------------------------------------------------------------------

TWIN_NOUNS = ("blob", "disc", "kite", "tile", "drop", "ring", "leaf", "shell", "stone", "wheel")
TWIN_VERBS = ("drift", "spin", "glide", "turn", "slide", "roll", "swing", "dive", "hop", "sway")


def write_annotation(path: str | Path, ids: np.ndarray) -> None:
    """Save object ids (H, W) uint8 as DAVIS does: a palette PNG (mode "P") with VOC's colours."""
    image = Image.fromarray(np.asarray(ids, np.uint8))
    image.putpalette(voc_palette().ravel().tolist())  # makes the grey image a palette image of the same indices
    image.save(path, format="PNG")


def _void_band(ids: np.ndarray, object_id: int) -> np.ndarray:
    """``ids`` with the background pixels that touch object ``object_id`` (4-neighbours) set to void: the
    unsure edge that annotators leave. Only background becomes void, so no object loses a pixel."""
    inside = ids == object_id
    grown = inside.copy()
    grown[1:] |= inside[:-1]
    grown[:-1] |= inside[1:]
    grown[:, 1:] |= inside[:, :-1]
    grown[:, :-1] |= inside[:, 1:]
    out = ids.copy()
    out[grown & (ids == 0)] = VOID
    return out


def write_twin(root: str | Path, n_train: int = 6, n_val: int = 4, size: tuple[int, int] = (48, 80),
               seed: int = 0) -> Path:
    """Write a small DAVIS 2017 look-alike into ``root``, in the layout of the unzipped trainval archive
    (``root/DAVIS/...``); returns ``root``.

    ``n_train`` + ``n_val`` sequences of 8 to 12 frames, listed in ``ImageSets/2017/train.txt`` and
    ``val.txt``. Each is a ``moving_scenes.make_scene`` video: 1 to 3 textured objects moving over a textured
    background that the camera pans, zooms and rolls. Frames are ``size`` (height, width) pixels, or
    910/854 times wider in every third sequence (DAVIS has both widths); JPEGs at quality 90. Annotations
    are palette PNGs of the object ids in VOC's palette; every other sequence has a one-pixel void (255) band
    around one of its objects, as annotators leave along unsure edges. Deterministic for a given ``seed``.
    """
    from course_utils.datasets.moving_scenes import make_scene  # here: only the twin needs it

    root = Path(root)
    davis = root / "DAVIS"
    (davis / SPLIT_FOLDER).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    count = n_train + n_val
    pairs = rng.permutation(len(TWIN_NOUNS) * len(TWIN_VERBS))[:count]
    names = [f"{TWIN_NOUNS[p // len(TWIN_VERBS)]}-{TWIN_VERBS[p % len(TWIN_VERBS)]}" for p in pairs.tolist()]
    height, width = size
    for i, name in enumerate(names):
        wide = round(width * 910 / 854) if i % 3 == 2 else width
        n_objects = int(rng.integers(1, 4))
        scene = make_scene(rng, int(rng.integers(8, 13)), height, wide, n_objects)
        frame_folder = davis / "JPEGImages" / "480p" / name
        mask_folder = davis / "Annotations" / "480p" / name
        frame_folder.mkdir(parents=True, exist_ok=True)
        mask_folder.mkdir(parents=True, exist_ok=True)
        edged = int(rng.integers(1, n_objects + 1)) if i % 2 == 0 else None  # the object with a void band
        for t, (frame, ids) in enumerate(zip(scene.frames, scene.masks)):
            Image.fromarray(frame).save(frame_folder / f"{t:05d}.jpg", quality=90)
            write_annotation(mask_folder / f"{t:05d}.png", ids if edged is None else _void_band(ids, edged))
    (davis / SPLIT_FOLDER / "train.txt").write_text("".join(f"{n}\n" for n in sorted(names[:n_train])))
    (davis / SPLIT_FOLDER / "val.txt").write_text("".join(f"{n}\n" for n in sorted(names[n_train:])))
    return root


INFO = DatasetInfo(
    name="davis2017",
    title="DAVIS 2017 trainval: 90 videos (60 train, 30 val), the objects of every frame annotated",
    notebook="08",
    marker=f"{SPLIT_FOLDER}/val.txt",
    url=URL,
    sha256=SHA256,
    licence="CC BY-NC 4.0 (the Terms of Use in the archive's README; videos from online sources keep their own "
            "terms, listed in SOURCES.md); the evaluation code is BSD",
    citation="Pont-Tuset, Perazzi, Caelles, Arbelaez, Sorkine-Hornung, Van Gool: The 2017 DAVIS Challenge on Video "
             "Object Segmentation, arXiv:1704.00675, 2017; Perazzi, Pont-Tuset, McWilliams, Van Gool, Gross, "
             "Sorkine-Hornung: A Benchmark Dataset and Evaluation Methodology for Video Object Segmentation, CVPR 2016",
    write_twin=write_twin,
    twin_version=TWIN_VERSION,
)
