"""The helpers every dataset module shares (course_utils/datasets/__init__.py)."""

import albumentations as A
import numpy as np
import pytest
import torch

from course_utils.datasets import report_unused, reseed, write_atomic


def flips(transform, image, draws=200):
    """Which of (horizontal, vertical) flip happened in each of ``draws`` reseeded samples."""
    torch.manual_seed(0)
    seen = []
    for _ in range(draws):
        reseed(transform)
        out = transform(image=image)["image"]
        corner = out[0, 0]  # the top-left pixel tells which flips happened
        seen.append((bool(corner in (image[0, -1], image[-1, -1])), bool(corner in (image[-1, 0], image[-1, -1]))))
    return seen


def test_reseed_draws_each_transform_independently_and_repeats_with_the_torch_seed():
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    tf = A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)], seed=0)
    seen = flips(tf, image)
    # all four combinations occur: the two coin flips are not one shared coin
    assert set(seen) == {(False, False), (False, True), (True, False), (True, True)}
    assert flips(tf, image) == seen  # the same torch seed, the same draws


def test_report_unused_prints_once_with_examples(capsys):
    report_unused("/data/x", "stray files", ["a.txt", "b.txt", "c.txt", "d.txt"])
    report_unused("/data/x", "stray files", ["a.txt", "b.txt", "c.txt", "d.txt"])
    report_unused("/data/x", "stray files", [])
    out = capsys.readouterr().out
    assert out.count("note: /data/x: 4 stray files, not used, e.g. ['a.txt', 'b.txt', 'c.txt']") == 1


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "f.bin"
    write_atomic(target, lambda f: f.write(b"old"))

    def broken(f):
        f.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_atomic(target, broken)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_read_image_keeps_the_stored_pixels_of_an_exif_rotated_jpeg(tmp_path):
    """Labels describe the stored pixels: a JPEG tagged 'rotate 180' or 'rotate 90' must not be turned."""
    from PIL import Image

    from course_utils.datasets import read_grey, read_image

    stored = np.zeros((20, 30, 3), np.uint8)
    stored[:5, :5] = 255  # a white corner, top left as stored
    for orientation in (3, 6):  # 180 degrees; 90 degrees clockwise
        exif = Image.Exif()
        exif[0x0112] = orientation
        path = tmp_path / f"tagged_{orientation}.jpg"
        Image.fromarray(stored).save(path, exif=exif.tobytes(), quality=95)
        for image in (read_image(path), read_grey(path)):
            assert image.shape[:2] == (20, 30) and image[:5, :5].mean() > 200 and image[-5:, -5:].mean() < 50
