import re
import subprocess
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose, LoadImaged

from course_utils.datasets import DamagedFileError, brats


@pytest.fixture(scope="module", params=[False, True], ids=["nii", "nii.gz"])
def twin(request, tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    return brats.write_twin(root, case_numbers=(1, 2, 3, 355), shape=(24, 24, 20), compressed=request.param)


def load(case):
    return Compose([LoadImaged(["image", "label"], ensure_channel_first=True), brats.BraTSRegionsd("label"),
                    brats.to_pair])(case)


def test_cases_in_the_kaggle_layout_including_case_355(twin):
    cases = brats.find_cases(twin)
    assert [c["id"] for c in cases] == ["BraTS20_Training_001", "BraTS20_Training_002", "BraTS20_Training_003",
                                        "BraTS20_Training_355"]
    assert cases[-1]["label"].endswith(("W39_1998.09.19_Segm.nii", "W39_1998.09.19_Segm.nii.gz"))
    assert all(len(c["image"]) == 4 and c["image"][0].endswith(("_flair.nii", "_flair.nii.gz")) for c in cases)
    assert (twin / "BraTS2020_ValidationData").is_dir()  # unlabelled cases are there, and not listed


def test_labels_are_0_1_2_4_and_some_are_floats(twin):
    cases = brats.find_cases(twin)
    values = set()
    for case in cases:
        values |= set(np.unique(np.asarray(nib.load(case["label"]).dataobj)).tolist())
    assert values == {0, 1, 2, 4}
    assert nib.load(cases[1]["label"]).get_data_dtype() == np.float32


def test_pipeline_gives_four_modalities_and_three_nested_regions(twin):
    image, regions = load(brats.find_cases(twin)[1])  # the case with float labels
    assert image.shape == (4, 24, 24, 20) and regions.shape == (3, 24, 24, 20)
    tc, wt, et = regions.bool()
    assert (tc <= wt).all() and (et <= tc).all() and wt.any()
    raw = np.round(np.asarray(nib.load(brats.find_cases(twin)[1]["label"]).dataobj))
    assert torch.equal(wt, torch.from_numpy(raw > 0))


def test_a_label_3_is_refused_with_the_file_named(twin, tmp_path):
    case = brats.find_cases(twin)[0]
    label = nib.load(case["label"])
    data = np.asarray(label.dataobj).copy()
    data[data == 1] = 3  # a BraTS 2017 label
    bad = tmp_path / "old_seg.nii"
    nib.save(nib.Nifti1Image(data, label.affine), bad)
    with pytest.raises(RuntimeError) as error:  # MONAI's Compose reports which transform failed...
        load({**case, "label": str(bad)})
    assert isinstance(error.value.__cause__, ValueError)  # ...and our message, naming the file, is the cause
    assert "old_seg.nii" in str(error.value.__cause__) and "not BraTS 2020 labels" in str(error.value.__cause__)


def test_missing_files_and_splits(twin, tmp_path):
    cases = brats.find_cases(twin)
    train, val = brats.split_cases(cases, "train"), brats.split_cases(cases, "val")
    assert len(val) == 1 and len(train) == 3 and not {c["id"] for c in train} & {c["id"] for c in val}
    assert brats.split_cases(cases, "test") == []
    with pytest.raises(ValueError, match="split"):
        brats.split_cases(cases, "holdout")
    copy = brats.write_twin(tmp_path / "copy", case_numbers=(7,), shape=(16, 16, 16))
    case_dir = copy / "BraTS2020_TrainingData" / brats.TRAINING_FOLDER / "BraTS20_Training_007"
    (case_dir / "BraTS20_Training_007_t1ce.nii").unlink()
    with pytest.raises(FileNotFoundError, match="t1ce"):
        brats.find_cases(copy)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=brats.TRAINING_FOLDER):
        brats.find_cases(empty)


def test_a_test_split_chooses_nothing_and_leaves_the_val_cases_alone():
    cases = [{"id": f"BraTS20_Training_{n:03d}"} for n in range(1, 11)]
    parts = {s: [c["id"] for c in brats.split_cases(cases, s, 0.2, 0, test_fraction=0.2)]
             for s in ("train", "val", "test")}
    assert [len(parts[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    assert sorted(sum(parts.values(), [])) == [c["id"] for c in cases]  # each case in exactly one part
    assert parts["val"] == [c["id"] for c in brats.split_cases(cases, "val", 0.2, 0)]
    with pytest.raises(ValueError, match="training"):
        brats.split_cases(cases, "train", 0.5, 0, test_fraction=0.5)


# --- damaged and ambiguous data: named, never silently used --------------------------------------

def small_twin(root, compressed=True, case_numbers=(1, 2)):
    root = brats.write_twin(root, case_numbers=case_numbers, shape=(16, 16, 12), compressed=compressed)
    return root, root / "BraTS2020_TrainingData" / brats.TRAINING_FOLDER


def case_file(training, number, what, compressed=True):
    case = f"BraTS20_Training_{number:03d}"
    return training / case / f"{case}_{what}{'.nii.gz' if compressed else '.nii'}"


@pytest.mark.parametrize("compressed", [True, False], ids=["nii.gz", "nii"])
def test_a_truncated_file_names_the_case_and_the_file(tmp_path, compressed):
    root, training = small_twin(tmp_path / "twin", compressed)
    path = case_file(training, 2, "t1ce", compressed)
    path.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    with pytest.raises(DamagedFileError, match=r"BraTS20_Training_002: cannot read .*t1ce\.nii.* damaged"):
        brats.cache_cases(brats.find_cases(root), tmp_path / "cache")


def test_corrupt_bytes_in_a_nii_gz_are_caught_by_its_checksum(tmp_path):
    root, training = small_twin(tmp_path / "twin")
    path = case_file(training, 1, "flair")
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + 16] = bytes(b ^ 0x5A for b in raw[middle:middle + 16])  # same length, other bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(DamagedFileError, match="BraTS20_Training_001.*flair"):
        brats.read_volume(path)


def rewrite(path, data=None, affine=None):
    image = nib.load(path)
    data = np.asarray(image.dataobj) if data is None else data
    nib.save(nib.Nifti1Image(data, image.affine if affine is None else affine), path)


@pytest.mark.parametrize("what", ["t2", "seg"])
def test_a_file_of_another_shape_is_refused(tmp_path, what):
    root, training = small_twin(tmp_path / "twin")
    path = case_file(training, 2, what)
    rewrite(path, np.asarray(nib.load(path).dataobj)[:, :, :-1])  # one slice fewer
    with pytest.raises(ValueError, match=rf"BraTS20_Training_002: .*_{what}\.nii\.gz has shape \(16, 16, 11\), "
                                         rf"but BraTS20_Training_002_flair\.nii\.gz has shape \(16, 16, 12\)"):
        brats.cache_cases(brats.find_cases(root), tmp_path / "cache")


@pytest.mark.parametrize("what", ["t1", "seg"])
def test_a_file_of_another_affine_is_refused(tmp_path, what):
    root, training = small_twin(tmp_path / "twin")
    path = case_file(training, 1, what)
    rewrite(path, affine=np.diag([1.0, 1.0, 1.0, 1.0]))  # RAS instead of the case's LPS: mirrored voxels
    with pytest.raises(ValueError, match=rf"BraTS20_Training_001: .*_{what}\.nii\.gz has affine .* but "
                                         rf"BraTS20_Training_001_flair\.nii\.gz has affine .*one voxel grid"):
        brats.cache_cases(brats.find_cases(root), tmp_path / "cache")


def test_a_label_3_is_refused_by_the_cache_with_the_file_named(tmp_path):
    root, training = small_twin(tmp_path / "twin")
    path = case_file(training, 1, "seg")
    data = np.asarray(nib.load(path).dataobj).copy()
    data[data == 1] = 3
    rewrite(path, data)
    with pytest.raises(ValueError, match=r"BraTS20_Training_001_seg\.nii\.gz: label values \[3\] are not BraTS"):
        brats.cache_cases(brats.find_cases(root), tmp_path / "cache")


def test_case_folders_differing_only_in_letter_case_are_an_error(tmp_path):
    root, training = small_twin(tmp_path / "twin")
    (training / "BraTS20_Training_001").rename(training / "brats20_training_001")
    small_twin(tmp_path / "twin")  # and the case again under its right name
    with pytest.raises(ValueError, match=r"letter case.*BraTS20_Training_001.*brats20_training_001"):
        brats.find_cases(root)


def test_other_folders_are_reported_and_plain_files_expected(tmp_path, capsys):
    root, training = small_twin(tmp_path / "twin")
    (training / "name_mapping.csv").write_text("BraTS_2020_subject_ID\n")  # as in the real dataset: no word
    (training / "survival_info.csv").write_text("Brats20ID\n")
    for name in ("BraTS20_Training_001_copy", "notes", "BraTS20_Training_1"):
        (training / name).mkdir()
    assert [c["id"] for c in brats.find_cases(root)] == ["BraTS20_Training_001", "BraTS20_Training_002"]
    out = capsys.readouterr().out
    assert "3 folders that are not BraTS20_Training_NNN case folders, not used" in out and "notes" in out
    assert "name_mapping.csv" not in out


def test_two_files_for_one_modality_or_label_are_an_error(tmp_path):
    root, training = small_twin(tmp_path / "twin")
    path = case_file(training, 1, "t1")
    path.with_name(path.name.removesuffix(".gz")).write_bytes(b"")  # t1.nii beside t1.nii.gz
    with pytest.raises(ValueError, match=r"BraTS20_Training_001: both .*_t1\.nii and .*_t1\.nii\.gz"):
        brats.find_cases(root)
    path.with_name(path.name.removesuffix(".gz")).unlink()
    (case_file(training, 1, "seg").parent / brats.CASE_355_LABEL).write_bytes(b"")
    with pytest.raises(ValueError, match=r"BraTS20_Training_001: 2 label files"):
        brats.find_cases(root)


# --- the cache -----------------------------------------------------------------------------------

def test_cache_is_built_once_and_reused(twin, tmp_path, monkeypatch, capsys):
    cached = brats.cache_cases(brats.find_cases(twin), tmp_path)
    assert re.search(r"4 cases, 4 prepared now in \d+ s, 0 reused", capsys.readouterr().out)
    stamps = {p: p.stat().st_mtime_ns for c in cached for p in Path(c["cache"]).iterdir()}
    monkeypatch.setattr(brats, "_build", lambda *a: pytest.fail("the cache was built again"))
    again = brats.cache_cases(brats.find_cases(twin), tmp_path)
    assert again == cached and "4 cases, 0 prepared now, 4 reused" in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for c in again for p in Path(c["cache"]).iterdir()}


def test_cache_is_rebuilt_when_a_source_file_or_the_preprocessing_changes(tmp_path, monkeypatch, capsys):
    root, training = small_twin(tmp_path / "twin")
    cached = brats.cache_cases(brats.find_cases(root), tmp_path / "cache")
    before = np.load(Path(cached[0]["cache"]) / "image.npy")
    path = case_file(training, 1, "t1")
    rewrite(path, np.asarray(nib.load(path).dataobj) ** 2)  # not a linear change: z-scores differ
    capsys.readouterr()
    cached = brats.cache_cases(brats.find_cases(root), tmp_path / "cache")
    assert re.search(r"1 prepared now in \d+ s, 1 reused", capsys.readouterr().out)
    assert not np.array_equal(np.load(Path(cached[0]["cache"]) / "image.npy")[1], before[1])
    monkeypatch.setattr(brats, "CACHE_VERSION", brats.CACHE_VERSION + 1)
    brats.cache_cases(brats.find_cases(root), tmp_path / "cache")
    assert re.search(r"2 prepared now in \d+ s, 0 reused", capsys.readouterr().out)
    monkeypatch.setattr(brats, "CACHE_PARAMS", {**brats.CACHE_PARAMS, "image_dtype": "float32"})
    brats.cache_cases(brats.find_cases(root), tmp_path / "cache")
    assert re.search(r"2 prepared now in \d+ s, 0 reused", capsys.readouterr().out)


def test_a_build_killed_halfway_is_not_trusted(tmp_path, monkeypatch, capsys):
    root, _ = small_twin(tmp_path / "twin", case_numbers=(1,))
    save = np.save

    def dies_on_the_label(f, array):
        if array.dtype == np.uint8:
            raise KeyboardInterrupt  # the process killed while writing
        save(f, array)

    monkeypatch.setattr(np, "save", dies_on_the_label)
    with pytest.raises(KeyboardInterrupt):
        brats.cache_cases(brats.find_cases(root), tmp_path / "cache")
    monkeypatch.setattr(np, "save", save)
    folder = next((tmp_path / "cache").iterdir())
    assert not (folder / "meta.json").exists()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (folder / f"label.npy.tmp-{dead.pid}").write_bytes(b"half")  # what a process killed by a signal leaves
    cached = brats.cache_cases(brats.find_cases(root), tmp_path / "cache")
    assert "1 prepared now" in capsys.readouterr().out
    assert sorted(p.name for p in Path(cached[0]["cache"]).iterdir()) == ["image.npy", "label.npy", "meta.json"]


def test_the_cache_is_the_normalised_volume_cropped_to_the_brain(twin, tmp_path):
    from monai.transforms import NormalizeIntensity

    case = brats.cache_cases(brats.find_cases(twin), tmp_path)[1]  # the case with float labels
    image, label = brats._cached(case)
    assert image.dtype == np.float16 and label.dtype == np.uint8 and label.shape == image.shape[1:]
    assert label.shape < (24, 24, 20)  # cropped
    original = np.stack([np.asarray(nib.load(p).dataobj, np.float32) for p in case["image"]])
    expected = NormalizeIntensity(nonzero=True, channel_wise=True)(original)
    np.testing.assert_allclose(brats.paste_back(np.asarray(image, np.float32), case), expected, atol=0.01)
    # round trip: the label cropped and pasted back is the original label file, rounded
    raw = np.round(np.asarray(nib.load(case["label"]).dataobj))
    assert np.array_equal(brats.paste_back(label, case), raw) and np.array_equal(brats.read_label(case), raw)
    with pytest.raises(ValueError, match="prediction shape"):
        brats.paste_back(np.zeros((5, 5, 5)), case)


def test_paste_back_keeps_the_full_volume_conventions(twin, tmp_path):
    from course_utils.metrics import brats_dice, hd95

    case = brats.cache_cases(brats.find_cases(twin), tmp_path)[-1]  # case 355
    truth = brats.read_label(case)
    _, label = brats._cached(case)
    pred = brats.paste_back(np.zeros_like(label), case)  # predicting no tumour
    assert pred.shape == truth.shape == (24, 24, 20)
    assert brats_dice(pred, truth)["WT"] == 0.0
    assert hd95(pred > 0, truth > 0) == pytest.approx(np.linalg.norm([24, 24, 20]))  # the full volume's diagonal


def find(crop, volume):
    """The offset of ``crop`` (C, a, b, c) inside ``volume`` (C, A, B, C), or None."""
    size = crop.shape[1:]
    for offset in np.ndindex(*(n - s + 1 for n, s in zip(volume.shape[1:], size))):
        if np.array_equal(volume[(slice(None), *(slice(o, o + s) for o, s in zip(offset, size)))], crop):
            return offset
    return None


def test_random_crops_have_the_roi_and_image_and_label_align(twin, tmp_path):
    case = brats.cache_cases(brats.find_cases(twin), tmp_path)[0]
    image, label = brats._cached(case)
    crops = brats.RandomCrops([case], (12, 10, 8))
    offsets = set()
    for seed in range(4):
        torch.manual_seed(seed)
        crop, target = crops[0]
        assert crop.shape == (4, 12, 10, 8) and target.shape == (3, 12, 10, 8) and crop.dtype == torch.float32
        offset = find(crop.numpy(), np.asarray(image, np.float32))
        assert offset is not None
        box = tuple(slice(o, o + s) for o, s in zip(offset, (12, 10, 8)))
        assert torch.equal(target, brats.regions(label[box]))
        offsets.add(offset)
    assert len(offsets) > 1  # random positions
    big, big_target = brats.RandomCrops([case], (32, 32, 32))[0]  # larger than the brain: zero-padded
    assert big.shape == (4, 32, 32, 32) and big_target.shape == (3, 32, 32, 32)


def test_flips_move_image_and_label_together_and_the_seed_decides(twin, tmp_path):
    from monai.transforms import Compose, RandFlipd, RandScaleIntensityd

    case = brats.cache_cases(brats.find_cases(twin), tmp_path)[0]
    plain = brats.RandomCrops([case], (12, 12, 12))
    flipped = brats.RandomCrops([case], (12, 12, 12), Compose([RandFlipd(["image", "label"], prob=1.0,
                                                                          spatial_axis=0)]))
    torch.manual_seed(0)
    image, target = plain[0]
    torch.manual_seed(0)
    image_f, target_f = flipped[0]
    assert type(image_f) is torch.Tensor and type(target_f) is torch.Tensor  # plain tensors, not MetaTensors
    assert torch.equal(image_f, image.flip(1)) and torch.equal(target_f, target.flip(1))
    augmented = brats.RandomCrops([case], (12, 12, 12), Compose([RandScaleIntensityd("image", 0.5, prob=1.0)]))
    torch.manual_seed(5)
    first = augmented[0]
    torch.manual_seed(5)
    second = augmented[0]
    third = augmented[0]
    assert all(torch.equal(a, b) for a, b in zip(first, second))  # same torch seed, same sample
    assert not torch.equal(first[0], third[0])


def test_cached_volumes_for_validation(twin, tmp_path):
    cases = brats.cache_cases(brats.find_cases(twin), tmp_path)
    volumes = brats.CachedVolumes(cases)
    image, target = volumes[2]
    _, label = brats._cached(cases[2])
    assert image.shape == (4, *label.shape) and torch.equal(target, brats.regions(label))
    with pytest.raises(KeyError, match="cache_cases"):
        brats.CachedVolumes(brats.find_cases(twin))


def test_nan_voxels_are_refused(tmp_path):
    root, training = small_twin(tmp_path / "twin", case_numbers=(1,))
    path = case_file(training, 1, "t2")
    data = np.asarray(nib.load(path).dataobj).copy()
    data[3, 4, 5] = np.nan
    rewrite(path, data)
    with pytest.raises(DamagedFileError, match=r"BraTS20_Training_001: .*_t2\.nii\.gz contains NaN"):
        brats.cache_cases(brats.find_cases(root), tmp_path / "cache")


def test_a_loader_with_workers_repeats_its_samples_under_the_same_torch_seed(twin, tmp_path):
    from monai.transforms import Compose, RandFlipd

    cases = brats.cache_cases(brats.find_cases(twin), tmp_path)
    crops = brats.RandomCrops(cases, (12, 12, 12), Compose([RandFlipd(["image", "label"], prob=0.5, spatial_axis=0)]))
    loader = torch.utils.data.DataLoader(crops, batch_size=2, shuffle=True, num_workers=2)
    runs = []
    for _ in range(2):  # what fit's checkpoints restore: torch's generator, which also seeds the workers
        torch.manual_seed(7)
        runs.append([batch for batch in loader])
    assert all(torch.equal(a, b) for first, second in zip(*runs) for a, b in zip(first, second))
