"""PointNet and PointNet++ (single-scale grouping): deep learning directly on point sets.

Qi, Su, Mo, Guibas: "PointNet: Deep Learning on Point Sets for 3D Classification and Segmentation", CVPR 2017
(arXiv:1612.00593), official code charlesq34/pointnet (TensorFlow). Qi, Yi, Su, Guibas: "PointNet++: Deep
Hierarchical Feature Learning on Point Sets in a Metric Space", NeurIPS 2017 (arXiv:1706.02413), official code
charlesq34/pointnet2 (TensorFlow with CUDA operators in ``tf_ops/``). Widely used PyTorch ports: fxia22/pointnet.pytorch
(``pointnet/model.py``) and yanx27/Pointnet_Pointnet2_pytorch (``models/pointnet_utils.py``, ``pointnet2_utils.py``).

A point cloud is a *set*: the same shape listed in another order is the same shape. **PointNet** respects that by
construction. A *shared* MLP (the same weights for every point: a 1x1 convolution over the points) turns each point
into a feature vector on its own; a max over the points, channel by channel, then summarises the set. A max does
not care about order, so the global feature is permutation invariant; a per-point output that also reads the global
feature is permutation equivariant (shuffle the points, and the outputs shuffle the same way). Two small "T-Nets"
(themselves PointNets) predict a 3x3 matrix that aligns the input and a 64x64 matrix that aligns the features; the
second is kept near orthogonal by a penalty ||I - A A^T||^2. Only the points that win the max of at least one
channel matter: this "critical point set" (paper Fig. 7, ``critical_points``) is a skeleton of the shape, and any
point added or removed elsewhere leaves the global feature unchanged, hence the robustness to missing points.

PointNet sees every point alone, then the whole set: nothing in between. **PointNet++** adds the in-between, as a
CNN does with growing receptive fields. A *set abstraction* (SA) level picks centres that cover the cloud
(``farthest_point_sample``), takes the points within a radius of each (``ball_query``, ``group``), expresses them
relative to their centre, and runs a small PointNet on each neighbourhood: fewer points, each with a feature of a
larger region. The last level groups everything into one global feature. For segmentation, *feature propagation*
(FP) levels carry the features back to the denser levels, coarse to fine: each point takes the inverse-distance
weighted mean of its 3 nearest coarse points' features (``interpolation_weights``), concatenated with its own
features from the SA level of that density (a skip connection, as in U-Net), then a "unit PointNet" (1x1 layers).

Layouts. Point clouds come in as ``(N, P, C)`` (N clouds of P points, C = 3 coordinates, or 6 with normals), as the
datasets give them. Inside, features are channels-first, ``(N, C, P)``, as 1x1 convolutions (and images) want;
coordinates stay ``(N, P, 3)``. The classifiers return logits ``(N, num_classes)``; the segmentation models logits
``(N, num_parts, P)``, class scores on dim 1 like the image models of this course, so ``F.cross_entropy(logits,
labels (N, P))`` and ``argmax(1)`` work unchanged.

PointNet models return, in training mode, ``{"logits": ..., "feature_transform": (N, K, K)}`` for
``pointnet_loss``, which adds the orthogonality penalty; in evaluation mode the logits tensor alone (as ``FlowNetS``
returns all its flows only in training), so ``train.evaluate``, ``train.predict`` and the metrics see plain logits.
``pointnet_loss`` accepts either, and the PointNet++ models' plain logits too:
``fit(model, ..., loss_fn=pointnet_loss, ...)`` for all four models. The part-segmentation models need the shape's
category: ``model(points, category)`` with ``category`` (N,) integers, or, for ``fit``'s ``model(inputs)``, the
one-hot appended to every point by ``with_category`` (``(N, P, C + num_categories)``).

The numbers, and the code where they were checked (the papers' text could not be read for this module; facts that
come from the papers alone are marked "paper, not checked here"):

================================================  ==============================  ======================================
setting                                           value                           where checked
================================================  ==============================  ======================================
PointNet classification trunk (shared MLPs)       64, 64 | feature T-Net |        pointnet ``models/pointnet_cls.py``
                                                  64, 128, 1024; max-pool         (conv1 .. conv5)
every shared / fully connected layer              BatchNorm + ReLU (last: none)   ``utils/tf_util.py`` (``bn=True``,
                                                                                  ``activation_fn=tf.nn.relu``)
T-Net                                             shared 64, 128, 1024; max;      ``models/transform_nets.py``
                                                  FC 512, 256; last layer starts
                                                  at the identity (zero weights,
                                                  identity bias)
classification head                               FC 512, 256, dropout keep 0.7   ``pointnet_cls.py`` (fxia22: p=0.3
                                                  (p = 0.3) after each, FC k      after fc2 only; yanx27: p=0.4)
orthogonality penalty                             weight 0.001, feature T-Net     ``pointnet_cls.py`` ``get_loss``
                                                  only, A A^T - I                 (``reg_weight=0.001``)
part-segmentation trunk                           64, 128, 128 | 128x128          ``part_seg/pointnet_part_seg.py``
                                                  feature T-Net | 512, 2048
part-segmentation head                            [global 2048 + one-hot 16,      same file (``seg/conv1..4``,
                                                  all 5 layer outputs] -> 256,    ``keep_prob=0.8``)
                                                  256, 128 (dropout keep 0.8
                                                  after the first two) -> 50
PointNet training                                 Adam 1e-3, batch 32, 1024 pts   pointnet ``train.py``;
                                                  (parts: 2048), lr x0.7 every    ``part_seg/train.py``
                                                  200k samples; 250 / 200 epochs
augmentation                                      rotation about the up axis,     pointnet ``provider.py``
                                                  jitter sigma 0.01 clipped 0.05
BatchNorm momentum (PyTorch's sense)              0.5 at the start, halved every  pointnet ``train.py``
                                                  200k samples, floor 0.01 (TF    (``get_bn_decay``), ``tf_util.py``
                                                  decay 0.5 -> 0.99); yanx27:     (``ExponentialMovingAverage``);
                                                  0.1, halved every 20 epochs     yanx27 ``train_partseg.py``
FPS start / distance                              index 0 / squared Euclidean     pointnet2 ``tf_ops/sampling/
                                                  (yanx27: random start)          tf_sampling_g.cu``
ball query                                        d < radius (strict), the first  pointnet2 ``tf_ops/grouping/
                                                  k in index order, empty slots   tf_grouping_g.cu`` (yanx27: d <=
                                                  = the first point found         radius, same padding)
SA grouping                                       xyz - centre (not divided by    pointnet2 ``utils/pointnet_util.py``
                                                  the radius), then features;     (``sample_and_group``,
                                                  group-all: centre at origin,    ``sample_and_group_all``)
                                                  absolute xyz
FP interpolation                                  3 nearest, weights 1/d^2        ``pointnet_fp_module``; ``three_nn``
                                                  (squared distances, floored at  returns squared distances
                                                  1e-10), normalised; then        (``tf_ops/3d_interpolation/
                                                  [interpolated, skip]            tf_interpolate.cpp``)
PointNet++ SSG classifier                         SA(512, 0.2, 32, 64-64-128),    pointnet2 ``models/
                                                  SA(128, 0.4, 64, 128-128-256),  pointnet2_cls_ssg.py``
                                                  SA(all, 256-512-1024); FC 512,
                                                  256, dropout keep 0.5, FC k
PointNet++ SSG part segmentation                  SA(512, 0.2, **64**, ...),      ``models/pointnet2_part_seg.py``
                                                  SA(128, 0.4, 64, ...), SA(all);
                                                  FP 256-256, 256-128, 128-128-
                                                  128; conv 128, dropout 0.5, 50;
                                                  input xyz + normals
one-hot category at the last FP level             [one-hot, xyz, normals] as the  ``models/pointnet2_part_seg_msg_
                                                  skip input of the last FP       one_hot.py`` (the SSG file has no
                                                                                  one-hot); yanx27 ``pointnet2_part_
                                                                                  seg_ssg.py`` (SSG with the one-hot)
PointNet++ training                               Adam 1e-3, batch 16 (parts:     pointnet2 ``train.py``,
                                                  32), 1024 pts (parts: 2048)     ``part_seg/train.py``
================================================  ==============================  ======================================

Parameter counts, from running this module:

* ``PointNetClassifier(40)``: **3,473,969**. The paper's table of model sizes gives 3.5 M (paper, not checked here;
  the figure is quoted, with 440 M FLOPs per 1024-point shape, in charlesq34/pointnet issue #216 and
  yangyanli/PointCNN issue #141). Our convolutions and linear layers before a BatchNorm have no bias (BatchNorm's
  shift makes it redundant); the official layers keep one, 6,080 more numbers: 3,480,049, exactly the count a
  reader of issue #216 reports for the official ``pointnet_cls.py``. Without the T-Nets ("vanilla"): 817,512 (the
  paper's 0.8 M, not checked here). One forward pass costs 0.448 G multiply-adds per 1024-point shape (counted
  with hooks), the paper's "440M FLOPs" if a multiply-add counts as one operation.
* ``PointNetPartSeg()``: 8,334,907 (its 128x128 feature T-Net alone has 5.0 M).
* ``PointNet2Classifier(40)``: 1,472,360. ``PointNet2PartSeg(in_channels=6)``: 1,407,282.
* Smoke: ``PointNetClassifier(2, width=0.125)`` 41,483; ``PointNet2Classifier(2, width=0.25, num_centres=(64, 16),
  group_sizes=(16, 16))`` 93,010 (the centres and group sizes change the cost, not the parameters).

Forward pass of 16 clouds of 1024 points on one CPU core (evaluation mode, a shared and busy machine, so roughly):
``PointNetClassifier(40)`` 0.85 s, ``PointNetPartSeg()`` 3.4 s, ``PointNet2Classifier(40)`` 3.0 s (farthest point
sampling 0.2 s and ball query 0.2 s of it), ``PointNet2PartSeg()`` 4.7 s; the two smoke classifiers above 34 ms and
45 ms.

Short runs (smoke mode, the tests). The running statistics of BatchNorm, which evaluation mode uses, must keep up
with weights that change fast: ``bn_momentum=0.5`` (the official start) instead of PyTorch's 0.1, with which a
few dozen steps leave evaluation mode predicting one class even when training-mode accuracy is near 100%. Even
then the validation accuracy of a short run jumps from epoch to epoch (the BatchNorms of the fully connected layers
see 16 shapes per batch), so ``fit``'s best epoch is the number to use. PointNet++'s radii are distances in the
cloud: with fewer points the neighbours are farther apart, and the official radii (0.2, 0.4, for 1024 points on a
unit shape) leave too few points in each ball. ``tests/test_pointnet.py`` tells spheres from cubes (256 points)
above 90% with ``PointNetClassifier(2, width=0.125, bn_momentum=0.5)`` (6 epochs of 96 shapes, about 2 s on one
core) and with ``PointNet2Classifier(2, width=0.25, num_centres=(64, 16), radii=(0.4, 0.8), group_sizes=(16, 16),
bn_momentum=0.5)`` (about 3 s). ``PointNetPartSeg`` learns a split of the points in a few epochs, but learning to
read the category one-hot, 16 of its head's 4,944 inputs (2 of about 600 at ``width=0.125``), takes far longer: on
identical spheres whose parts depend on the category alone it stayed near 50% after 6 short epochs, where
``PointNet2PartSeg`` (the one-hot among 37 inputs of its last FP level at ``width=0.25``; 150 at full width)
reached about 90%. Twins whose categories
also differ in shape (as real ones do) avoid the problem.

What we simplified, and why:

* ``PointNetPartSeg`` keeps the official part-segmentation trunk, skip concatenation and head (the paper's Fig. 2
  segmentation network is the simpler 64 + 1024 -> 512, 256, 128 of its main text; the supplementary describes the
  widening, the skip links and the one-hot, paper, not checked here), but its T-Nets are the classification ones
  (shared 64, 128, 1024, FC 512, 256). The official part-seg T-Nets differ a little (input: FC 128, 128; feature:
  shared 256, 1024), and its auxiliary classification head is left out: it is trained with weight 0 there.
* The orthogonality penalty is the paper's squared Frobenius norm ||I - A A^T||^2 per shape, *averaged* over the
  batch, times 0.001. The official code takes ``tf.nn.l2_loss``, half the sum of squares over the whole batch (so
  16 times our mean at its batch of 32); both PyTorch ports average the unsquared norm. All three vanish exactly
  for orthogonal matrices, which is the point of the term.
* The input T-Net's 3x3 matrix is applied as ``A @ x`` to column vectors; the official code multiplies row vectors,
  ``x @ A``. A learned matrix does not care which; ``A A^T = I`` exactly when ``A^T A = I``.
* Extra input channels (normals) are seen by the input T-Net, but only the coordinates are transformed by it (as in
  yanx27's port); the official classification network reads coordinates only.
* PointNet++ is the single-scale (SSG) version; the multi-scale (MSG) and multi-resolution groupings are explained
  in the notebook, not built. Farthest point sampling starts at point 0, as the official operator does, so the
  output depends (a little) on the order of the points; PointNet's does not. A ball that contains no point
  (possible only when the centres are not among the points) gets the nearest point instead of an undefined index.
* Everything is plain PyTorch (no CUDA operators): ``farthest_point_sample`` is a Python loop over the centres, and
  distances are computed for all pairs, which is fine for the 1-2 k points of ShapeNet and ModelNet shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

REG_WEIGHT = 0.001  # weight of the feature transform's orthogonality penalty (official get_loss)
BN_MOMENTUM = 0.1  # PyTorch's default; the official code starts at 0.5 and decays it (see the module docstring)

# PointNet (charlesq34/pointnet), see the module docstring
TNET_MLP, TNET_FC = (64, 128, 1024), (512, 256)
CLS_MLP1, CLS_MLP2, CLS_HEAD, CLS_DROPOUT = (64, 64), (64, 128, 1024), (512, 256), 0.3
PART_MLP1, PART_MLP2, PART_HEAD, PART_DROPOUT = (64, 128, 128), (512, 2048), (256, 256, 128), 0.2

# PointNet++ single-scale grouping (charlesq34/pointnet2): shared MLPs of the three SA levels, FP levels, heads
SSG_MLPS = ((64, 64, 128), (128, 128, 256), (256, 512, 1024))
SSG_CENTRES, SSG_RADII = (512, 128), (0.2, 0.4)
SSG_CLS_GROUP_SIZES, SSG_PART_GROUP_SIZES = (32, 64), (64, 64)
SSG_FP_MLPS = ((256, 256), (256, 128), (128, 128, 128))  # coarse to fine
SSG_CLS_HEAD, SSG_PART_HEAD, SSG_DROPOUT = (512, 256), 128, 0.5


# --------------------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------------------

def scaled(widths: Sequence[int], width: float) -> tuple[int, ...]:
    """The layer widths times ``width`` (at least 1 channel each): ``width=0.125`` makes a tiny network for smoke
    runs, with the same structure."""
    return tuple(max(1, round(c * width)) for c in widths)


def shared_layer(c_in: int, c_out: int, dims: int = 1) -> nn.Sequential:
    """One layer of a *shared* MLP: the same linear map for every point (a 1x1 convolution over the points, on
    ``(N, C, P)`` for ``dims=1``, or over centres and their neighbours, ``(N, C, S, k)``, for ``dims=2``), then
    BatchNorm and ReLU. No bias: BatchNorm's shift replaces it."""
    conv, norm = (nn.Conv1d, nn.BatchNorm1d) if dims == 1 else (nn.Conv2d, nn.BatchNorm2d)
    return nn.Sequential(conv(c_in, c_out, kernel_size=1, bias=False), norm(c_out), nn.ReLU(inplace=True))


def shared_mlp(c_in: int, widths: Sequence[int], dims: int = 1) -> nn.Sequential:
    """Shared layers of the given widths, one after the other."""
    return nn.Sequential(*[shared_layer(a, b, dims) for a, b in zip((c_in, *widths[:-1]), widths)])


def fc_layer(c_in: int, c_out: int) -> nn.Sequential:
    """A fully connected layer on one vector per shape, with BatchNorm and ReLU."""
    return nn.Sequential(nn.Linear(c_in, c_out, bias=False), nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))


def set_bn_momentum(model: nn.Module, momentum: float) -> nn.Module:
    """Set the momentum of every BatchNorm of ``model``: how much each training batch moves the running mean and
    variance that evaluation mode uses (PyTorch's momentum = 1 - TensorFlow's decay). Returns the model."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum
    return model


def with_category(points: torch.Tensor, category: torch.Tensor | int, num_categories: int) -> torch.Tensor:
    """Points ``(N, P, C)`` (or one cloud ``(P, C)``) with the one-hot of their shape's category appended to every
    point: ``(N, P, C + num_categories)``. ``category``: (N,) integers (or one integer). A dataset that returns
    this lets ``fit`` call a part-segmentation model with one tensor, ``model(inputs)``."""
    single = points.ndim == 2
    points = points[None] if single else points
    category = torch.as_tensor(category, device=points.device).reshape(-1).expand(points.shape[0])
    one_hot = F.one_hot(category.long(), num_categories).to(points.dtype)
    out = torch.cat([points, one_hot[:, None, :].expand(-1, points.shape[1], -1)], dim=-1)
    return out[0] if single else out


def _split_category(points: torch.Tensor, category: torch.Tensor | None, in_channels: int,
                    num_categories: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(points (N, P, in_channels), one_hot (N, num_categories))`` from either calling convention."""
    if category is not None:
        category = torch.as_tensor(category, device=points.device)
        one_hot = category.to(points.dtype) if category.ndim == 2 else F.one_hot(category.long(), num_categories)
        return points, one_hot.to(points.dtype)
    if points.shape[-1] != in_channels + num_categories:
        raise ValueError(f"a part-segmentation model needs each shape's category: call model(points, category), or "
                         f"append the one-hot to every point with with_category(points, category, {num_categories}) "
                         f"(then {in_channels} + {num_categories} channels per point); got points of shape "
                         f"{tuple(points.shape)} and no category")
    return points[..., :in_channels], points[:, 0, in_channels:]


def _check_points(points: torch.Tensor, channels: int) -> None:
    if points.ndim != 3 or points.shape[-1] != channels:
        raise ValueError(f"expected point clouds (N, P, {channels}): N clouds of P points with {channels} numbers "
                         f"each (x, y, z first), got shape {tuple(points.shape)}. A single cloud needs "
                         f"points[None]; clouds stored (N, {channels}, P) need points.transpose(1, 2)")


# --------------------------------------------------------------------------------------------------------------
# PointNet
# --------------------------------------------------------------------------------------------------------------

class TNet(nn.Module):
    """A mini-PointNet that predicts a k x k matrix from a whole cloud: shared MLP, max-pool, two fully connected
    layers, and a last linear layer that starts at the identity (zero weights, identity bias), so at the start of
    training the alignment does nothing. ``forward`` returns the matrices ``(N, k, k)`` and, for
    ``critical_points``, which point won the max-pool of each channel ``(N, C)``."""

    def __init__(self, c_in: int, k: int, width: float = 1.0):
        super().__init__()
        mlp, fc = scaled(TNET_MLP, width), scaled(TNET_FC, width)
        self.k = k
        self.mlp = shared_mlp(c_in, mlp)
        self.fc = nn.Sequential(fc_layer(mlp[-1], fc[0]), fc_layer(fc[0], fc[1]))
        self.matrix = nn.Linear(fc[1], k * k)
        nn.init.zeros_(self.matrix.weight)
        with torch.no_grad():
            self.matrix.bias.copy_(torch.eye(k).flatten())

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, winners = self.mlp(x).max(dim=2)
        return self.matrix(self.fc(pooled)).view(-1, self.k, self.k), winners


class PointNetEncoder(nn.Module):
    """PointNet up to the global feature: input T-Net, shared MLP 1, feature T-Net, shared MLP 2, max over the
    points (paper Fig. 2). ``transforms=False`` leaves both T-Nets out ("vanilla" PointNet).

    ``forward(points (N, P, in_channels))`` returns a dict: ``global_feature`` (N, C), ``point_features`` (the
    output of every shared layer, (N, C_i, P), for segmentation), ``input_transform`` (N, 3, 3) and
    ``feature_transform`` (N, K, K) (``None`` without transforms), ``winners`` (N, C): the point that gave each
    channel of the global feature its maximum, and ``tnet_winners`` the same for the T-Nets' max-pools."""

    def __init__(self, in_channels: int = 3, mlp1: Sequence[int] = CLS_MLP1, mlp2: Sequence[int] = CLS_MLP2,
                 width: float = 1.0, transforms: bool = True):
        super().__init__()
        if in_channels < 3:
            raise ValueError(f"in_channels counts x, y, z and any extra channels per point: at least 3, got "
                             f"{in_channels}")
        self.in_channels = in_channels
        self.input_tnet = TNet(in_channels, 3, width) if transforms else None
        self.mlp1 = nn.ModuleList(shared_layer(a, b) for a, b in zip((in_channels, *mlp1[:-1]), mlp1))
        self.feature_tnet = TNet(mlp1[-1], mlp1[-1], width) if transforms else None
        self.mlp2 = nn.ModuleList(shared_layer(a, b) for a, b in zip((mlp1[-1], *mlp2[:-1]), mlp2))
        self.out_channels = mlp2[-1]
        self.point_channels = sum(mlp1) + sum(mlp2)  # of all the point_features together

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor | list[torch.Tensor] | None]:
        _check_points(points, self.in_channels)
        x = points.transpose(1, 2)  # (N, C, P): channels first, for the 1x1 convolutions
        input_transform = feature_transform = None
        tnet_winners = []
        if self.input_tnet is not None:
            input_transform, winners = self.input_tnet(x)
            x = torch.cat([input_transform @ x[:, :3], x[:, 3:]], dim=1)  # align the coordinates
            tnet_winners.append(winners)
        point_features = []
        for layer in self.mlp1:
            x = layer(x)
            point_features.append(x)
        if self.feature_tnet is not None:
            feature_transform, winners = self.feature_tnet(x)
            x = feature_transform @ x  # align the features
            tnet_winners.append(winners)
        for layer in self.mlp2:
            x = layer(x)
            point_features.append(x)
        global_feature, winners = x.max(dim=2)  # the symmetric function: order of the points does not matter
        return {"global_feature": global_feature, "point_features": point_features,
                "input_transform": input_transform, "feature_transform": feature_transform, "winners": winners,
                "tnet_winners": torch.cat(tnet_winners, dim=1) if tnet_winners else winners[:, :0]}


class PointNetClassifier(nn.Module):
    """PointNet for shape classification: the encoder at the paper's widths (64, 64 | 64, 128, 1024), then fully
    connected layers 512, 256 (BatchNorm, ReLU, dropout 0.3 after each) and k logits. 3,473,969 parameters for
    k = 40; ``width`` scales every layer (``width=0.125``: 41,483 parameters for k = 2, for CPU smoke runs).

    ``forward(points (N, P, in_channels))``: in training mode ``{"logits": (N, k), "feature_transform": (N, 64,
    64)}`` for ``pointnet_loss``; in evaluation mode the logits (N, k)."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0, dropout: float = CLS_DROPOUT,
                 transforms: bool = True, bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        self.encoder = PointNetEncoder(in_channels, scaled(CLS_MLP1, width), scaled(CLS_MLP2, width), width,
                                       transforms)
        fc = scaled(CLS_HEAD, width)
        self.head = nn.Sequential(fc_layer(self.encoder.out_channels, fc[0]), nn.Dropout(dropout),
                                  fc_layer(fc[0], fc[1]), nn.Dropout(dropout), nn.Linear(fc[1], num_classes))
        set_bn_momentum(self, bn_momentum)

    def forward(self, points: torch.Tensor) -> dict[str, torch.Tensor] | torch.Tensor:
        encoded = self.encoder(points)
        logits = self.head(encoded["global_feature"])
        if self.training:
            return {"logits": logits, "feature_transform": encoded["feature_transform"]}
        return logits


class PointNetPartSeg(nn.Module):
    """PointNet for part segmentation, as the official part-segmentation network: trunk 64, 128, 128 | 512, 2048;
    every point reads the global feature and its shape's category (one-hot) together with the outputs of all five
    shared layers (skip links: local and global information), then shared layers 256, 256, 128 (dropout 0.2 after
    the first two) and ``num_parts`` logits. 8,334,907 parameters at these widths; ``width`` scales them.

    ``forward(points (N, P, in_channels), category (N,) = None)``; without ``category`` the points must carry its
    one-hot (``with_category``). In training mode ``{"logits": (N, num_parts, P), "feature_transform": ...}``, in
    evaluation mode the logits (N, num_parts, P). ShapeNet-part: 50 parts in 16 categories."""

    def __init__(self, num_parts: int = 50, num_categories: int = 16, in_channels: int = 3, width: float = 1.0,
                 dropout: float = PART_DROPOUT, transforms: bool = True, bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        self.num_categories = num_categories
        self.encoder = PointNetEncoder(in_channels, scaled(PART_MLP1, width), scaled(PART_MLP2, width), width,
                                       transforms)
        c_in = self.encoder.out_channels + num_categories + self.encoder.point_channels
        h = scaled(PART_HEAD, width)
        self.head = nn.Sequential(shared_layer(c_in, h[0]), nn.Dropout(dropout), shared_layer(h[0], h[1]),
                                  nn.Dropout(dropout), shared_layer(h[1], h[2]), nn.Conv1d(h[2], num_parts, 1))
        set_bn_momentum(self, bn_momentum)

    def forward(self, points: torch.Tensor,
                category: torch.Tensor | None = None) -> dict[str, torch.Tensor] | torch.Tensor:
        points, one_hot = _split_category(points, category, self.encoder.in_channels, self.num_categories)
        encoded = self.encoder(points)
        shape_code = torch.cat([encoded["global_feature"], one_hot], dim=1)  # (N, C + categories)
        per_point = torch.cat([shape_code[:, :, None].expand(-1, -1, points.shape[1]),
                               *encoded["point_features"]], dim=1)
        logits = self.head(per_point)
        if self.training:
            return {"logits": logits, "feature_transform": encoded["feature_transform"]}
        return logits


def orthogonality_loss(matrices: torch.Tensor) -> torch.Tensor:
    """The paper's regulariser ||I - A A^T||^2 (squared Frobenius norm), averaged over the batch of matrices
    ``(N, K, K)``: zero exactly when every A is orthogonal (a rotation or reflection, which loses nothing)."""
    a = matrices.float()
    eye = torch.eye(a.shape[-1], device=a.device, dtype=a.dtype)
    return (eye - a @ a.transpose(1, 2)).square().sum(dim=(1, 2)).mean()


def pointnet_loss(outputs: dict[str, torch.Tensor] | torch.Tensor, targets: torch.Tensor,
                  reg_weight: float = REG_WEIGHT, ignore_index: int = -100) -> torch.Tensor:
    """Cross-entropy, plus ``reg_weight`` x ``orthogonality_loss`` of the feature transform when ``outputs`` has
    one (PointNet in training mode), as ``fit`` wants its ``loss_fn(model(inputs), targets)``. Works for shapes
    (logits (N, k), targets (N,)) and for points (logits (N, parts, P), targets (N, P)), and for the PointNet++
    models, whose outputs are plain logits."""
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs
    loss = F.cross_entropy(logits.float(), targets, ignore_index=ignore_index)
    transform = outputs.get("feature_transform") if isinstance(outputs, dict) else None
    if transform is not None and reg_weight:
        loss = loss + reg_weight * orthogonality_loss(transform)
    return loss


@torch.no_grad()
def critical_points(model: nn.Module, points: torch.Tensor, with_tnets: bool = True) -> torch.Tensor:
    """The indices (sorted, 1-D) of the critical points of one cloud ``(P, C)`` (paper Fig. 7): the points that win
    the max-pool of at least one channel of the global feature. Keep only them and the global feature is the same;
    add or remove any other point (that does not beat a winner) and it stays the same too.

    ``with_tnets``: also the winners of the two T-Nets' own max-pools. The T-Nets' matrices change every point's
    features, so without their winners a smaller cloud could be aligned differently; with them, the global feature
    of the critical points alone is that of the whole cloud (up to rounding). ``model``: a PointNet classifier or
    part-segmentation model, or its encoder; evaluated in evaluation mode (BatchNorm's running statistics), its
    mode is restored afterwards."""
    encoder = model if isinstance(model, PointNetEncoder) else model.encoder
    if points.ndim != 2:
        raise ValueError(f"critical_points takes one cloud (P, C), got shape {tuple(points.shape)}")
    was_training = encoder.training
    encoder.eval()
    try:
        encoded = encoder(points[None, :, : encoder.in_channels])
    finally:
        encoder.train(was_training)
    winners = encoded["winners"][0]
    if with_tnets:
        winners = torch.cat([winners, encoded["tnet_winners"][0]])
    return torch.unique(winners)


# --------------------------------------------------------------------------------------------------------------
# PointNet++: sampling, grouping, interpolation
# --------------------------------------------------------------------------------------------------------------

def square_distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Euclidean distances between every point of ``a`` (N, S, 3) and of ``b`` (N, P, 3): (N, S, P).
    Computed from the differences (not |a|^2 + |b|^2 - 2ab, which can come out slightly wrong, or negative, for
    close points)."""
    return torch.cdist(a, b, compute_mode="donot_use_mm_for_euclid_dist").square()


def gather_points(xyz: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """The points ``xyz`` (N, P, C) at ``index`` (N, S): (N, S, C)."""
    return xyz.gather(1, index[..., None].expand(-1, -1, xyz.shape[-1]))


@torch.no_grad()
def farthest_point_sample(xyz: torch.Tensor, m: int) -> torch.Tensor:
    """Indices (N, m) of m points that cover each cloud ``xyz`` (N, P, 3) evenly: start at point 0 (as the official
    operator; the PyTorch ports start at random, which makes runs differ), then, m - 1 times, take the point
    farthest from all those taken so far. Even coverage with few points, whatever the density of the cloud. The
    indices are distinct as long as the cloud has at least m distinct points."""
    n, p, _ = xyz.shape
    if not 1 <= m <= p:
        raise ValueError(f"cannot sample {m} of {p} points")
    chosen = torch.zeros(n, m, dtype=torch.long, device=xyz.device)
    nearest = torch.full((n, p), float("inf"), device=xyz.device)  # squared distance to the nearest chosen point
    farthest = torch.zeros(n, dtype=torch.long, device=xyz.device)
    batch = torch.arange(n, device=xyz.device)
    for i in range(m):
        chosen[:, i] = farthest
        last = xyz[batch, farthest][:, None, :]  # (N, 1, 3)
        nearest = torch.minimum(nearest, (xyz - last).square().sum(dim=-1))
        farthest = nearest.argmax(dim=1)  # ties: the lowest index
    return chosen


@torch.no_grad()
def ball_query(radius: float, k: int, xyz: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """For each centre (N, S, 3), the indices (N, S, k) of k points of ``xyz`` (N, P, 3) closer than ``radius``: the
    *first* k in the order of the points (not the nearest k: this is what the official operator does, and cheaper).
    A ball with fewer than k points repeats the first one found, so every group has k members and a max over them
    is unaffected. A ball with no point at all (only possible when the centres are not among the points) gets the
    nearest point."""
    d2 = square_distances(centres, xyz)  # (N, S, P)
    p = xyz.shape[1]
    order = torch.arange(p, device=xyz.device).expand_as(d2)
    candidates = torch.where(d2 < radius**2, order, p)  # outside the ball: p, which sorts last
    first = candidates.topk(min(k, p), dim=-1, largest=False, sorted=True).values  # first k inside, in order
    if k > p:
        first = torch.cat([first, first.new_full((*first.shape[:-1], k - p), p)], dim=-1)
    first_found = first[..., :1]
    first_found = torch.where(first_found == p, d2.argmin(dim=-1, keepdim=True), first_found)  # empty ball
    return torch.where(first == p, first_found, first)


def group(features: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Gather point features (N, C, P) at ``index`` (N, S, k), the output of ``ball_query``: (N, C, S, k), the
    features of the k members of each of the S groups, channels first, ready for a shared MLP (1x1 ``Conv2d``)."""
    n, c, _ = features.shape
    flat = index.reshape(n, 1, -1).expand(-1, c, -1)
    return features.gather(2, flat).view(n, c, *index.shape[1:])


def interpolation_weights(xyz: torch.Tensor, known_xyz: torch.Tensor,
                          k: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """For each point of ``xyz`` (N, P, 3), its k nearest points of ``known_xyz`` (N, S, 3) and their weights
    (both (N, P, k)): inverse squared distances, normalised to sum 1 (the paper's default p = 2, k = 3). A point that
    coincides with a known point takes (almost exactly) that point's features: distances are floored at 1e-10, as
    in the official code. With fewer than k known points (the single centre of a group-all level), all of them."""
    d2, index = square_distances(xyz, known_xyz).topk(min(k, known_xyz.shape[1]), dim=-1, largest=False)
    inverse = 1.0 / d2.clamp_min(1e-10)
    return index, inverse / inverse.sum(dim=-1, keepdim=True)


class SetAbstraction(nn.Module):
    """One PointNet++ level: sample ``num_centres`` centres by farthest point sampling, group the ``group_size``
    first points within ``radius`` of each, express their coordinates relative to the centre (so the local PointNet
    sees shape, not position), append their features, run a shared MLP on every member, and max-pool each group.
    ``num_centres=None``: one group of all points around the origin (the last, global level).

    ``forward(xyz (N, P, 3), features (N, in_channels, P) or None)`` returns ``(centres (N, S, 3), features (N,
    mlp[-1], S))``. ``in_channels``: the feature channels of the input points (0 for bare coordinates); the layer
    adds 3 for the relative coordinates."""

    def __init__(self, num_centres: int | None, radius: float | None, group_size: int | None, in_channels: int,
                 mlp: Sequence[int]):
        super().__init__()
        if num_centres is not None and (radius is None or group_size is None):
            raise ValueError("a set abstraction with centres needs a radius and a group size")
        self.num_centres, self.radius, self.group_size = num_centres, radius, group_size
        self.mlp = shared_mlp(3 + in_channels, mlp, dims=2)
        self.out_channels = mlp[-1]

    def forward(self, xyz: torch.Tensor, features: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.num_centres is None:  # group all: one centre at the origin, absolute coordinates
            centres = xyz.new_zeros(xyz.shape[0], 1, 3)
            grouped = xyz.transpose(1, 2)[:, :, None, :]  # (N, 3, 1, P)
            if features is not None:
                grouped = torch.cat([grouped, features[:, :, None, :]], dim=1)
        else:
            centres = gather_points(xyz, farthest_point_sample(xyz, min(self.num_centres, xyz.shape[1])))
            members = ball_query(self.radius, self.group_size, xyz, centres)  # (N, S, k)
            grouped = group(xyz.transpose(1, 2), members) - centres.transpose(1, 2)[..., None]  # (N, 3, S, k)
            if features is not None:
                grouped = torch.cat([grouped, group(features, members)], dim=1)
        return centres, self.mlp(grouped).max(dim=3).values  # (N, mlp[-1], S)


class FeaturePropagation(nn.Module):
    """One PointNet++ segmentation level, coarse to fine: interpolate the features of the sparse points (``known``)
    to the denser ones (3 nearest, inverse squared distance weights), concatenate the dense points' own features
    (skip connection), and mix them with a "unit PointNet" (shared 1x1 layers).

    ``forward(xyz (N, P, 3), known_xyz (N, S, 3), features (N, C1, P) or None, known_features (N, C2, S))`` returns
    (N, mlp[-1], P). ``in_channels`` = C1 + C2."""

    def __init__(self, in_channels: int, mlp: Sequence[int]):
        super().__init__()
        self.mlp = shared_mlp(in_channels, mlp)
        self.out_channels = mlp[-1]

    def forward(self, xyz: torch.Tensor, known_xyz: torch.Tensor, features: torch.Tensor | None,
                known_features: torch.Tensor) -> torch.Tensor:
        index, weights = interpolation_weights(xyz, known_xyz)
        interpolated = (group(known_features, index) * weights[:, None]).sum(dim=-1)  # (N, C2, P)
        x = interpolated if features is None else torch.cat([interpolated, features], dim=1)
        return self.mlp(x)


def _split_xyz(points: torch.Tensor, in_channels: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Coordinates (N, P, 3) and the extra per-point channels (normals) channels-first (N, C - 3, P), or None."""
    _check_points(points, in_channels)
    return points[..., :3].contiguous(), points[..., 3:].transpose(1, 2) if in_channels > 3 else None


class PointNet2Classifier(nn.Module):
    """PointNet++ (single-scale grouping) for shape classification: SA(512 centres, radius 0.2, 32 members, 64-64-
    128), SA(128, 0.4, 64, 128-128-256), SA(all, 256-512-1024), then fully connected 512, 256 (BatchNorm, ReLU,
    dropout 0.5) and k logits. 1,472,360 parameters for k = 40. Radii are in the units of the clouds: shapes
    centred and scaled into the unit sphere, as the official code does (``pc_normalize`` in its ModelNet and
    ShapeNet-part datasets).

    For smoke runs: ``width`` scales the MLPs, ``num_centres`` and ``group_sizes`` set the cost, and the radii must
    grow when there are fewer points (e.g. 256 points: ``width=0.25, num_centres=(64, 16), radii=(0.4, 0.8),
    group_sizes=(16, 16)``). ``forward(points (N, P, in_channels))`` returns logits (N, k) in both modes."""

    def __init__(self, num_classes: int, in_channels: int = 3, width: float = 1.0,
                 num_centres: Sequence[int] = SSG_CENTRES, radii: Sequence[float] = SSG_RADII,
                 group_sizes: Sequence[int] = SSG_CLS_GROUP_SIZES, dropout: float = SSG_DROPOUT,
                 bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        self.in_channels = in_channels
        m1, m2, m3 = (scaled(mlp, width) for mlp in SSG_MLPS)
        self.sa1 = SetAbstraction(num_centres[0], radii[0], group_sizes[0], in_channels - 3, m1)
        self.sa2 = SetAbstraction(num_centres[1], radii[1], group_sizes[1], m1[-1], m2)
        self.sa3 = SetAbstraction(None, None, None, m2[-1], m3)
        fc = scaled(SSG_CLS_HEAD, width)
        self.head = nn.Sequential(fc_layer(m3[-1], fc[0]), nn.Dropout(dropout), fc_layer(fc[0], fc[1]),
                                  nn.Dropout(dropout), nn.Linear(fc[1], num_classes))
        set_bn_momentum(self, bn_momentum)

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        xyz, features = _split_xyz(points, self.in_channels)
        xyz1, features1 = self.sa1(xyz, features)
        xyz2, features2 = self.sa2(xyz1, features1)
        _, global_feature = self.sa3(xyz2, features2)  # (N, C, 1)
        return self.head(global_feature[:, :, 0])


class PointNet2PartSeg(nn.Module):
    """PointNet++ (single-scale grouping) for part segmentation: the three SA levels of the official part-seg
    network (64 members in the first ball), then FP levels 256-256, 256-128 and 128-128-128 back to every input
    point; the last one's skip input is [category one-hot, xyz, extra channels] (as the official one-hot model and
    yanx27's SSG port), then a shared layer 128, dropout 0.5 and ``num_parts`` logits. The official network reads
    normals too: ``in_channels=6`` (1,407,282 parameters); xyz only (3): 1,406,706.

    ``forward(points (N, P, in_channels), category (N,) = None)`` as ``PointNetPartSeg``; logits (N, num_parts, P)
    in both modes. Smoke knobs as ``PointNet2Classifier``."""

    def __init__(self, num_parts: int = 50, num_categories: int = 16, in_channels: int = 3, width: float = 1.0,
                 num_centres: Sequence[int] = SSG_CENTRES, radii: Sequence[float] = SSG_RADII,
                 group_sizes: Sequence[int] = SSG_PART_GROUP_SIZES, dropout: float = SSG_DROPOUT,
                 bn_momentum: float = BN_MOMENTUM):
        super().__init__()
        self.in_channels, self.num_categories = in_channels, num_categories
        m1, m2, m3 = (scaled(mlp, width) for mlp in SSG_MLPS)
        f3, f2, f1 = (scaled(mlp, width) for mlp in SSG_FP_MLPS)
        self.sa1 = SetAbstraction(num_centres[0], radii[0], group_sizes[0], in_channels - 3, m1)
        self.sa2 = SetAbstraction(num_centres[1], radii[1], group_sizes[1], m1[-1], m2)
        self.sa3 = SetAbstraction(None, None, None, m2[-1], m3)
        self.fp3 = FeaturePropagation(m3[-1] + m2[-1], f3)  # global feature -> level-2 centres
        self.fp2 = FeaturePropagation(f3[-1] + m1[-1], f2)  # -> level-1 centres
        self.fp1 = FeaturePropagation(f2[-1] + num_categories + in_channels, f1)  # -> every input point
        h = scaled((SSG_PART_HEAD,), width)[0]
        self.head = nn.Sequential(shared_layer(f1[-1], h), nn.Dropout(dropout), nn.Conv1d(h, num_parts, 1))
        set_bn_momentum(self, bn_momentum)

    def forward(self, points: torch.Tensor, category: torch.Tensor | None = None) -> torch.Tensor:
        points, one_hot = _split_category(points, category, self.in_channels, self.num_categories)
        xyz, features = _split_xyz(points, self.in_channels)
        xyz1, features1 = self.sa1(xyz, features)
        xyz2, features2 = self.sa2(xyz1, features1)
        xyz3, features3 = self.sa3(xyz2, features2)
        features2 = self.fp3(xyz2, xyz3, features2, features3)
        features1 = self.fp2(xyz1, xyz2, features1, features2)
        skip = torch.cat([one_hot[:, :, None].expand(-1, -1, points.shape[1]), points.transpose(1, 2)], dim=1)
        return self.head(self.fp1(xyz, xyz1, skip, features1))
