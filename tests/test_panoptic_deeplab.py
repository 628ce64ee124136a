import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn
from torch.utils.data import DataLoader

from course_utils import runtime, train
from course_utils.models.panoptic_deeplab import (
    PanopticDeepLab,
    find_centers,
    panoptic_loss,
    panoptic_losses,
    panoptic_postprocess,
    panoptic_postprocess_batch,
    panoptic_targets,
    semantic_loss,
    semantic_to_panoptic_by_components,
)

LIGHT = dict(decoder_channels=(32, 16), aspp_channels=32, head_channels=16, output_stride=32)
GROUND, SKY, CAR, PERSON = 0, 1, 2, 3  # two stuff classes, two thing classes
THINGS = (CAR, PERSON)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def scene():
    """A 40x64 street: sky above row 12, ground below, two cars side by side touching (1, 2), a person (3) touching
    a third car (5), and a lone person (4). Returns (semantic, instance), both (H, W) int64."""
    semantic = torch.full((40, 64), GROUND)
    semantic[:12] = SKY
    instance = torch.zeros(40, 64, dtype=torch.long)
    boxes = {1: (CAR, 15, 25, 4, 14), 2: (CAR, 15, 25, 14, 24), 3: (PERSON, 28, 36, 30, 42),
             4: (PERSON, 14, 22, 44, 56), 5: (CAR, 28, 36, 18, 30)}
    for k, (category, y0, y1, x0, x1) in boxes.items():
        semantic[y0:y1, x0:x1] = category
        instance[y0:y1, x0:x1] = k
    return semantic, instance


def perfect_outputs(semantic, instance, center=None):
    """What a perfect network would output for this scene: one-hot logits, and the training targets as centre
    heatmap and offsets."""
    made = panoptic_targets(instance)
    logits = F.one_hot(semantic, max(4, int(semantic.max()) + 1)).permute(2, 0, 1).float() * 10
    return logits, made["center"][0] if center is None else center, made["offset"][0]


def assert_same_instances(id_map, segments, semantic, instance):
    """A bijection between the true instances and the predicted thing segments, with equal pixels and classes."""
    things = {s["id"]: s for s in segments if s["isthing"]}
    true_ids = [k for k in instance.unique().tolist() if k]
    assert len(things) == len(true_ids)
    for k in true_ids:
        mask = instance == k
        found = id_map[mask].unique().tolist()
        assert len(found) == 1 and found[0] in things, f"instance {k} is split or void: {found}"
        assert torch.equal(id_map == found[0], mask), f"instance {k} does not have exactly its own pixels"
        assert things[found[0]]["category_id"] == int(semantic[mask][0])


def assert_stuff(id_map, segments, semantic, classes=(GROUND, SKY)):
    stuff = {s["category_id"]: s["id"] for s in segments if not s["isthing"]}
    assert sorted(stuff) == sorted(classes)
    for category, segment_id in stuff.items():
        assert torch.equal(id_map == segment_id, semantic == category)


# --- the network ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("encoder, kwargs, size, millions", [
    ("resnet18", LIGHT, (64, 96), (12.0, 12.3)),  # 11.18 M in the encoder, 0.97 M in decoders and heads
    ("resnet18", LIGHT, (70, 90), (12.0, 12.3)),  # not a multiple of 32
    ("mobilenet_v2", LIGHT, (64, 96), (4.5, 4.8)),  # 2.22 M encoder; its 1280 deep channels make the ASPPs big
], ids=["resnet18-light-12.2M", "resnet18-light-odd-size", "mobilenet_v2-light-4.6M"])
def test_forward_returns_three_maps_at_the_input_size(encoder, kwargs, size, millions):
    torch.manual_seed(0)
    model = PanopticDeepLab(5, encoder, **kwargs).eval()
    assert millions[0] * 1e6 < count(model) < millions[1] * 1e6
    with torch.no_grad():
        out = model(torch.randn(2, 3, *size))
    assert set(out) == {"semantic", "center", "offset"}
    assert out["semantic"].shape == (2, 5, *size)
    assert out["center"].shape == (2, 1, *size)
    assert out["offset"].shape == (2, 2, *size)


def test_paper_widths_by_default_and_their_parameter_count():
    model = PanopticDeepLab(19)  # resnet34, output stride 16, Cityscapes' 19 classes
    assert model.semantic_decoder.aspp.project[0][0].out_channels == 256
    assert [p[0].out_channels for p in model.semantic_decoder.project] == [64, 32]  # skips from stride 8, 4
    assert [p[0].out_channels for p in model.instance_decoder.project] == [32, 16]
    assert model.center_head[-1].in_channels == 32
    assert count(model.encoder) == 21_284_672
    assert 8.5e6 < count(model) - count(model.encoder) < 8.7e6  # 8.6 M in the two decoders and three heads
    with pytest.raises(ValueError, match="output_stride"):
        PanopticDeepLab(3, "resnet18", output_stride=8)


def test_imagenet_encoder_weights_are_found_offline(monkeypatch, tmp_path):
    source = PanopticDeepLab(3, "resnet18", **LIGHT).encoder
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, str(tmp_path / "resnet18.imagenet.safetensors"))
    monkeypatch.setenv("COURSE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setattr(runtime, "KAGGLE_INPUT", tmp_path / "no-kaggle")
    model = PanopticDeepLab(3, "resnet18", encoder_weights="imagenet", **LIGHT)
    for key, value in model.encoder.state_dict().items():
        torch.testing.assert_close(value, state[key])


# --- targets --------------------------------------------------------------------------------------------------

def test_targets_of_two_rectangles_by_hand():
    instance = torch.zeros(20, 30, dtype=torch.long)
    instance[2:7, 3:10] = 1  # 5 x 7: centre of mass (4, 6)
    instance[10:17, 15:28] = 2  # 7 x 13: centre of mass (13, 21)
    made = panoptic_targets(instance, sigma=8.0)
    center, offset, weight = made["center"][0, 0], made["offset"][0], made["offset_weight"][0, 0]
    assert center.shape == (20, 30) and offset.shape == (2, 20, 30)
    assert center[4, 6] == 1.0 and center[13, 21] == 1.0
    peaks = find_centers(center, threshold=0.1, nms_kernel=7)
    assert sorted(peaks.tolist()) == [[4, 6], [13, 21]]  # exactly two local maxima
    # the maximum of the two Gaussians: at (0, 0) the first is exp(-(4^2 + 6^2) / (2 * 8^2))
    assert center[0, 0].item() == pytest.approx(math.exp(-(16 + 36) / 128))
    assert center[13, 15].item() == pytest.approx(math.exp(-36 / 128))  # 6 columns left of the second centre
    # offsets point from the pixel to its centre: (dy, dx) = centre - pixel
    assert offset[:, 2, 3].tolist() == [2.0, 3.0]  # top-left corner of the first rectangle
    assert offset[:, 4, 6].tolist() == [0.0, 0.0]
    assert offset[:, 16, 27].tolist() == [-3.0, -6.0]  # bottom-right corner of the second
    assert offset[:, 10, 21].tolist() == [3.0, 0.0]
    assert (offset[:, instance == 0] == 0).all()  # nothing outside things
    assert torch.equal(weight, (instance > 0).float())


def test_targets_off_pixel_centre_and_batch():
    instance = torch.zeros(2, 8, 8, dtype=torch.long)
    instance[0, 0:2, 0:2] = 3  # 2 x 2: centre of mass (0.5, 0.5); ids need not start at 1
    made = panoptic_targets(instance)
    assert made["center"].shape == (2, 1, 8, 8) and made["offset"].shape == (2, 2, 8, 8)
    assert made["center"][0, 0, 1, 1] == 1.0  # the peak on the nearest pixel, halves rounding up
    assert made["offset"][0, :, 0, 0].tolist() == [0.5, 0.5]  # offsets to the exact centre
    assert made["offset"][0, :, 1, 1].tolist() == [-0.5, -0.5]
    assert (made["center"][1] == 0).all() and (made["offset"][1] == 0).all()  # an image with no instance
    single = panoptic_targets(instance[0])
    torch.testing.assert_close(single["center"], made["center"][:1])
    with pytest.raises(TypeError, match="integer"):
        panoptic_targets(instance.float())


# --- post-processing --------------------------------------------------------------------------------------------

def test_perfect_outputs_give_back_every_instance_and_stuff_segment():
    semantic, instance = scene()
    id_map, segments = panoptic_postprocess(*perfect_outputs(semantic, instance), thing_ids=THINGS, stuff_area=1)
    assert id_map.dtype == torch.int64 and id_map.shape == semantic.shape
    assert_same_instances(id_map, segments, semantic, instance)
    assert_stuff(id_map, segments, semantic)
    ids = [s["id"] for s in segments]
    assert len(set(ids)) == len(ids) and min(ids) > 0 and (id_map > 0).all()  # no void in a perfect prediction
    for s in segments:
        assert s["id"] // 1000 == s["category_id"] and s["isthing"] == (s["category_id"] in THINGS)


def test_touching_cars_are_two_instances_but_one_connected_component():
    semantic, instance = scene()
    id_map, _ = panoptic_postprocess(*perfect_outputs(semantic, instance), thing_ids=THINGS, stuff_area=1)
    assert id_map[20, 10] != id_map[20, 20]  # cars 1 and 2 share an edge
    by_components, segments = semantic_to_panoptic_by_components(semantic, THINGS)
    assert by_components[20, 10] == by_components[20, 20]  # the baseline merges them...
    assert torch.equal(by_components == by_components[20, 10], (instance == 1) | (instance == 2))
    assert by_components[30, 25] != by_components[30, 35]  # ...but not a car touching a person (other classes)
    assert sum(s["isthing"] for s in segments) == 4  # 5 objects, one merge
    assert_stuff(by_components, segments, semantic)


def test_a_centre_below_the_threshold_is_no_instance():
    semantic, instance = scene()
    weak = instance == 2
    others = panoptic_targets(torch.where(weak, 0, instance))["center"][0]
    center = torch.maximum(others, 0.05 * panoptic_targets(weak.long())["center"][0])  # its peak: 0.05 < 0.1
    id_map, segments = panoptic_postprocess(*perfect_outputs(semantic, instance, center), thing_ids=THINGS,
                                            stuff_area=1)
    # its pixels still vote for their own centre, and join the nearest centre kept: car 1's, next to it
    assert torch.equal(id_map == id_map[20, 10], (instance == 1) | weak)
    assert sum(s["isthing"] for s in segments) == 4
    # alone in the image, the pixels of an object whose centre is too weak have no centre to join: void
    lone = torch.where(weak, instance, 0)
    logits, _, offset = perfect_outputs(torch.where((instance > 0) & ~weak, GROUND, semantic), lone)
    id_map, segments = panoptic_postprocess(logits, 0.05 * panoptic_targets(lone)["center"][0], offset,
                                            thing_ids=THINGS, stuff_area=1)
    assert (id_map[weak] == 0).all() and not any(s["isthing"] for s in segments)


def test_small_segments_become_void():
    semantic, instance = scene()
    semantic[0:2, 0:3] = PERSON  # a 2 x 3 person in the sky
    instance[0:2, 0:3] = 6
    semantic[38:, 60:] = 4  # a 2 x 4 patch of a third stuff class ("grass")
    outputs = perfect_outputs(semantic, instance)
    id_map, segments = panoptic_postprocess(*outputs, thing_ids=THINGS, stuff_area=1)
    assert len(segments) == 6 + 3  # everything kept without area limits
    id_map, segments = panoptic_postprocess(*outputs, thing_ids=THINGS, stuff_area=9, thing_area=7)
    assert (id_map[0:2, 0:3] == 0).all() and (id_map[38:, 60:] == 0).all()
    assert len(segments) == 5 + 2
    assert_same_instances(id_map, segments, semantic, torch.where(instance == 6, 0, instance))
    by_components, segments = semantic_to_panoptic_by_components(semantic, THINGS, min_area=7, stuff_area=9)
    assert (by_components[0:2, 0:3] == 0).all() and (by_components[38:, 60:] == 0).all()


def test_instance_class_is_the_majority_vote_and_ignored_pixels_are_void():
    semantic, instance = scene()
    logits, center, offset = perfect_outputs(semantic, instance)
    logits[:, 15:17, 4:14] = F.one_hot(torch.tensor(PERSON), 4).float().view(4, 1, 1) * 10  # 20 of car 1's 100 px
    id_map, segments = panoptic_postprocess(logits, center, offset, thing_ids=THINGS, stuff_area=1)
    car = next(s for s in segments if s["id"] == int(id_map[20, 10]))
    assert car["category_id"] == CAR and (id_map[15:17, 4:14] == car["id"]).all()  # the whole object, one class
    labels = semantic.clone()
    labels[0:3] = 255
    by_components, _ = semantic_to_panoptic_by_components(labels, THINGS)
    assert (by_components[0:3] == 0).all() and (by_components[3:] > 0).all()


def test_find_centers_keeps_local_maxima_above_threshold_strongest_first():
    heat = torch.zeros(1, 20, 20)
    heat[0, 5, 5], heat[0, 5, 7], heat[0, 15, 15], heat[0, 2, 17] = 0.5, 0.4, 0.9, 0.05
    assert find_centers(heat, nms_kernel=7).tolist() == [[15, 15], [5, 5]]  # (5, 7) is within 3 px of a higher one
    assert find_centers(heat, nms_kernel=3).tolist() == [[15, 15], [5, 5], [5, 7]]
    assert find_centers(heat, nms_kernel=3, top_k=1).tolist() == [[15, 15]]
    assert find_centers(heat, threshold=0.01).tolist() == [[15, 15], [5, 5], [2, 17]]


# --- loss and training ----------------------------------------------------------------------------------------

def toy_samples(n, size=(32, 48), seed=0):
    """Images of a few coloured rectangles (cars red, people yellow) with dark outlines, on sky and ground."""
    g = torch.Generator().manual_seed(seed)
    colours = torch.tensor([[0.2, 0.6, 0.2], [0.5, 0.7, 1.0], [0.9, 0.2, 0.2], [0.9, 0.9, 0.1]])
    samples = []
    for _ in range(n):
        semantic = torch.full(size, GROUND)
        semantic[: size[0] // 3] = SKY
        instance = torch.zeros(size, dtype=torch.long)
        for k in range(1, 4):
            h, w = (int(v) for v in torch.randint(6, 12, (2,), generator=g))
            y, x = int(torch.randint(0, size[0] - h, (1,), generator=g)), int(torch.randint(0, size[1] - w, (1,),
                                                                                              generator=g))
            semantic[y:y + h, x:x + w] = CAR + int(torch.randint(0, 2, (1,), generator=g))
            instance[y:y + h, x:x + w] = k
        image = colours[semantic].permute(2, 0, 1) + 0.05 * torch.randn(3, *size, generator=g)
        samples.append((image, {"semantic": semantic, "instance": instance}))
    return samples


def test_perfect_outputs_have_zero_centre_and_offset_loss_and_parts_add_up():
    semantic, instance = scene()
    logits, center, offset = perfect_outputs(semantic, instance)
    outputs = {"semantic": logits[None], "center": center[None], "offset": offset[None]}
    targets = {"semantic": semantic[None], "instance": instance[None]}
    parts = panoptic_losses(outputs, targets)
    assert parts["center"] == 0 and parts["offset"] == 0 and parts["semantic"] < 1e-3
    wrong = dict(outputs, offset=outputs["offset"] + torch.tensor([1.0, -2.0]).view(1, 2, 1, 1))
    parts = panoptic_losses(wrong, targets)
    assert parts["offset"].item() == pytest.approx(0.01 * 3.0)  # |1| + |-2| on every thing pixel, times 0.01
    assert parts["total"] == parts["semantic"] + parts["center"] + parts["offset"] == panoptic_loss(wrong, targets)


def test_semantic_loss_averages_the_hardest_pixels():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 10, 10), torch.randint(0, 4, (2, 10, 10))
    target[0, :5] = 255  # 50 ignored pixels, 150 labelled
    plain = F.cross_entropy(logits, target, ignore_index=255)
    torch.testing.assert_close(semantic_loss(logits, target, top_k_percent=1.0), plain)
    per_pixel = F.cross_entropy(logits, target, ignore_index=255, reduction="none")[target != 255]
    hardest = per_pixel.sort(descending=True).values[:30]  # 20 % of the 150 labelled pixels
    torch.testing.assert_close(semantic_loss(logits, target, top_k_percent=0.2), hardest.mean())
    assert semantic_loss(logits, torch.full_like(target, 255)) == 0


def test_loss_is_finite_and_decreases_in_a_few_steps():
    torch.manual_seed(0)
    model = PanopticDeepLab(4, "resnet18", **LIGHT)
    images, targets = next(iter(DataLoader(toy_samples(4), batch_size=4)))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = panoptic_loss(model(images), targets)
        assert torch.isfinite(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_fit_trains_two_epochs_with_checkpoint_and_resume(tmp_path):
    def run(epochs):
        torch.manual_seed(0)
        model = PanopticDeepLab(4, "resnet18", **LIGHT)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        loader = DataLoader(toy_samples(4), batch_size=2)
        history = train.fit(model, loader, loader, panoptic_loss, opt, epochs=epochs, checkpoint_dir=tmp_path,
                            device=torch.device("cpu"), save_every=0, progress=False)
        return model, history

    _, first = run(1)
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    model, history = run(2)  # resumes after epoch 1
    assert [h["epoch"] for h in history] == [1, 2] and history[0] == first[0]
    assert all(math.isfinite(h["train_loss"]) and math.isfinite(h["val_loss"]) for h in history)
    with torch.no_grad():
        results = panoptic_postprocess_batch(model.eval()(toy_samples(2)[0][0][None]), THINGS, stuff_area=1)
    assert len(results) == 1 and results[0][0].shape == (32, 48)
