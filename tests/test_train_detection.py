"""`fit` trains torchvision's detection models (lists of images and target dicts, losses computed by
the model) with the same loop, checkpoints and resume as the segmentation models."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign, masks_to_boxes

from course_utils import train
from course_utils.metrics import MaskAP


class Squares(Dataset):
    """Bright squares on a dark, noisy 48x48 image: one or two instances of class 1 per image."""

    def __init__(self, n: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.items = []
        for i in range(n):
            image = 0.1 * torch.rand(3, 48, 48, generator=g)
            masks = []
            for _ in range(1 + i % 2):
                x, y = torch.randint(0, 30, (2,), generator=g).tolist()
                size = int(torch.randint(10, 17, (1,), generator=g))
                mask = torch.zeros(48, 48, dtype=torch.uint8)
                mask[y:y + size, x:x + size] = 1
                for earlier in masks:  # a later square hides what it covers
                    earlier[mask.bool()] = 0
                image[:, mask.bool()] = 0.9
                masks.append(mask)
            masks = torch.stack([m for m in masks if m.any()])
            labels = torch.ones(len(masks), dtype=torch.int64)
            self.items.append((image, {"boxes": masks_to_boxes(masks), "labels": labels, "masks": masks}))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    return tuple(zip(*batch))


def tiny_mask_rcnn(seed=0):
    torch.manual_seed(seed)
    backbone = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
                             nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU())
    backbone.out_channels = 16
    return MaskRCNN(backbone, num_classes=None, min_size=48, max_size=48,  # the predictors below: 2 classes
                    rpn_anchor_generator=AnchorGenerator(((8, 16),), ((1.0,),)),
                    box_roi_pool=MultiScaleRoIAlign(["0"], 7, 2), mask_roi_pool=MultiScaleRoIAlign(["0"], 14, 2),
                    box_head=TwoMLPHead(16 * 7 * 7, 64), box_predictor=FastRCNNPredictor(64, 2),
                    mask_head=MaskRCNNHeads(16, [16, 16], 1), mask_predictor=MaskRCNNPredictor(16, 16, 2),
                    rpn_pre_nms_top_n_train=50, rpn_post_nms_top_n_train=20, box_detections_per_img=10,
                    box_batch_size_per_image=32, rpn_batch_size_per_image=32)


def detections(outputs, targets):  # a per-image metric over a list of prediction dicts
    return torch.tensor([float((o["scores"] > 0.5).sum()) for o in outputs])


def run(tmp_path, epochs, resume=True):
    model = tiny_mask_rcnn()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train_loader = DataLoader(Squares(6, seed=0), batch_size=2, shuffle=True, collate_fn=collate)
    val_loader = DataLoader(Squares(2, seed=1), batch_size=2, collate_fn=collate)
    history = train.fit(model, train_loader, val_loader, None, optimizer, epochs=epochs, checkpoint_dir=tmp_path,
                        metrics={"detections": detections, "AP50": MaskAP("AP50")}, monitor="AP50", resume=resume,
                        progress=False)
    return model, history


def test_fit_trains_a_detection_model_with_its_own_losses_and_resumes_it(tmp_path):
    straight, history = run(tmp_path / "a", epochs=3)
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert "val_loss" not in history[0] and {"train_loss", "detections", "AP50"} <= set(history[0])
    assert all(0 <= h["AP50"] <= 1 or h["AP50"] != h["AP50"] for h in history)  # a fraction, or NaN
    assert all(torch.isfinite(torch.tensor(h["train_loss"])) for h in history)
    assert (tmp_path / "a" / "last.pt").is_file()
    run(tmp_path / "b", epochs=2)  # the session dies after epoch 2...
    resumed, history = run(tmp_path / "b", epochs=3)  # ...and the notebook runs again
    assert [h["epoch"] for h in history] == [1, 2, 3]
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q)


def test_a_detection_model_without_loss_fn_has_no_val_loss_to_monitor(tmp_path):
    model = tiny_mask_rcnn()
    loader = DataLoader(Squares(2, seed=0), batch_size=2, collate_fn=collate)
    with pytest.raises(ValueError, match="monitor='val_loss'"):
        train.fit(model, loader, loader, None, torch.optim.SGD(model.parameters(), lr=0.01), epochs=1,
                  checkpoint_dir=tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists()


def test_speed_of_a_detection_model_that_takes_a_list_of_images():
    model = tiny_mask_rcnn()
    assert train.images_per_second(model, (2, 3, 48, 48), iters=2, warmup=1, as_list=True) > 0
