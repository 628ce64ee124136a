"""Self-Correction for Human Parsing: the cyclical schedule, the running average of cycle-end weights, the refined
targets and their loss, saving and loading, and a run through fit."""

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import train
from course_utils.self_correction import CyclicalLR, SelfCorrection

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_schedule_warms_up_decays_then_restarts_at_half():
    schedule = CyclicalLR(warmup_steps=10, decay_steps=90, cycle_steps=10, restart=0.5, floor=0.01)
    assert schedule(0) == pytest.approx(0.01) and schedule(10) == pytest.approx(1.0)
    assert schedule(5) == pytest.approx(0.01 + 0.99 * 0.5)
    assert schedule(55) == pytest.approx(0.01 + 0.99 * 0.5)  # halfway down the cosine
    assert schedule(100) == pytest.approx(0.5) and schedule(110) == pytest.approx(0.5)  # each cycle restarts
    assert schedule(109) < 0.03 and schedule(105) == pytest.approx(0.01 + 0.49 * 0.5)
    assert schedule.cycle_ends(3) == [100, 110, 120, 130]
    with pytest.raises(ValueError):
        CyclicalLR(1, 1, 0)


def test_snapshots_are_averaged_with_equal_weights():
    model = torch.nn.Linear(2, 1)
    correction = SelfCorrection(model, num_classes=2)
    weights = []
    for value in (1.0, 2.0, 6.0):
        with torch.no_grad():
            model.weight.fill_(value)
        correction.aggregate(model, [])
        weights.append(value)
        assert correction.averaged.module.weight.mean().item() == pytest.approx(sum(weights) / len(weights))
    assert correction.snapshots == 3  # SCHP's rule: the m-th snapshot weighs 1 / m


class Scores(torch.nn.Module):
    """A 'segmentation model' whose logits are a 1x1 convolution of the image: 3 classes."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 3, 1)
        self.norm = torch.nn.BatchNorm2d(3)

    def forward(self, x):
        return self.norm(self.conv(x))


def test_refined_targets_mix_logits_and_labels_and_ignore_255():
    torch.manual_seed(0)
    model = Scores()
    correction = SelfCorrection(model, num_classes=3)
    images = torch.randn(2, 2, 4, 5)
    labels = torch.randint(0, 3, (2, 4, 5))
    labels[0, 0, 0] = 255
    outputs = model(images).detach()
    before = correction.loss(outputs, {"label": labels, "image": images})
    assert before.item() == pytest.approx(F.cross_entropy(outputs, labels, ignore_index=255).item())
    with pytest.raises(RuntimeError, match="no snapshot"):
        correction.refined_targets(images, labels)
    correction.aggregate(model, [(images, labels)])
    correction.averaged.eval()
    logits = correction.averaged(images)
    one_hot = F.one_hot(labels.clamp(max=2), 3).permute(0, 3, 1, 2).float()
    expected = torch.softmax(0.5 * logits + 0.5 * one_hot, 1)  # one snapshot: a = 1/2
    soft = correction.refined_targets(images, labels)
    valid = (labels != 255)[:, None].expand_as(soft)  # an ignored pixel's target is never used
    assert torch.allclose(soft[valid], expected[valid], atol=1e-6) and torch.allclose(soft.sum(1), torch.ones(2, 4, 5))
    loss = correction.loss(outputs, {"label": labels, "image": images})
    per_pixel = -(expected * F.log_softmax(outputs, 1)).sum(1)
    assert loss.item() == pytest.approx(per_pixel[labels != 255].mean().item(), rel=1e-5)
    assert correction.loss(outputs, labels).item() == pytest.approx(before.item())  # validation: the labels


def test_state_is_saved_and_loaded(tmp_path):
    model = Scores()
    correction = SelfCorrection(model, num_classes=3)
    assert not correction.load(tmp_path / "sc.pt")
    correction.aggregate(model, [torch.randn(2, 2, 3, 3)])
    correction.save(tmp_path / "sc.pt")
    again = SelfCorrection(Scores(), num_classes=3)
    assert again.load(tmp_path / "sc.pt") and again.snapshots == 1
    assert torch.equal(again.averaged.module.conv.weight, model.conv.weight)


def test_a_cycle_by_cycle_run_through_fit(tmp_path):
    torch.manual_seed(0)
    images = torch.randn(16, 2, 6, 6)
    labels = (images[:, 0] > 0).long() + (images[:, 1] > 1).long()  # learnable from the pixels
    batches = [(images[i:i + 4], {"label": labels[i:i + 4], "image": images[i:i + 4]}) for i in range(0, 16, 4)]
    monitor = [(images[:4], labels[:4])]  # validation batches carry the labels alone
    model = Scores()
    correction = SelfCorrection(model, num_classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    schedule = CyclicalLR(warmup_steps=2, decay_steps=6, cycle_steps=4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    epochs = [2, 3, 4]  # epoch ends at steps 8, 12, 16: the first decay and two cycles
    assert [e * len(batches) for e in epochs] == schedule.cycle_ends(2)
    for end in epochs:
        train.fit(model, batches, monitor, correction.loss, optimizer, scheduler=scheduler, epochs=end,
                  checkpoint_dir=tmp_path, resume=True, progress=False, device=torch.device("cpu"), save_every=0)
        snapshot = Scores()
        snapshot.load_state_dict(train.load_checkpoint(tmp_path / "last.pt")["model"])  # the cycle's end
        correction.aggregate(snapshot, batches)
    assert correction.snapshots == 3
    assert math.isfinite(correction.loss(model(images), {"label": labels, "image": images}).item())
