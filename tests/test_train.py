import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils import train


def toy_data(n=32, seed=0):
    """Pixels whose class is the sign of the first input channel: a 1x1 conv can learn it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, 6, 6, generator=g)
    y = (x[:, :1] > 0).float()
    return TensorDataset(x, y)


def setup(seed=0, lr=0.1, batch_size=8):
    torch.manual_seed(seed)
    model = nn.Conv2d(2, 1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    train_loader = DataLoader(toy_data(), batch_size, shuffle=True)
    val_loader = DataLoader(toy_data(16, seed=1), batch_size)
    return model, opt, train_loader, val_loader


LOSS = nn.BCEWithLogitsLoss()
METRICS = {"acc": lambda out, y: ((out > 0) == (y > 0.5)).float().flatten(1).mean(1)}


def run(tmp_path, epochs, resume=True, **kw):
    model, opt, tl, vl = setup(**{k: kw.pop(k) for k in ("lr", "batch_size") if k in kw})
    history = train.fit(model, tl, vl, LOSS, opt, epochs=epochs, checkpoint_dir=tmp_path, metrics=METRICS,
                        monitor="acc", resume=resume, progress=False, **kw)
    return model, history


def test_fit_learns_and_writes_history_and_checkpoints(tmp_path):
    model, history = run(tmp_path, epochs=4, lr=2.0)
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    assert {"train_loss", "val_loss", "acc", "lr", "seconds"} <= set(history[0])
    assert history[-1]["val_loss"] < history[0]["val_loss"]
    assert max(h["acc"] for h in history) > 0.9
    assert (tmp_path / "last.pt").is_file() and (tmp_path / "best.pt").is_file()
    best = max(history, key=lambda h: h["acc"])["acc"]  # the model ends on the best epoch's weights
    assert train.evaluate(model, DataLoader(toy_data(16, seed=1), 8), metrics=METRICS)["acc"] == pytest.approx(best)


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    straight, _ = run(tmp_path / "a", epochs=4, lr=0.01)
    run(tmp_path / "b", epochs=2, lr=0.01)  # the session dies after epoch 2...
    resumed, history = run(tmp_path / "b", epochs=4, lr=0.01)  # ...and the notebook is run again
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q)


def test_resume_false_starts_over_and_other_files_survive(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    run(tmp_path, epochs=2)
    _, history = run(tmp_path, epochs=1, resume=False)
    assert len(history) == 1 and (tmp_path / "notes.txt").read_text() == "keep me"


def test_resume_into_another_model_is_a_clear_error(tmp_path):
    run(tmp_path, epochs=1)
    other = nn.Conv2d(2, 3, 1)
    with pytest.raises(RuntimeError, match="another model"):
        train.fit(other, [], [], LOSS, torch.optim.SGD(other.parameters(), 0.1), epochs=2,
                  checkpoint_dir=tmp_path, progress=False)


def test_nan_loss_names_epoch_and_step(tmp_path):
    model, opt, tl, vl = setup()

    def bad_loss(out, y):
        return LOSS(out, y) * float("nan")

    with pytest.raises(FloatingPointError, match="epoch 1, step 1"):
        train.fit(model, tl, vl, bad_loss, opt, epochs=1, checkpoint_dir=tmp_path, progress=False)


def test_early_stopping_and_stays_stopped_on_resume(tmp_path):
    _, history = run(tmp_path, epochs=30, lr=0.0, patience=2)  # lr 0: never improves after epoch 1
    assert len(history) == 3
    _, again = run(tmp_path, epochs=30, lr=0.0, patience=2)
    assert len(again) == 3


def test_gradient_accumulation_matches_a_larger_batch(tmp_path):
    # mean losses over 2 batches of 4, averaged, equal the mean over one batch of 8 (no shuffling effects:
    # one step per epoch either way, and plain SGD without momentum)
    torch.manual_seed(0)
    data = toy_data(8)
    models = []
    for batch_size, accumulate in ((8, 1), (4, 2)):
        torch.manual_seed(0)
        model = nn.Conv2d(2, 1, 1)
        train.fit(model, DataLoader(data, batch_size), DataLoader(data, 8), LOSS,
                  torch.optim.SGD(model.parameters(), lr=0.5), epochs=1, accumulate=accumulate,
                  checkpoint_dir=tmp_path / str(batch_size), progress=False)
        models.append(model)
    for p, q in zip(*(m.parameters() for m in models)):
        torch.testing.assert_close(p, q)


def test_scheduler_steps_per_iteration_and_clipping_runs(tmp_path):
    model, opt, tl, vl = setup()
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    train.fit(model, tl, vl, LOSS, opt, epochs=1, scheduler=sched, clip_grad_norm=0.1,
              checkpoint_dir=tmp_path, progress=False)
    assert sched.last_epoch == len(tl)  # 4 batches: 4 scheduler steps


def test_unknown_monitor_is_an_error(tmp_path):
    model, opt, tl, vl = setup()
    with pytest.raises(KeyError, match="dice"):
        train.fit(model, tl, vl, LOSS, opt, epochs=1, checkpoint_dir=tmp_path, monitor="dice", progress=False)


def test_predict_evaluate_and_speed():
    model, _, _, vl = setup()
    outputs, targets = train.predict(model, vl)
    assert outputs.shape == targets.shape == (16, 1, 6, 6) and outputs.dtype == torch.float32
    result = train.evaluate(model, vl, LOSS, METRICS)
    assert set(result) == {"val_loss", "acc"} and 0 <= result["acc"] <= 1
    assert train.images_per_second(model, (2, 2, 6, 6), iters=2, warmup=1) > 0


def test_accumulating_metric_is_computed_over_the_whole_set_and_predict_can_postprocess():
    from course_utils.metrics import MeanIoU, confusion_matrix, mean_iou

    torch.manual_seed(0)
    model = nn.Conv2d(2, 3, 1)  # three classes
    data = TensorDataset(torch.randn(10, 2, 5, 5), torch.randint(0, 3, (10, 5, 5)))
    loader = DataLoader(data, 4)  # batches of 4, 4 and 2: a per-batch mean would weigh them wrongly
    result = train.evaluate(model, loader, metrics={"miou": MeanIoU(3)})
    labels, targets = train.predict(model, loader, postprocess=lambda out: out.argmax(1))
    assert labels.shape == (10, 5, 5) and labels.dtype == torch.int64
    assert result["miou"] == pytest.approx(mean_iou(confusion_matrix(labels, targets, 3)))
    assert train.evaluate(model, loader, metrics={"miou": MeanIoU(3)}) == result  # reset between runs
