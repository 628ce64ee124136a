"""PointNet and PointNet++ (course_utils/models/pointnet.py): shapes and calling conventions, permutation invariance
and equivariance, the T-Nets and their regulariser, farthest point sampling, ball query and interpolation on hand
cases, the paper-width parameter count, critical points, and short training runs on spheres vs cubes."""

import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import train
from course_utils.models.pointnet import (
    REG_WEIGHT,
    FeaturePropagation,
    PointNet2Classifier,
    PointNet2PartSeg,
    PointNetClassifier,
    PointNetPartSeg,
    SetAbstraction,
    ball_query,
    critical_points,
    farthest_point_sample,
    gather_points,
    group,
    interpolation_weights,
    orthogonality_loss,
    pointnet_loss,
    with_category,
)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: tiny inputs run faster on one thread

SMOKE_PN2 = {"width": 0.25, "num_centres": (32, 8), "group_sizes": (8, 8)}


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def unit_sphere_cloud(n: int, p: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    xyz = torch.randn(n, p, 3, generator=gen)
    xyz = xyz / xyz.norm(dim=-1, keepdim=True) * torch.rand(n, p, 1, generator=gen)
    return torch.cat([xyz, torch.randn(n, p, channels - 3, generator=gen)], dim=-1)


def on_a_line(xs) -> torch.Tensor:
    """One cloud (1, P, 3) of points on the x axis."""
    xs = torch.tensor(xs, dtype=torch.float32)
    return torch.stack([xs, torch.zeros_like(xs), torch.zeros_like(xs)], dim=-1)[None]


# --------------------------------------------------------------------------------------------------------------
# Shapes and calling conventions
# --------------------------------------------------------------------------------------------------------------

def test_pointnet_outputs_a_dict_in_training_and_logits_in_evaluation():
    torch.manual_seed(0)
    model = PointNetClassifier(5, width=0.125)
    points = unit_sphere_cloud(4, 64)
    out = model(points)
    assert out["logits"].shape == (4, 5)
    assert out["feature_transform"].shape == (4, 8, 8)  # 64 x 64 at the paper's width
    model.eval()
    assert model(points).shape == (4, 5)
    with pytest.raises(ValueError, match=r"\(N, P, 3\)"):
        model(points.transpose(1, 2))  # channels first is a mistake the message explains


def test_part_segmentation_logits_are_per_point_with_classes_on_dim_1_and_take_the_category_either_way():
    torch.manual_seed(0)
    points, category = unit_sphere_cloud(3, 40), torch.tensor([0, 2, 1])
    for model in (PointNetPartSeg(num_parts=7, num_categories=3, width=0.125),
                  PointNet2PartSeg(num_parts=7, num_categories=3, **SMOKE_PN2)):
        model.eval()
        logits = model(points, category)
        assert logits.shape == (3, 7, 40)
        packed = with_category(points, category, 3)
        assert packed.shape == (3, 40, 6)
        assert torch.allclose(model(packed), logits, atol=1e-6)
        assert not torch.allclose(model(points, torch.tensor([1, 1, 1])), logits, atol=1e-4)  # it is used
        with pytest.raises(ValueError, match="with_category"):
            model(points)
    train_out = PointNetPartSeg(num_parts=7, num_categories=3, width=0.125)(points, category)
    assert train_out["logits"].shape == (3, 7, 40)


def test_extra_channels_such_as_normals():
    torch.manual_seed(0)
    points = unit_sphere_cloud(2, 48, channels=6)
    assert PointNetClassifier(3, in_channels=6, width=0.125).eval()(points).shape == (2, 3)
    assert PointNet2Classifier(3, in_channels=6, **SMOKE_PN2).eval()(points).shape == (2, 3)
    seg = PointNet2PartSeg(num_parts=4, num_categories=2, in_channels=6, **SMOKE_PN2).eval()
    assert seg(points, torch.tensor([0, 1])).shape == (2, 4, 48)


def test_pointnet2_classifier_shapes_in_both_modes():
    torch.manual_seed(0)
    model = PointNet2Classifier(4, **SMOKE_PN2)
    points = unit_sphere_cloud(3, 64)
    assert model(points).shape == (3, 4)
    assert model.eval()(points).shape == (3, 4)


# --------------------------------------------------------------------------------------------------------------
# Sets: order does not matter
# --------------------------------------------------------------------------------------------------------------

def test_pointnet_classifier_is_permutation_invariant():
    torch.manual_seed(0)
    model = PointNetClassifier(5, width=0.25).eval()
    points = unit_sphere_cloud(2, 128)
    shuffled = points[:, torch.randperm(128)]
    assert torch.allclose(model(shuffled), model(points), atol=1e-5)


def test_pointnet_part_segmentation_is_permutation_equivariant():
    torch.manual_seed(0)
    model = PointNetPartSeg(num_parts=6, num_categories=3, width=0.125).eval()
    points, category = unit_sphere_cloud(2, 96), torch.tensor([1, 2])
    order = torch.randperm(96)
    assert torch.allclose(model(points[:, order], category), model(points, category)[:, :, order], atol=1e-5)


# --------------------------------------------------------------------------------------------------------------
# T-Nets and the regulariser
# --------------------------------------------------------------------------------------------------------------

def test_tnets_start_at_the_identity():
    torch.manual_seed(0)
    encoded = PointNetClassifier(2, width=0.125).encoder(unit_sphere_cloud(4, 32))
    assert torch.equal(encoded["input_transform"], torch.eye(3).expand(4, 3, 3))
    assert torch.equal(encoded["feature_transform"], torch.eye(8).expand(4, 8, 8))


def test_orthogonality_loss_is_zero_for_orthogonal_matrices_and_the_squared_frobenius_norm_otherwise():
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(3, 64, 64))  # random orthogonal matrices
    assert orthogonality_loss(q).item() == pytest.approx(0.0, abs=1e-9)
    # A = 2I: A A^T - I = 3I, squared norm 9 K; the mean over the batch of [2I, I] is 9 K / 2
    a = torch.stack([2 * torch.eye(4), torch.eye(4)])
    assert orthogonality_loss(a).item() == pytest.approx(9 * 4 / 2)


def test_pointnet_loss_adds_the_weighted_penalty_to_cross_entropy():
    logits, targets = torch.tensor([[2.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1])
    ce = torch.nn.functional.cross_entropy(logits, targets)
    transform = (2 * torch.eye(4)).expand(2, 4, 4)
    assert pointnet_loss(logits, targets).item() == pytest.approx(ce.item())  # PointNet++ and evaluation mode
    with_penalty = pointnet_loss({"logits": logits, "feature_transform": transform}, targets)
    assert with_penalty.item() == pytest.approx(ce.item() + REG_WEIGHT * 36)
    seg_logits, seg_targets = torch.randn(2, 5, 7), torch.randint(0, 5, (2, 7))  # per point: (N, parts, P)
    assert pointnet_loss(seg_logits, seg_targets).item() == pytest.approx(
        torch.nn.functional.cross_entropy(seg_logits, seg_targets).item())


# --------------------------------------------------------------------------------------------------------------
# PointNet++ operations on hand cases
# --------------------------------------------------------------------------------------------------------------

def test_farthest_point_sampling_starts_at_point_0_then_takes_the_far_end_then_the_middle():
    xs = [0.0, 3, 10, 1, 7, 5, 2, 9, 4, 8, 6]
    line = on_a_line(xs)
    picked = farthest_point_sample(line, 3)[0]
    assert [xs[i] for i in picked] == [0, 10, 5]
    # each cloud of a batch on its own: the mirrored line starts at x = 10 (its point 0)
    mirrored = torch.cat([line, on_a_line([10 - x for x in xs])])
    assert [xs[i] for i in farthest_point_sample(mirrored, 2)[1]] == [0, 10]  # 10 - x: indices of x = 0, then 10


def test_farthest_point_sampling_returns_distinct_indices():
    points = unit_sphere_cloud(2, 50)
    for m in (10, 50):
        picked = farthest_point_sample(points, m)
        assert picked.shape == (2, m)
        assert all(len(set(row.tolist())) == m for row in picked)


def test_ball_query_takes_the_first_points_inside_the_radius_and_pads_with_the_first_found():
    xs = [0.0, 0.5, 0.1, 0.3, 0.15, 0.05]
    centres = on_a_line([0.0, 0.45, 5.0])
    index = ball_query(0.2, 6, on_a_line(xs), centres)[0]
    assert index[0].tolist() == [0, 2, 4, 5, 0, 0]  # inside: x = 0, 0.1, 0.15, 0.05; then the first repeated
    assert index[1].tolist() == [1, 3, 1, 1, 1, 1]  # x = 0.5 and 0.3
    assert index[2].tolist() == [1] * 6  # empty ball: the nearest point (x = 0.5)
    # the first k in the order of the points, not the nearest k: x = 0.1 before x = 0.05
    assert ball_query(0.2, 2, on_a_line(xs), centres)[0, 0].tolist() == [0, 2]
    # more members asked for than there are points
    assert ball_query(0.2, 8, on_a_line(xs), centres)[0, 0].tolist() == [0, 2, 4, 5, 0, 0, 0, 0]


def test_group_gathers_features_per_centre_and_member():
    features = torch.arange(2 * 3 * 5, dtype=torch.float32).view(2, 3, 5)  # (N, C, P)
    index = torch.tensor([[[4, 0]], [[1, 1]]])  # (N, S=1, k=2)
    grouped = group(features, index)
    assert grouped.shape == (2, 3, 1, 2)
    assert torch.equal(grouped[0, :, 0], features[0][:, [4, 0]])
    assert torch.equal(grouped[1, :, 0], features[1][:, [1, 1]])


def test_interpolation_weights_are_normalised_inverse_squared_distances_of_the_3_nearest():
    known = on_a_line([0.0, 1.0, 3.0, 10.0])
    index, weights = interpolation_weights(on_a_line([0.5, 3.0]), known)
    assert index.shape == weights.shape == (1, 2, 3)
    # x = 0.5: squared distances 0.25, 0.25, 6.25 -> 1/d^2 = 4, 4, 0.16, over their sum 8.16
    got = dict(zip(index[0, 0].tolist(), weights[0, 0].tolist()))
    assert set(got) == {0, 1, 2}
    assert got[0] == pytest.approx(4 / 8.16) and got[1] == pytest.approx(4 / 8.16)
    assert got[2] == pytest.approx(0.16 / 8.16)
    # on a known point: (almost exactly) its features
    assert index[0, 1, 0].item() == 2 and weights[0, 1, 0].item() == pytest.approx(1.0, abs=1e-6)
    # a single known point (the group-all level): weight 1
    index, weights = interpolation_weights(on_a_line([0.5, 3.0]), on_a_line([0.0]))
    assert index.shape == (1, 2, 1) and torch.equal(weights, torch.ones(1, 2, 1))


def test_set_abstraction_centres_are_input_points_and_feature_propagation_returns_to_every_point():
    torch.manual_seed(0)
    points = unit_sphere_cloud(2, 64)
    sa = SetAbstraction(16, 0.4, 8, in_channels=0, mlp=(8, 16))
    centres, features = sa(points, None)
    assert centres.shape == (2, 16, 3) and features.shape == (2, 16, 16)
    assert torch.equal(centres, gather_points(points, farthest_point_sample(points, 16)))
    everything = SetAbstraction(None, None, None, in_channels=16, mlp=(32,))
    origin, global_feature = everything(centres, features)
    assert torch.equal(origin, torch.zeros(2, 1, 3)) and global_feature.shape == (2, 32, 1)
    fp = FeaturePropagation(32 + 16, (24,))
    assert fp(centres, origin, features, global_feature).shape == (2, 24, 16)
    assert FeaturePropagation(16, (8,))(points, centres, None, features).shape == (2, 8, 64)


# --------------------------------------------------------------------------------------------------------------
# The paper's model size, critical points
# --------------------------------------------------------------------------------------------------------------

def test_paper_width_classifier_has_the_papers_parameter_count():
    model = PointNetClassifier(40)
    # the official layers keep a (redundant) bias before every BatchNorm; ours do not
    official_biases = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm1d))
    assert count(model) == 3_473_969
    assert count(model) + official_biases == 3_480_049  # the official pointnet_cls.py
    assert abs(count(model) - 3.5e6) < 0.05e6  # the paper's "3.5M"
    assert count(PointNetClassifier(40, transforms=False)) == 817_512  # the paper's vanilla PointNet, "0.8M"
    assert count(PointNet2Classifier(40)) == 1_472_360


def test_critical_points_alone_give_the_same_global_feature():
    torch.manual_seed(0)
    model = PointNetClassifier(2, width=0.25).eval()
    for tnet in (model.encoder.input_tnet, model.encoder.feature_tnet):  # make the alignments depend on the cloud
        nn.init.normal_(tnet.matrix.weight, std=0.05)
    cloud = unit_sphere_cloud(1, 300)[0]
    critical = critical_points(model, cloud)
    assert critical.ndim == 1 and len(critical) == len(set(critical.tolist()))
    assert critical.min() >= 0 and critical.max() < 300
    assert len(critical) < 300  # a skeleton: at most one point per channel of the three max-pools (3 x 256)
    with torch.no_grad():
        whole = model.encoder(cloud[None])["global_feature"]
        only_critical = model.encoder(cloud[critical][None])["global_feature"]
        assert torch.allclose(only_critical, whole, atol=1e-5)
        assert torch.allclose(model(cloud[critical][None]), model(cloud[None]), atol=1e-5)
    assert not model.training  # the mode is restored, whatever it was
    vanilla = PointNetClassifier(2, width=0.25, transforms=False).train()
    critical = critical_points(vanilla, cloud)
    assert vanilla.training
    vanilla.eval()
    with torch.no_grad():
        assert torch.allclose(vanilla.encoder(cloud[critical][None])["global_feature"],
                              vanilla.encoder(cloud[None])["global_feature"], atol=1e-5)


# --------------------------------------------------------------------------------------------------------------
# Learning: spheres vs cubes
# --------------------------------------------------------------------------------------------------------------

def spheres_and_cubes(n: int, p: int = 256, seed: int = 0) -> TensorDataset:
    """Surface points of spheres (label 0) and cubes (label 1) of random size, rotation and noise."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    clouds = []
    for label in labels.tolist():
        if label == 0:
            xyz = torch.randn(p, 3, generator=gen)
            xyz = xyz / xyz.norm(dim=1, keepdim=True)
        else:
            xyz = torch.rand(p, 3, generator=gen) * 2 - 1
            face = torch.randint(0, 3, (p,), generator=gen)
            xyz[torch.arange(p), face] = torch.randint(0, 2, (p,), generator=gen).float() * 2 - 1
            xyz = xyz / math.sqrt(3)
        rotation, _ = torch.linalg.qr(torch.randn(3, 3, generator=gen))
        scale = 0.6 + 0.4 * torch.rand(1, generator=gen)
        clouds.append(xyz @ rotation * scale + 0.01 * torch.randn(p, 3, generator=gen))
    return TensorDataset(torch.stack(clouds), labels)


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return (logits.argmax(1) == labels).float()


def test_pointnet_learns_spheres_from_cubes_with_fit(tmp_path):
    torch.manual_seed(0)
    train_loader = DataLoader(spheres_and_cubes(96), batch_size=16, shuffle=True)
    val_loader = DataLoader(spheres_and_cubes(64, seed=1), batch_size=32)
    # a short run needs BatchNorm statistics that keep up with the weights: momentum 0.5, the official start
    model = PointNetClassifier(2, width=0.125, bn_momentum=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = train.fit(model, train_loader, val_loader, pointnet_loss, optimizer, epochs=6,
                        checkpoint_dir=tmp_path, metrics={"accuracy": accuracy}, monitor="accuracy",
                        device=torch.device("cpu"), amp=False, progress=False)
    assert max(record["accuracy"] for record in history) > 0.9
    _, predicted_labels = train.predict(model, val_loader, postprocess=lambda logits: logits.argmax(1))
    assert predicted_labels.shape == (64,)  # evaluation mode returns plain logits, as predict wants


def test_pointnet2_learns_spheres_from_cubes():
    """With 256 points, 64 and 16 centres see only a few neighbours within the official radii (0.2, 0.4), too few
    to tell a flat face from a curved one: the radii grow with the spacing of the points (0.4, 0.8 here)."""
    torch.manual_seed(0)
    train_loader = DataLoader(spheres_and_cubes(96), batch_size=16, shuffle=True)
    clouds, labels = spheres_and_cubes(64, seed=1).tensors
    model = PointNet2Classifier(2, width=0.25, num_centres=(64, 16), radii=(0.4, 0.8), group_sizes=(16, 16),
                                bn_momentum=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    best = 0.0
    for _ in range(6):
        model.train()
        for points, target in train_loader:
            optimizer.zero_grad()
            pointnet_loss(model(points), target).backward()
            optimizer.step()
        with torch.no_grad():
            best = max(best, accuracy(model.eval()(clouds), labels).mean().item())
    assert best > 0.85  # 0.91 to 0.98 over seeds 0-4; chance is 0.5


def test_pointnet_part_segmentation_learns_the_upper_half_of_a_sphere_with_fit(tmp_path):
    """Per-point learning through ``fit``, with the category carried by the points (``with_category``). One
    category: learning to read a category one-hot that is 2 of 600 inputs of the head takes longer than a smoke run."""

    def halves(n: int, seed: int) -> TensorDataset:
        gen = torch.Generator().manual_seed(seed)
        xyz = torch.randn(n, 256, 3, generator=gen)
        xyz = xyz / xyz.norm(dim=-1, keepdim=True)
        return TensorDataset(with_category(xyz, 0, 1), (xyz[..., 2] > 0).long())

    def point_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return (logits.argmax(1) == labels).float().mean(dim=1)  # one number per shape

    torch.manual_seed(0)
    model = PointNetPartSeg(num_parts=2, num_categories=1, width=0.125, bn_momentum=0.5)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = train.fit(model, DataLoader(halves(64, 0), batch_size=16, shuffle=True),
                        DataLoader(halves(32, 1), batch_size=32), pointnet_loss, optimizer, epochs=5,
                        checkpoint_dir=tmp_path, metrics={"accuracy": point_accuracy}, monitor="accuracy",
                        device=torch.device("cpu"), amp=False, progress=False)
    assert max(record["accuracy"] for record in history) > 0.9
