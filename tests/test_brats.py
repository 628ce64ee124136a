import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import Compose, LoadImaged

from course_utils.datasets import brats


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
    with pytest.raises(ValueError, match="split"):
        brats.split_cases(cases, "test")
    copy = brats.write_twin(tmp_path / "copy", case_numbers=(7,), shape=(16, 16, 16))
    case_dir = copy / "BraTS2020_TrainingData" / brats.TRAINING_FOLDER / "BraTS20_Training_007"
    (case_dir / "BraTS20_Training_007_t1ce.nii").unlink()
    with pytest.raises(FileNotFoundError, match="t1ce"):
        brats.find_cases(copy)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=brats.TRAINING_FOLDER):
        brats.find_cases(empty)
