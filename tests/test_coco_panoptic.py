"""COCO panoptic (course_utils/datasets/coco_panoptic.py): the id encoding and its pitfall, the JSON, targets,
the twin read back through the loader, the real samples, transforms, splits, finding and downloading, errors."""

import contextlib
import hashlib
import http.server
import json
import shutil
import struct
import threading
import zipfile
from functools import partial
from pathlib import Path

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from conftest import real_sample
from PIL import Image
from scipy import ndimage
from torch.utils.data import DataLoader

from course_utils import data, runtime
from course_utils.datasets import DamagedFileError, carve_monitor, coco_panoptic, seeded_split
from course_utils.datasets.coco_panoptic import (
    CATEGORIES,
    IGNORE,
    CocoPanoptic,
    check_annotation,
    id_to_rgb,
    instance_map,
    panoptic_from_maps,
    read_annotations,
    read_id_map,
    rgb_to_id,
    segment_stats,
    semantic_map,
    train_ids,
    write_id_map,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


@pytest.fixture(autouse=True)
def own_folders(monkeypatch, tmp_path):
    """Full mode, and the cache and derived folders (where the nested zip is unpacked) in tmp_path."""
    monkeypatch.setattr(runtime, "SMOKE", False)
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("COURSE_DERIVED_DIR", str(tmp_path / "derived"))
    monkeypatch.delenv("COURSE_DATA_DIR", raising=False)
    monkeypatch.setattr(runtime, "KAGGLE_INPUT", tmp_path / "no-kaggle")


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    return coco_panoptic.write_twin(tmp_path_factory.mktemp("coco") / "coco", n_images=12)


def png_header(path):
    """(bit depth, colour type) from a PNG's IHDR chunk: 0 = greyscale, 2 = RGB, 3 = palette."""
    raw = Path(path).read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and raw[12:16] == b"IHDR"
    return struct.unpack(">BB", raw[24:26])


def assert_matches_json(png: Path, segments: list[dict]):
    """Every id of the PNG is a segment of the JSON and back, with the JSON's exact area and bbox."""
    ids = read_id_map(png)
    check_annotation(ids, segments, png)
    stats = segment_stats(ids)
    assert set(stats) == {s["id"] for s in segments}
    for s in segments:
        assert stats[s["id"]] == (s["area"], s["bbox"]), f"{png.name}: segment {s['id']}"


def copy_official(real: Path, root: Path) -> Path:
    """The real samples arranged in the official layout, for the loader."""
    (root / "annotations" / "panoptic_val2017").mkdir(parents=True)
    shutil.copy(real / "panoptic_examples.json", root / "annotations" / "panoptic_val2017.json")
    shutil.copytree(real / "images", root / "val2017")
    for png in (real / "panoptic_examples").iterdir():
        shutil.copy(png, root / "annotations" / "panoptic_val2017" / png.name)
    return root


# --- the encoding -------------------------------------------------------------------------------------

def test_ids_and_colours_round_trip(tmp_path):
    ids = np.array([[0, 1, 255, 256], [65535, 65536, 2330219, 256**3 - 1]], np.int64)
    rgb = id_to_rgb(ids)
    assert rgb.dtype == np.uint8 and rgb[1, 2].tolist() == [107, 142, 35]  # tree-merged's colour
    assert rgb_to_id(rgb).dtype == np.uint32 and np.array_equal(rgb_to_id(rgb), ids)
    write_id_map(tmp_path / "ids.png", ids)
    assert png_header(tmp_path / "ids.png") == (8, 2) and np.array_equal(read_id_map(tmp_path / "ids.png"), ids)
    with pytest.raises(ValueError, match="256\\*\\*3"):
        id_to_rgb(np.array([[256**3]]))


def test_pitfall_uint8_arithmetic_gives_wrong_ids_on_the_real_sample():
    real = real_sample("coco-panoptic")
    content = read_annotations(real / "panoptic_examples.json")
    annotation = content["annotations"][0]
    rgb = np.array(Image.open(real / "panoptic_examples" / annotation["file_name"]))
    listed = {s["id"] for s in annotation["segments_info"]}
    right = set(np.unique(rgb_to_id(rgb)).tolist()) - {0}
    assert right == listed
    t = torch.from_numpy(rgb)  # uint8: 256 * G wraps around to 0, and so does 65536 * B
    wrapped = t[..., 0] + 256 * t[..., 1] + 65536 * t[..., 2]
    assert torch.equal(wrapped, t[..., 0]) and not set(wrapped.unique().tolist()) & listed
    wide = rgb.astype(np.uint16)  # wide enough for G, not for B
    short = wide[..., 0] + wide[..., 1] * np.uint16(256) + wide[..., 2] * np.uint16(256) * np.uint16(256)
    assert set(np.unique(short).tolist()) - {0} != listed


# --- the JSON and the real samples ----------------------------------------------------------------------

def test_real_samples_pass_the_checks_and_read_through_the_loader(tmp_path):
    real = real_sample("coco-panoptic")
    content = read_annotations(real / "panoptic_examples.json")
    categories = content["categories"]
    ids = sorted(c["id"] for c in categories)
    assert len(ids) == 133 and ids[-1] == 200 and ids != list(range(1, 134))  # non-contiguous
    assert sum(c["isthing"] for c in categories) == 80
    mapping = train_ids(categories)
    assert sorted(mapping.values()) == list(range(133)) and mapping[1] == 0 and mapping[200] == 132
    for entry in CATEGORIES:  # the twin's six categories are real ones, word for word
        assert entry in categories
    for annotation in content["annotations"]:
        assert_matches_json(real / "panoptic_examples" / annotation["file_name"], annotation["segments_info"])
    ds = CocoPanoptic(copy_official(real, tmp_path / "coco"), "all")
    assert len(ds) == 2 and len(ds.class_names) == 133 and len(ds.thing_train_ids) == 80
    image, target = ds[0]
    assert image.shape == (3, 427, 640) and target["id_map"].shape == (427, 640)
    void = target["id_map"] == 0
    assert torch.equal(target["semantic"] == IGNORE, void)
    assert target["instance"].max() == 14  # 13 people and a sports ball; the crowd of people is no instance


def test_real_segment_ids_are_made_as_panopticapi_makes_them(twin):
    # stuff: the category's colour; a thing: its colour for the first segment, then a jittered one (±30)
    def check(content):
        colour = {c["id"]: np.array(c["color"]) for c in content["categories"]}
        things = {c["id"] for c in content["categories"] if c["isthing"]}
        for annotation in content["annotations"]:
            seen = set()
            for s in annotation["segments_info"]:
                rgb = id_to_rgb(np.array(s["id"])).astype(int)
                offset = np.abs(rgb - colour[s["category_id"]]).max()
                assert offset == 0 if s["category_id"] not in things or s["category_id"] not in seen else offset <= 30
                seen.add(s["category_id"])

    check(read_annotations(twin / "annotations" / "panoptic_val2017.json"))
    check(read_annotations(real_sample("coco-panoptic", "panoptic_examples.json")))


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("categories"), "'categories'"),
    (lambda c: c["annotations"][0]["segments_info"][0].pop("bbox"), r"\['bbox'\]"),
    (lambda c: c["annotations"][0]["segments_info"][0].update(category_id=2), "category_id 2"),
    (lambda c: c["annotations"][0].update(image_id=-5), "image_id -5"),
    (lambda c: c["annotations"][0]["segments_info"].append(c["annotations"][0]["segments_info"][0]), "twice"),
])
def test_a_broken_json_is_refused_naming_the_file(twin, tmp_path, change, message):
    content = json.loads((twin / "annotations" / "panoptic_val2017.json").read_text())
    change(content)
    path = tmp_path / "panoptic_val2017.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ValueError, match=message) as error:
        read_annotations(path)
    assert str(path) in str(error.value)
    path.write_text(json.dumps(content)[:500])  # cut short
    with pytest.raises(DamagedFileError, match="not valid JSON"):
        read_annotations(path)


# --- the twin -------------------------------------------------------------------------------------

def test_twin_has_the_official_layout_and_encodings(twin):
    content = json.loads((twin / "annotations" / "panoptic_val2017.json").read_text())
    names = [Path(a["file_name"]).stem for a in content["annotations"]]
    assert len(names) == 12 and all(len(n) == 12 and n.isdigit() for n in names)
    assert sorted(p.name for p in twin.iterdir()) == ["annotations", "val2017"]
    assert sorted(p.name for p in (twin / "annotations").iterdir()) == ["panoptic_val2017", "panoptic_val2017.json"]
    assert sorted(p.stem for p in (twin / "annotations" / "panoptic_val2017").iterdir()) == sorted(names)
    assert sorted(p.name for p in (twin / "val2017").iterdir()) == sorted(f"{n}.jpg" for n in names)
    for n in names:
        assert png_header(twin / "annotations" / "panoptic_val2017" / f"{n}.png") == (8, 2)  # RGB PNG
        assert Image.open(twin / "val2017" / f"{n}.jpg").format == "JPEG"
    assert [c["id"] for c in content["categories"]] == [1, 3, 149, 184, 187, 197]  # real ids, with gaps
    real = real_sample("coco-panoptic", "panoptic_examples.json")
    real = json.loads(real.read_text())
    for key in ("images", "annotations"):  # the same fields as the real file
        assert set(content[key][0]) == set(real[key][0])
    assert set(content["annotations"][0]["segments_info"][0]) == set(real["annotations"][0]["segments_info"][0])
    assert set(content) == set(real)


def test_twin_pngs_agree_with_the_json_and_read_through_the_loader(twin):
    content = read_annotations(twin / "annotations" / "panoptic_val2017.json")
    for annotation in content["annotations"]:
        assert_matches_json(twin / "annotations" / "panoptic_val2017" / annotation["file_name"],
                            annotation["segments_info"])
    ds = CocoPanoptic(twin, "all")
    assert ds.class_names == ["person", "car", "road", "tree-merged", "sky-other-merged", "building-other-merged"]
    assert ds.category_ids == [1, 3, 149, 184, 187, 197] and ds.thing_train_ids == [0, 1]
    crowds = voids = 0
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.dtype == torch.float32 and image.shape == (3, 96, 128) and 0 <= image.min() <= image.max() <= 1
        assert int(target.pop("index")) == i  # the item's index, to find its segments_info from a batch
        assert all(t.dtype == torch.int64 and t.shape == (96, 128) for t in target.values())
        ids, segments = target["id_map"].numpy(), ds.segments_info(i)
        assert np.array_equal(ids, read_id_map(ds.png_folder / ds.annotations[i]["file_name"]))
        assert np.array_equal(target["semantic"].numpy(), semantic_map(ids, segments, ds.train_id_of))
        assert set(target["semantic"].unique().tolist()) <= {0, 1, 2, 3, 4, 5, IGNORE}
        crowds += sum(s["iscrowd"] for s in segments)
        voids += int((ids == 0).any())
    assert crowds >= 1 and voids == len(ds)


def test_twin_has_touching_instances_that_a_semantic_map_merges(twin):
    # the point of panoptic targets: two touching people are one blob of "person" pixels
    ds = CocoPanoptic(twin, "all")
    merged = 0
    for i in range(len(ds)):
        _, target = ds[i]
        for train_id in ds.thing_train_ids:
            instances = target["instance"][target["semantic"] == train_id].unique()
            blobs = ndimage.label((target["semantic"] == train_id).numpy())[1]
            merged += int(blobs < len(instances[instances > 0]))
    assert merged >= 3


def test_twin_is_deterministic_seeded_and_sized(tmp_path):
    a = coco_panoptic.write_twin(tmp_path / "a", n_images=2)
    b = coco_panoptic.write_twin(tmp_path / "b", n_images=2)
    c = coco_panoptic.write_twin(tmp_path / "c", n_images=2, seed=1, size=(60, 80))
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    assert sorted(p.name for p in (a / "val2017").iterdir()) != sorted(p.name for p in (c / "val2017").iterdir())
    assert CocoPanoptic(c, "all")[0][0].shape == (3, 60, 80)


def test_info_is_registered_and_its_marker_finds_the_twin(twin):
    info = coco_panoptic.INFO
    assert data.REGISTRY["coco_panoptic"] is info and info.write_twin is coco_panoptic.write_twin
    assert data.has_marker(twin, info.marker) and info.notebook == "09"
    urls = [url for url, _ in data.archives(info).values()]
    assert urls == [coco_panoptic.PHOTOS_URL, coco_panoptic.ANNOTATIONS_URL]  # photos first: the marker comes last


# --- targets --------------------------------------------------------------------------------------

SEGMENTS = [{"id": 10, "category_id": 1, "iscrowd": 0, "area": 4, "bbox": [0, 0, 2, 2]},
            {"id": 11, "category_id": 1, "iscrowd": 0, "area": 2, "bbox": [2, 0, 1, 2]},
            {"id": 12, "category_id": 1, "iscrowd": 1, "area": 2, "bbox": [3, 0, 1, 2]},
            {"id": 20, "category_id": 149, "iscrowd": 0, "area": 3, "bbox": [0, 2, 3, 1]}]
ID_MAP = np.array([[10, 10, 11, 12, 0],
                   [10, 10, 11, 12, 0],
                   [20, 20, 20, 0, 0]])


def test_semantic_and_instance_maps_handle_void_and_crowds_as_documented():
    train = {1: 0, 149: 1}
    semantic = semantic_map(ID_MAP, SEGMENTS, train)
    assert semantic.dtype == np.uint8 and semantic.tolist() == [[0, 0, 0, 0, 255], [0, 0, 0, 0, 255],
                                                                  [1, 1, 1, 255, 255]]  # the crowd keeps "person"
    assert semantic_map(ID_MAP, SEGMENTS, train, ignore_crowd=True)[:, 3].tolist() == [255, 255, 255]
    instances = instance_map(ID_MAP, SEGMENTS, thing_ids={1})
    assert instances.dtype == np.int32 and instances.tolist() == [[1, 1, 2, 0, 0], [1, 1, 2, 0, 0], [0, 0, 0, 0, 0]]
    check_annotation(ID_MAP, SEGMENTS, "x.png")


def test_prediction_back_to_coco_categories_and_segments():
    train = {1: 0, 149: 1}
    category_ids = [1, 149]
    semantic, instances = semantic_map(ID_MAP, SEGMENTS, train), instance_map(ID_MAP, SEGMENTS, {1})
    assert coco_panoptic.to_category_ids(semantic, category_ids)[:, 3].tolist() == [1, 1, 0]
    as_tensor = coco_panoptic.to_category_ids(torch.from_numpy(semantic.astype(np.int64)), category_ids)
    assert torch.equal(as_tensor, torch.from_numpy(coco_panoptic.to_category_ids(semantic, category_ids)))
    with pytest.raises(ValueError, match="train ids"):
        coco_panoptic.to_category_ids(np.array([2]), category_ids)
    id_map, segments = panoptic_from_maps(semantic, instances, category_ids, thing_train_ids={0})
    check_annotation(id_map, segments, "prediction.png")
    assert [(s["category_id"], s["area"], s["bbox"]) for s in segments] == [
        (1, 4, [0, 0, 2, 2]), (1, 2, [2, 0, 1, 2]), (149, 3, [0, 2, 3, 1])]  # the crowd, without instance: void


def test_check_annotation_names_the_png_and_the_problem():
    with pytest.raises(ValueError, match=r"a\.png: segment ids \[12\] are in the PNG \(2 pixels of 12\) but not in its "
                                         r"segments_info"):
        check_annotation(ID_MAP, SEGMENTS[:2] + SEGMENTS[3:], "a.png")
    with pytest.raises(ValueError, match=r"b\.png: segments \[30\] of its segments_info are not in the PNG"):
        check_annotation(ID_MAP, [*SEGMENTS, {**SEGMENTS[0], "id": 30}], "b.png")
    with pytest.raises(ValueError, match=r"c\.png: segment 20 \(category 149\) covers 3 pixels, but the JSON gives "
                                         r"area 5"):
        check_annotation(ID_MAP, SEGMENTS[:3] + [{**SEGMENTS[3], "area": 5}], "c.png")


# --- transforms, batches, splits ------------------------------------------------------------------

def test_a_flip_moves_the_id_map_with_the_image(twin):
    plain, flipped = CocoPanoptic(twin, "all"), CocoPanoptic(twin, "all", transform=A.HorizontalFlip(p=1.0))
    for i in range(3):
        (image, target), (image_f, target_f) = plain[i], flipped[i]
        assert torch.equal(image_f, image.flip(-1))
        assert all(torch.equal(target_f[k], target[k].flip(-1)) for k in ("id_map", "semantic"))


def test_geometric_transforms_invent_no_ids_and_batch(twin):
    tf = A.Compose([A.Affine(scale=(0.7, 1.4), rotate=(-20, 20), p=1.0), A.RandomResizedCrop((64, 80)),
                    A.ElasticTransform(p=0.5), A.Normalize(), ToTensorV2()], seed=0)
    ds = CocoPanoptic(twin, "all", transform=tf)
    for i in range(len(ds)):
        image, target = ds[i]
        assert image.shape == (3, 64, 80) and image.dtype == torch.float32
        ids = target["id_map"].numpy()
        assert set(np.unique(ids).tolist()) <= {0} | {s["id"] for s in ds.segments_info(i)}  # nearest: no new ids
        assert np.array_equal(target["semantic"].numpy(), semantic_map(ids, ds.segments_info(i), ds.train_id_of))
    images, targets = next(iter(DataLoader(ds, batch_size=4)))
    assert images.shape == (4, 3, 64, 80) and targets["instance"].shape == (4, 64, 80)


def test_splits_are_disjoint_seeded_and_3750_250_1000_on_val2017(twin):
    split = {s: CocoPanoptic(twin, s).names for s in ("train", "monitor", "test", "all")}
    assert sorted(split["train"] + split["monitor"] + split["test"]) == split["all"]
    train, monitor, test = (set(split[s]) for s in ("train", "monitor", "test"))
    assert not (train & monitor or test & (train | monitor))
    assert CocoPanoptic(twin, "test").names == split["test"] != CocoPanoptic(twin, "test", seed=1).names
    names = [f"{i:012d}" for i in range(5000)]  # the size of val2017, with the same helpers and fractions
    test, rest = seeded_split(names, coco_panoptic.TEST_FRACTION, seed=0)
    monitor, _ = carve_monitor(rest, "monitor", coco_panoptic.MONITOR_FRACTION, 0, "")
    train, _ = carve_monitor(rest, "train", coco_panoptic.MONITOR_FRACTION, 0, "")
    assert (len(train), len(monitor), len(test)) == (3750, 250, 1000)
    with pytest.raises(ValueError, match="split must be one of"):
        CocoPanoptic(twin, "val")


# --- finding and downloading ----------------------------------------------------------------------

@pytest.mark.parametrize("mount", ["coco-panoptic", "datasets/someone/coco-panoptic"])
def test_locate_finds_a_kaggle_copy_in_both_mount_forms(twin, tmp_path, mount):
    kaggle_input = tmp_path / "kaggle" / "input"
    (kaggle_input / "some-other-dataset").mkdir(parents=True)
    shutil.copytree(twin, kaggle_input / mount / "coco2017")
    assert data.locate("coco_panoptic", kaggle_input=kaggle_input, download=False) == kaggle_input / mount
    assert len(CocoPanoptic(kaggle_input / mount, "all")) == 12


def test_photos_are_found_in_the_kaggle_coco_2017_copy(twin, tmp_path, monkeypatch):
    kaggle_input = tmp_path / "kaggle" / "input"
    shutil.copytree(twin / "annotations", kaggle_input / "coco-panoptic-annotations" / "annotations")
    shutil.copytree(twin / "val2017", kaggle_input / "coco-2017-dataset" / "coco2017" / "val2017")
    monkeypatch.setattr(runtime, "KAGGLE_INPUT", kaggle_input)
    ds = CocoPanoptic(kaggle_input / "coco-panoptic-annotations", "all")
    assert ds.photo_folder == kaggle_input / "coco-2017-dataset" / "coco2017" / "val2017" and len(ds) == 12


@contextlib.contextmanager
def serving(folder: Path):
    handler = partial(type("Quiet", (http.server.SimpleHTTPRequestHandler,), {"log_message": lambda *a: None}),
                      directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def official_archives(twin: Path, www: Path) -> dict[str, str]:
    """The twin packed as the two official archives, the PNGs in a zip inside the annotation zip; their sha256."""
    www.mkdir()
    inner = www / "panoptic_val2017.zip"
    with zipfile.ZipFile(inner, "w") as zf:
        for png in sorted((twin / "annotations" / "panoptic_val2017").iterdir()):
            zf.write(png, f"panoptic_val2017/{png.name}")
    with zipfile.ZipFile(www / "panoptic_annotations_trainval2017.zip", "w") as zf:
        zf.write(twin / "annotations" / "panoptic_val2017.json", "annotations/panoptic_val2017.json")
        zf.write(inner, "annotations/panoptic_val2017.zip")
    inner.unlink()
    with zipfile.ZipFile(www / "val2017.zip", "w") as zf:
        for photo in sorted((twin / "val2017").iterdir()):
            zf.write(photo, f"val2017/{photo.name}")
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in www.iterdir()}


def test_download_of_both_archives_and_the_nested_zip(twin, tmp_path, monkeypatch, capsys):
    sha = official_archives(twin, tmp_path / "www")
    with serving(tmp_path / "www") as base:
        monkeypatch.setitem(data.ARCHIVES, "coco_panoptic", {
            "val2017": (f"{base}/val2017.zip", sha["val2017.zip"]),
            "panoptic_annotations_trainval2017": (f"{base}/panoptic_annotations_trainval2017.zip",
                                                  sha["panoptic_annotations_trainval2017.zip"])})
        root = data.locate("coco_panoptic", kaggle_input=tmp_path / "none")
    assert root == data.cache_dir() / "coco_panoptic"
    assert (root / "panoptic_annotations_trainval2017" / "annotations" / "panoptic_val2017.zip").is_file()
    ds = CocoPanoptic(root, "all")  # unpacks the nested zip into the derived folder, once
    assert "a zip inside the annotation archive" in capsys.readouterr().out
    assert ds.png_folder.parent.parent == data.derived_dir("coco_panoptic") and len(ds) == 12
    assert ds.photo_folder == root / "val2017" / "val2017"
    assert torch.equal(ds[0][1]["id_map"], CocoPanoptic(twin, "all")[0][1]["id_map"])
    assert CocoPanoptic(root, "all").png_folder == ds.png_folder
    assert "a zip inside" not in capsys.readouterr().out
    assert data.find_local("coco_panoptic", kaggle_input=tmp_path / "none") == (root, "the local cache")


def test_not_found_names_both_archives(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "download_url", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("offline")))
    with pytest.raises(data.DataNotFoundError) as error:
        data.locate("coco_panoptic", kaggle_input=tmp_path / "none")
    message = str(error.value)
    for needle in ("annotations/panoptic_val2017.json", coco_panoptic.ANNOTATIONS_URL, coco_panoptic.PHOTOS_URL,
                   "unzip them into one folder", "COURSE_SMOKE=1", "offline"):
        assert needle in message


# --- damaged or incomplete data -------------------------------------------------------------------

def test_a_png_that_is_not_rgb_is_refused_naming_the_file(twin, tmp_path):
    png = next((twin / "annotations" / "panoptic_val2017").iterdir())
    rgb = Image.open(png)
    for name, image, message in (("palette.png", rgb.quantize(16), "mode 'P': a palette PNG"),
                                 ("grey.png", rgb.convert("L"), "mode 'L': a single-channel PNG"),
                                 ("rgba.png", rgb.convert("RGBA"), "mode 'RGBA'"),
                                 ("photo.png", rgb, "a JPEG image")):
        path = tmp_path / name
        image.save(path, format="JPEG" if name == "photo.png" else "PNG")
        with pytest.raises(ValueError, match=message) as error:
            read_id_map(path)
        assert str(path) in str(error.value)
    (tmp_path / "cut.png").write_bytes(png.read_bytes()[:200])
    with pytest.raises(DamagedFileError, match="cut.png"):
        read_id_map(tmp_path / "cut.png")


def edited_copy(twin: Path, tmp_path: Path) -> tuple[Path, dict, Path]:
    copy = shutil.copytree(twin, tmp_path / "copy")
    content = json.loads((copy / "annotations" / "panoptic_val2017.json").read_text())
    return copy, content, copy / "annotations" / "panoptic_val2017.json"


def test_a_missing_photo_or_png_is_an_error_naming_it(twin, tmp_path, capsys):
    copy, content, _ = edited_copy(twin, tmp_path)
    photo = copy / "val2017" / content["images"][3]["file_name"]
    photo.unlink()
    with pytest.raises(FileNotFoundError, match="1 of the 12 photos") as error:
        CocoPanoptic(copy, "all")
    assert str(photo) in str(error.value) and "val2017.zip" in str(error.value)
    shutil.copy(twin / "val2017" / photo.name, photo)
    png = copy / "annotations" / "panoptic_val2017" / content["annotations"][5]["file_name"]
    png.rename(copy / "annotations" / "panoptic_val2017" / "000000000001.png")  # renamed: missing, and one unused
    with pytest.raises(FileNotFoundError, match="1 of the 12 PNGs") as error:
        CocoPanoptic(copy, "all")
    assert str(png) in str(error.value)
    assert "1 PNGs that panoptic_val2017.json does not list" in capsys.readouterr().out


def test_a_png_id_missing_from_the_json_or_a_wrong_area_stops_the_item(twin, tmp_path):
    copy, content, json_path = edited_copy(twin, tmp_path)
    first, second = content["annotations"][0], content["annotations"][1]
    dropped = first["segments_info"].pop(0)  # an id in the PNG that the JSON no longer lists
    second["segments_info"][0]["area"] += 1
    json_path.write_text(json.dumps(content))
    ds = CocoPanoptic(copy, "all")
    with pytest.raises(ValueError, match=f"{first['file_name']}: segment ids \\[{dropped['id']}\\] are in the PNG"):
        ds[0]
    with pytest.raises(ValueError, match=f"{second['file_name']}: segment .* but the JSON gives area"):
        ds[1]
    photo = copy / "val2017" / content["images"][2]["file_name"]
    Image.open(photo).resize((64, 48)).save(photo)
    with pytest.raises(ValueError, match="must be the same size"):
        ds[2]
