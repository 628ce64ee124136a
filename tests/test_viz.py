import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from course_utils import viz


def test_to_numpy_image_undoes_imagenet_normalisation():
    picture = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    tensor = (torch.from_numpy(picture).permute(2, 0, 1) / 255 - torch.tensor(viz.IMAGENET_MEAN)[:, None, None]) \
        / torch.tensor(viz.IMAGENET_STD)[:, None, None]
    assert np.array_equal(viz.to_numpy_image(tensor), picture)
    assert viz.to_numpy_image(picture) is picture


def test_overlay_colours_only_the_mask():
    image = np.full((4, 4, 3), 100, np.uint8)
    mask = np.zeros((4, 4), int)
    mask[0, 0] = 1
    out = viz.overlay(image, mask, alpha=1.0)
    assert tuple(out[0, 0]) == tuple(viz.PALETTE[1]) and (out[1:] == 100).all()
    with pytest.raises(ValueError, match="shape"):
        viz.overlay(image, np.zeros((3, 3)))


def test_error_map_colours():
    pred = np.array([[1, 1, 0, 0]])
    truth = np.array([[1, 0, 1, 0]])
    out = viz.error_map(pred, truth)
    assert [tuple(c) for c in out[0]] == [viz.ERROR_COLORS["true positive"], viz.ERROR_COLORS["false positive"],
                                          viz.ERROR_COLORS["false negative"], (0, 0, 0)]


def test_palette_is_fixed_and_distinct():
    assert len({tuple(c) for c in viz.PALETTE}) == len(viz.PALETTE)
    assert tuple(viz.colorize(np.array([[0, 2]]))[0, 1]) == tuple(viz.PALETTE[2])


def test_grids_and_curves():
    images = [np.zeros((8, 8, 3), np.uint8)] * 3
    masks = [np.eye(8, dtype=int)] * 3
    fig = viz.show_predictions(images, masks, masks, titles=["a", "b", "c"], max_rows=2)
    assert len(fig.axes) == 2 * 4
    assert len(viz.show_predictions(images, masks).axes) == 3 * 2
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "dice": 0.1 * e, "lr": 0.1, "seconds": 1}
               for e in (1, 2)]
    fig = viz.plot_history(history)
    assert [line.get_label() for line in fig.axes[1].lines] == ["dice"]
    with pytest.raises(ValueError, match="empty"):
        viz.plot_history([])


def test_class_maps_with_a_palette_and_ignored_pixels():
    palette = [(10, 20, 30), (200, 0, 0)]
    labels = np.array([[0, 1, 255]])
    assert [tuple(c) for c in viz.colorize(labels, palette)[0]] == [(10, 20, 30), (200, 0, 0), (0, 0, 0)]
    out = viz.overlay(np.zeros((1, 3, 3), np.uint8), labels, alpha=1.0, palette=palette, skip_zero=False)
    assert tuple(out[0, 0]) == (10, 20, 30) and tuple(out[0, 2]) == (0, 0, 0)  # class 0 painted, 255 not
    errors = viz.class_error_map(np.array([[0, 0, 1]]), labels, ignore_index=255)
    assert [tuple(c) for c in errors[0]] == [viz.CLASS_ERROR_COLORS[k] for k in ("right", "wrong", "ignored")]
    fig = viz.show_predictions([np.zeros((1, 3, 3), np.uint8)], [labels], [labels], class_names=["a", "b"],
                               palette=palette, ignore_index=255)
    assert {t.get_text() for t in fig.legends[0].get_texts()} == {"a", "b", "right", "wrong", "ignored"}


def test_confusion_matrix_plot_normalises_rows():
    fig = viz.plot_confusion_matrix(np.array([[8, 2], [0, 5]]), ["x", "y"])
    image = fig.axes[0].images[0].get_array()
    assert np.allclose(image, [[0.8, 0.2], [0.0, 1.0]])


def test_volume_plots():
    volume = np.random.default_rng(0).random((12, 10, 8))
    label = np.zeros((12, 10, 8), int)
    label[4:8, 3:6, 2:6] = 2
    fig = viz.orthogonal_slices({"a": volume, "b": volume}, label, label_names={2: "edema"})
    assert len(fig.axes) == 3 * 3 and fig.legends[0].get_texts()[0].get_text() == "edema"
    assert fig.axes[0].images[0].get_array().shape == (10, 12)  # axial plane of an (x, y, z) volume, y up
    # the swatch is the colour that a labelled voxel of mid grey (160) gets in the blended overlay
    swatch = np.array(fig.legends[0].legend_handles[0].get_facecolor()[:3]) * 255
    drawn = viz.overlay(np.full((1, 1, 3), 160, np.uint8), np.array([[2]]), 0.6, viz.PALETTE)[0, 0]
    assert np.allclose(swatch, drawn, atol=1)
    fig = viz.slice_montage(volume, {"truth": label, "prediction": label}, n=4)
    assert len(fig.axes) == 2 * 4
    assert [ax.get_title() for ax in fig.axes[:4]] == ["z = 2", "z = 3", "z = 4", "z = 5"]  # through the label


def test_class_maps_are_drawn_in_the_legend_colours_and_the_legend_sits_under_the_panels():
    palette = [(10, 20, 30), (200, 0, 0)]
    labels = np.array([[0, 1, 255], [1, 1, 0]])
    image = np.full((2, 3, 3), 90, np.uint8)
    fig = viz.show_predictions([image], [labels], [labels], class_names=["a", "b"], palette=palette, ignore_index=255)
    truth_panel = fig.axes[1].images[0].get_array()
    assert np.array_equal(truth_panel, viz.colorize(labels, palette))  # unblended: the swatch colours themselves
    swatches = {t.get_text(): tuple(np.round(np.array(h.get_facecolor()[:3]) * 255).astype(int))
                for t, h in zip(fig.legends[0].get_texts(), fig.legends[0].legend_handles)}
    assert swatches["a"] == (10, 20, 30) and swatches["b"] == (200, 0, 0) and swatches["ignored"] == (0, 0, 0)
    renderer = fig.canvas.get_renderer()
    legend_top = fig.legends[0].get_window_extent(renderer).y1
    panels_bottom = min(ax.get_window_extent(renderer).y0 for ax in fig.axes)
    assert 0 <= panels_bottom - legend_top < 0.05 * fig.bbox.height  # under the panels, without a large gap


def test_add_legend_makes_room_for_its_rows():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3))
    legend = viz.add_legend(fig, {f"class {i}": (i * 20, 0, 0) for i in range(12)}, ncol=4)
    renderer = fig.canvas.get_renderer()
    assert len(legend.get_texts()) == 12 and ax.get_window_extent(renderer).y0 >= legend.get_window_extent(renderer).y1


def test_a_binary_mask_can_be_named_in_the_legend():
    image = np.zeros((8, 8, 3), np.uint8)
    mask = np.zeros((8, 8), np.uint8)
    mask[2:5, 2:5] = 1
    fig = viz.show_predictions([image], [mask], [mask], palette=[(0, 0, 0), (0, 220, 255)], mask_label="polyp")
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[0] == "polyp (drawn at 50 % over the image)" and "false negative" in labels
    matplotlib.pyplot.close(fig)


def test_instances_are_drawn_each_in_its_own_colour_with_box_and_score():
    image = np.full((10, 12, 3), 100, np.uint8)
    masks = np.zeros((2, 10, 12), np.float32)
    masks[0, 1:4, 1:4] = 0.9  # probabilities: drawn where > 0.5
    masks[1, 5:9, 6:11] = 0.7
    masks[1, 0, 0] = 0.4  # below 0.5: not drawn
    fig, ax = plt.subplots()
    viz.draw_instances(ax, image, masks, boxes=[[1, 1, 4, 4], [6, 5, 11, 9]], scores=[0.95, 0.61])
    drawn = ax.images[0].get_array()
    for k, (y, x) in enumerate([(2, 2), (6, 7)]):
        expected = np.round(0.5 * 100 + 0.5 * viz.PALETTE[1 + k].astype(float))
        assert np.array_equal(drawn[y, x], expected)
    assert np.array_equal(drawn[0, 0], [100, 100, 100])
    assert len(ax.patches) == 2 and [t.get_text() for t in ax.texts] == ["0.95", "0.61"]
    assert np.allclose(ax.patches[1].get_edgecolor()[:3], viz.PALETTE[2] / 255)
    plt.close(fig)


def test_panoptic_map_has_one_colour_per_segment_in_shades_of_its_class():
    ids = np.array([[0, 5, 5, 7], [9, 9, 11, 11]])
    segments = [{"id": 5, "category_id": 1, "isthing": 1}, {"id": 7, "category_id": 1, "isthing": 1},
                {"id": 9, "category_id": 1, "isthing": 1}, {"id": 11, "category_id": 2, "isthing": 0}]
    rgb = viz.panoptic_rgb(ids, segments, {1: (200, 40, 40), 2: (40, 40, 200)})
    assert rgb[0, 0].tolist() == [0, 0, 0]  # void
    assert rgb[0, 1].tolist() == [200, 40, 40] and rgb[1, 2].tolist() == [40, 40, 200]  # first instance, stuff
    colours = {tuple(rgb[0, 1]), tuple(rgb[0, 3]), tuple(rgb[1, 0])}
    assert len(colours) == 3  # three people, three shades
    assert all(c[0] > c[1] for c in colours)  # all still red-ish
    with pytest.raises(KeyError, match="category 3"):
        viz.panoptic_rgb(ids, [{"id": 5, "category_id": 3}], {1: (1, 2, 3)})


def test_panoptic_rgb_draws_a_crowd_region_striped():
    ids = np.zeros((12, 12), np.int64)
    ids[:, :6], ids[:, 6:] = 1, 2
    segments = [{"id": 1, "category_id": 1, "iscrowd": 1}, {"id": 2, "category_id": 1, "iscrowd": 0}]
    rgb = viz.panoptic_rgb(ids, segments, {1: (200, 40, 40)})
    crowd_colours = {tuple(c) for c in rgb[:, :6].reshape(-1, 3)}
    assert crowd_colours == {(200, 40, 40), (110, 22, 22)}  # the class colour and its dark stripes
    assert {tuple(c) for c in rgb[:, 6:].reshape(-1, 3)} == {(200, 40, 40)}  # the instance: plain


def test_flow_rgb_colours_one_batch_on_one_scale_and_blacks_out_invalid_pixels():
    right = np.zeros((2, 4, 4), np.float32)
    right[0] = 1.0  # 1 px to the right everywhere
    alone = viz.flow_rgb(right)
    batch = viz.flow_rgb(np.stack([right, 2 * right]))  # the same flow beside one twice as long
    assert alone.shape == (4, 4, 3) and batch.shape == (2, 4, 4, 3)
    assert (alone == batch[1]).all()  # alone, a flow is scaled to its own longest vector
    assert (batch[0] != batch[1]).any()  # in a batch, the shorter flow is paler
    valid = np.ones((4, 4), bool)
    valid[0, 0] = False
    assert viz.flow_rgb(right, valid)[0, 0].tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="flow must be"):
        viz.flow_rgb(np.zeros((3, 4, 4)))


def test_flow_wheel_and_arrows_draw():
    fig, (a, b) = plt.subplots(1, 2)
    viz.flow_wheel(a)
    flow = np.zeros((2, 16, 16), np.float32)
    flow[0] = 3.0
    viz.flow_arrows(b, flow, step=8)
    quiver = b.collections[0]
    assert len(quiver.get_offsets()) == 4 and np.allclose(quiver.U, 3.0)
    plt.close(fig)


def test_plot_points_draws_the_up_axis_vertically_with_equal_scales():
    points = np.array([[0, 0, 0], [0, 2, 0], [1, 0, 0]], np.float32)  # y is up (ShapeNet)
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    viz.plot_points(ax, points, labels=np.array([0, 1, 1]))
    xs, ys, zs = ax.collections[0]._offsets3d
    assert list(zs) == [0, 2, 0]  # the up axis (y) became matplotlib's vertical axis
    assert np.allclose(np.diff(ax.get_xlim()), np.diff(ax.get_zlim()))  # equal scales: not squashed
    plt.close(fig)


def test_points_3d_makes_one_named_trace_per_label():
    points = np.random.default_rng(0).normal(size=(20, 3))
    labels = np.array([36] * 12 + [37] * 8)
    fig = viz.points_3d(points, labels, names={36: "body", 37: "handle"})
    assert [t.name for t in fig.data] == ["body", "handle"] and len(fig.data[0].x) == 12
