"""DAVIS 2017 annotations (course_utils/datasets/davis.py): the real palette PNGs, and the same ids from grey and
RGB copies; lossy or recoloured copies are refused."""

import numpy as np
import pytest
from conftest import real_sample
from PIL import Image

from course_utils.datasets.davis import read_davis_mask, voc_palette


def test_the_palette_is_vocs():
    palette = voc_palette()
    assert palette[:4].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0]]
    assert palette[255].tolist() == [224, 224, 192]  # void's colour in VOC and DAVIS
    assert len({tuple(c) for c in palette}) == 256


@pytest.mark.parametrize("sequence, width, objects", [("bike-packing", 910, 2), ("dogs-jump", 854, 3)])
def test_real_annotations_are_palette_pngs_of_object_ids(sequence, width, objects, tmp_path):
    path = real_sample("davis2017", "Annotations", "480p", sequence, "00000.png")
    ids = read_davis_mask(path)
    assert ids.shape == (480, width) and ids.dtype == np.uint8
    assert np.unique(ids).tolist() == list(range(objects + 1))
    with Image.open(path) as image:
        assert image.mode == "P" and image.getpalette()[:12] == voc_palette()[:4].ravel().tolist()
        image.convert("RGB").save(tmp_path / "rgb.png")  # what a converting tool leaves
        grey = np.asarray(image.convert("L"))
    assert np.array_equal(read_davis_mask(tmp_path / "rgb.png"), ids)
    assert not np.array_equal(grey, ids)  # the pitfall: convert("L") gives grey levels of the colours, not ids


def test_grey_copies_with_void_and_bad_copies(tmp_path):
    ids = np.zeros((6, 8), np.uint8)
    ids[1:3, 1:4], ids[4:, 5:], ids[0, :] = 1, 2, 255
    Image.fromarray(ids).save(tmp_path / "grey.png")
    assert np.array_equal(read_davis_mask(tmp_path / "grey.png"), ids)
    Image.fromarray(voc_palette()[ids]).save(tmp_path / "rgb.png")
    assert np.array_equal(read_davis_mask(tmp_path / "rgb.png"), ids)
    Image.fromarray(voc_palette()[ids]).save(tmp_path / "mask.jpg", quality=90)
    with pytest.raises(ValueError, match="mask.jpg: a JPEG file"):
        read_davis_mask(tmp_path / "mask.jpg")
    odd = voc_palette()[ids]
    odd[0, 0] = (10, 20, 30)
    Image.fromarray(odd).save(tmp_path / "odd.png")
    with pytest.raises(ValueError, match=r"odd.png: an RGB annotation with 1 colour.*\(10, 20, 30\)"):
        read_davis_mask(tmp_path / "odd.png")
