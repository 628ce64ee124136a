import shutil

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from conftest import real_sample
from PIL import Image

from course_utils.datasets import kvasir_seg
from course_utils.datasets.kvasir_seg import KvasirSeg


def check_items(ds):
    for image, mask in (ds[i] for i in range(len(ds))):
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        assert mask.dtype == np.uint8 and mask.shape == image.shape[:2]
        assert set(np.unique(mask)) <= {0, 1} and 0 < mask.mean() < 1


def test_twin_in_kaggle_layout_uses_the_split_files(kvasir_twin):
    assert (kvasir_twin / "Kvasir-SEG" / "Kvasir-SEG" / "images").is_dir()
    train, val = KvasirSeg(kvasir_twin, "train"), KvasirSeg(kvasir_twin, "val")
    assert (len(train), len(val)) == (7, 3) and not set(train.ids) & set(val.ids)
    assert train.split_source.endswith("train.txt")
    check_items(train)


def test_twin_images_vary_in_size_and_masks_are_noisy_jpegs_like_the_real_ones(kvasir_twin):
    ds = KvasirSeg(kvasir_twin, "all")
    assert len({Image.open(p).size for p in ds.image_paths}) > 1
    for path in ds.mask_paths:
        assert path.suffix == ".jpg" and Image.open(path).mode == "RGB"
        grey = np.asarray(Image.open(path).convert("L"))
        levels = set(np.unique(grey))
        assert levels <= set(range(0, 9)) | set(range(247, 256))
        assert levels - {0, 255}, "JPEG compression noise is part of the format"


def test_twin_is_deterministic(tmp_path):
    a = kvasir_seg.write_twin(tmp_path / "a", n_images=2, n_val=1)
    b = kvasir_seg.write_twin(tmp_path / "b", n_images=2, n_val=1)
    for pa, pb in zip(sorted(a.rglob("*.jpg")), sorted(b.rglob("*.jpg"))):
        assert pa.name == pb.name and pa.read_bytes() == pb.read_bytes()


def test_official_layout_gets_a_seeded_disjoint_split(tmp_path):
    root = kvasir_seg.write_twin(tmp_path, n_images=10, layout="official")
    assert not (root / "train.txt").exists()
    train, val = KvasirSeg(root, "train", seed=3), KvasirSeg(root, "val", seed=3)
    assert len(val) == 1 and len(train) == 9 and not set(train.ids) & set(val.ids)
    assert KvasirSeg(root, "val", seed=3).ids == val.ids and train.split_source == "seeded split"


def test_a_monitor_split_is_carved_out_of_the_training_ids_only(kvasir_twin, tmp_path):
    # the best epoch is chosen on "monitor", so "val" (what the papers report on) chooses nothing
    full_train, val = KvasirSeg(kvasir_twin, "train"), KvasirSeg(kvasir_twin, "val")
    train = KvasirSeg(kvasir_twin, "train", monitor_fraction=0.3)
    monitor = KvasirSeg(kvasir_twin, "monitor", monitor_fraction=0.3)
    assert (len(train), len(monitor)) == (5, 2) and sorted(train.ids + monitor.ids) == sorted(full_train.ids)
    assert not set(monitor.ids) & set(val.ids)
    assert KvasirSeg(kvasir_twin, "val", monitor_fraction=0.3).ids == val.ids
    assert KvasirSeg(kvasir_twin, "monitor", monitor_fraction=0.3).ids == monitor.ids  # seeded
    assert KvasirSeg(kvasir_twin, "monitor", monitor_fraction=0.3, seed=1).ids != monitor.ids
    assert "monitor" in train.split_source and monitor.split_source.startswith("a seeded 30%")
    root = kvasir_seg.write_twin(tmp_path, n_images=10, layout="official")  # no split files: seeded val, then monitor
    official = [KvasirSeg(root, s, monitor_fraction=0.25) for s in ("train", "monitor", "val")]
    assert [len(d) for d in official] == [7, 2, 1] and len({i for d in official for i in d.ids}) == 10
    with pytest.raises(ValueError, match="monitor_fraction > 0"):
        KvasirSeg(kvasir_twin, "monitor")
    with pytest.raises(ValueError, match="none to train on"):
        KvasirSeg(kvasir_twin, "train", monitor_fraction=0.95)


def test_a_single_split_file_gives_its_complement_to_the_other_split(kvasir_twin, tmp_path):
    root = shutil.copytree(kvasir_twin, tmp_path / "copy")
    (root / "train.txt").unlink()
    train, val = KvasirSeg(root, "train"), KvasirSeg(root, "val")
    assert len(val) == 3 and len(train) == 7 and not set(train.ids) & set(val.ids)
    assert "not in" in train.split_source


def test_transform_receives_image_and_mask_together(kvasir_twin):
    tf = A.Compose([A.Resize(32, 48), A.Normalize(), ToTensorV2()])
    image, mask = KvasirSeg(kvasir_twin, "val", transform=tf)[0]
    assert image.shape == (3, 32, 48) and image.dtype == torch.float32 and mask.shape == (32, 48)
    assert set(mask.unique().tolist()) <= {0, 1}  # masks resize with nearest neighbour


def test_bad_inputs_name_the_file(kvasir_twin, tmp_path):
    root = shutil.copytree(kvasir_twin, tmp_path / "copy")
    masks = root / "Kvasir-SEG" / "Kvasir-SEG" / "masks"
    first = sorted(masks.iterdir())[0]
    Image.open(first).resize((10, 10)).save(first)
    ds = KvasirSeg(root, "all")
    with pytest.raises(ValueError, match=first.name):
        ds[ds.ids.index(first.stem)]
    first.unlink()
    with pytest.raises(FileNotFoundError, match=first.stem):
        KvasirSeg(root, "all")
    (root / "val.txt").write_text("no-such-image\n")
    shutil.copy(sorted(masks.iterdir())[0], first)
    with pytest.raises(FileNotFoundError, match="val.txt"):
        KvasirSeg(root, "val")
    with pytest.raises(FileNotFoundError, match="images/ and masks/"):
        KvasirSeg(tmp_path / "copy" / "Kvasir-SEG" / "Kvasir-SEG" / "images")
    with pytest.raises(ValueError, match="split"):
        KvasirSeg(root, "test")


@pytest.mark.parametrize("nesting", ["official", "kaggle"])
def test_real_samples_in_both_nestings(tmp_path, nesting):
    real = real_sample("kvasir-seg", "Kvasir-SEG")
    root = tmp_path / "kvasirseg"
    shutil.copytree(real, root / "Kvasir-SEG" / "Kvasir-SEG" if nesting == "kaggle" else root / "Kvasir-SEG")
    ds = KvasirSeg(root, "all")
    assert len(ds) == 5
    check_items(ds)
    raw = np.asarray(Image.open(ds.mask_paths[0]).convert("L"))
    assert (raw > 0).sum() > (raw >= 128).sum()  # the pitfall: compression noise is not polyp
    assert ds[0][1].sum() == (raw >= 128).sum()


def test_dataset_with_a_pipeline_reaches_spawned_workers(kvasir_twin):
    # spawn is the default start method on macOS and Windows (and forkserver on Linux from Python 3.14):
    # everything a worker needs must pickle, so the notebooks pass a plain A.Compose, never a notebook function
    tf = A.Compose([A.HorizontalFlip(), A.Resize(32, 32), A.Normalize(), ToTensorV2()], seed=0)
    loader = torch.utils.data.DataLoader(KvasirSeg(kvasir_twin, "train", transform=tf), batch_size=4,
                                         num_workers=1, multiprocessing_context="spawn")
    images, masks = next(iter(loader))
    assert images.shape == (4, 3, 32, 32) and masks.shape == (4, 32, 32)


# --- damaged and ambiguous data -------------------------------------------------------------------

def kvasir_copy(kvasir_twin, tmp_path):
    root = shutil.copytree(kvasir_twin, tmp_path / "copy")
    return root, root / "Kvasir-SEG" / "Kvasir-SEG"


@pytest.mark.parametrize("damage", ["truncate", "corrupt"])
@pytest.mark.parametrize("folder", ["images", "masks"])
def test_a_damaged_jpeg_is_an_error_that_names_it(kvasir_twin, tmp_path, folder, damage):
    from course_utils.datasets import DamagedFileError

    root, inner = kvasir_copy(kvasir_twin, tmp_path)
    target = sorted((inner / folder).iterdir())[0]
    raw = bytearray(target.read_bytes())
    if damage == "truncate":
        raw = raw[: len(raw) // 2]
    else:  # zeros in the middle of the compressed data: PIL would decode a garbled picture without a word
        raw[len(raw) // 2: len(raw) // 2 + 200] = bytes(200)
    target.write_bytes(bytes(raw))
    ds = KvasirSeg(root, "all")
    with pytest.raises(DamagedFileError, match=target.name):
        ds[ds.ids.index(target.stem)]


def test_an_id_in_both_split_files_is_refused(kvasir_twin, tmp_path):
    root, _ = kvasir_copy(kvasir_twin, tmp_path)
    leaked = (root / "train.txt").read_text().split()[0]
    (root / "val.txt").write_text((root / "val.txt").read_text() + leaked + "\n")
    with pytest.raises(ValueError, match=f"both .*{leaked}"):
        KvasirSeg(root, "train")


def test_two_files_with_one_id_are_refused(kvasir_twin, tmp_path):
    root, inner = kvasir_copy(kvasir_twin, tmp_path)
    first = sorted((inner / "images").iterdir())[0]
    Image.open(first).save(first.with_suffix(".png"))
    with pytest.raises(ValueError, match=f"{first.name} and {first.stem}.png"):
        KvasirSeg(root, "train")


def test_unused_files_are_reported_not_skipped_silently(kvasir_twin, tmp_path, capsys):
    root, inner = kvasir_copy(kvasir_twin, tmp_path)
    shutil.copy(sorted((inner / "masks").iterdir())[0], inner / "masks" / "orphan.jpg")
    extra = sorted((inner / "images").iterdir())[0]
    for name in ("unlisted.jpg",):
        shutil.copy(extra, inner / "images" / name)
        shutil.copy(inner / "masks" / extra.name, inner / "masks" / name)
    (inner / "images" / "notes.txt").write_text("not an image")
    KvasirSeg(root, "train")
    out = capsys.readouterr().out
    assert "1 " in out and "masks without an image" in out and "orphan" in out
    assert "listed in neither split file" in out and "unlisted" in out
    assert "not .jpg/.png images" in out and "notes.txt" in out


# --- resuming a notebook-style run ----------------------------------------------------------------

def notebook_style_run(root, checkpoint_dir, epochs):
    """Notebook 03 in miniature: a seeded albumentations pipeline, a shuffling DataLoader, fit with OneCycle."""
    from course_utils import runtime, train

    runtime.seed_everything(0)
    tf = A.Compose([A.Resize(24, 24), A.HorizontalFlip(), A.Affine(rotate=(-20, 20), p=0.5),
                    A.ColorJitter(p=0.5), A.Normalize(), ToTensorV2()], seed=0)
    loader = torch.utils.data.DataLoader(KvasirSeg(root, "train", transform=tf), batch_size=3, shuffle=True,
                                         drop_last=True)
    val = torch.utils.data.DataLoader(KvasirSeg(root, "val", transform=A.Compose(
        [A.Resize(24, 24), A.Normalize(), ToTensorV2()], seed=0)), batch_size=3)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=4 * len(loader))

    def loss_fn(logits, masks):
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, masks[:, None].float())

    history = train.fit(model, loader, val, loss_fn, opt, epochs=epochs, scheduler=sched, device=torch.device("cpu"),
                        checkpoint_dir=checkpoint_dir, save_every=0, progress=False)
    return model, history


def test_a_resumed_notebook_run_equals_an_uninterrupted_one(kvasir_twin, tmp_path):
    straight, full_history = notebook_style_run(kvasir_twin, tmp_path / "straight", epochs=4)
    notebook_style_run(kvasir_twin, tmp_path / "resumed", epochs=2)  # the session dies after epoch 2
    # the notebook runs again from the top: a rebuilt pipeline, loader and model, then fit resumes
    resumed, history = notebook_style_run(kvasir_twin, tmp_path / "resumed", epochs=4)
    assert [h["train_loss"] for h in history] == [h["train_loss"] for h in full_history]
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q)
