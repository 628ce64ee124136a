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
    _, _, tl, vl = setup()
    other = nn.Conv2d(2, 3, 1)
    with pytest.raises(RuntimeError, match="another model"):
        train.fit(other, tl, vl, LOSS, torch.optim.SGD(other.parameters(), 0.1), epochs=2, metrics=METRICS,
                  monitor="acc", checkpoint_dir=tmp_path, progress=False)


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


def test_unknown_monitor_and_empty_loaders_fail_before_training(tmp_path):
    model, opt, tl, vl = setup()
    before = [p.clone() for p in model.parameters()]
    with pytest.raises(ValueError, match="monitor='dice'.*'acc'"):
        train.fit(model, tl, vl, LOSS, opt, epochs=1, checkpoint_dir=tmp_path, monitor="dice", metrics=METRICS,
                  progress=False)
    empty = DataLoader(toy_data(4), batch_size=8, drop_last=True)  # 4 samples, batches of 8: nothing
    with pytest.raises(ValueError, match="train_loader yields no batches"):
        train.fit(model, empty, vl, LOSS, opt, epochs=1, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="val_loader yields no batches"):
        train.fit(model, tl, DataLoader(toy_data(0)), LOSS, opt, epochs=1, checkpoint_dir=tmp_path, progress=False)
    assert not (tmp_path / "last.pt").exists()
    for p, q in zip(before, model.parameters()):
        torch.testing.assert_close(p, q)  # nothing was trained


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


# --- resuming with other settings -----------------------------------------------------------------

def onecycle_run(tmp_path, epochs, lr=0.1, optimizer=torch.optim.SGD, scheduler=True, **kw):
    model, _, tl, vl = setup()
    opt = optimizer(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * len(tl)) if scheduler else None
    history = train.fit(model, tl, vl, LOSS, opt, epochs=epochs, scheduler=sched, checkpoint_dir=tmp_path,
                        metrics=METRICS, monitor="acc", progress=False, **kw)
    return model, history


@pytest.mark.parametrize("change, expected", [
    (dict(epochs=4), r"scheduler total_steps: 8 then, 16 now"),  # more epochs, OneCycle rebuilt for them
    (dict(epochs=1), r"epochs: 2 already trained, 1 asked for now"),  # fewer: would hand back the old run
    (dict(lr=0.05), r"optimizer lr: 0.1 then, 0.05 now"),
    (dict(optimizer=torch.optim.Adam), r"optimizer: SGD then, Adam now"),
    (dict(scheduler=False), r"scheduler: OneCycleLR then, none now"),
])
def test_resume_with_changed_settings_stops_before_training_and_names_them(tmp_path, change, expected):
    onecycle_run(tmp_path, epochs=2)
    before = (tmp_path / "last.pt").read_bytes()
    kwargs = {"epochs": 2, **change}
    with pytest.raises(train.ResumeError, match=expected) as error:
        onecycle_run(tmp_path, **kwargs)
    assert "resume=False" in str(error.value) and "checkpoint_dir" in str(error.value)
    assert (tmp_path / "last.pt").read_bytes() == before  # untouched
    onecycle_run(tmp_path, resume=False, **kwargs)  # the first way out works


def test_resume_with_the_same_settings_and_finished_run_returns_it(tmp_path):
    _, first = onecycle_run(tmp_path, epochs=2)
    model, again = onecycle_run(tmp_path, epochs=2)
    assert again == first


def test_more_epochs_without_a_scheduler_continue_as_one_run(tmp_path):
    straight, _ = run(tmp_path / "a", epochs=4, lr=0.01)
    run(tmp_path / "b", epochs=2, lr=0.01)
    longer, history = run(tmp_path / "b", epochs=4, lr=0.01)  # planned 2, now 4: nothing depends on it
    assert len(history) == 4
    for p, q in zip(straight.parameters(), longer.parameters()):
        torch.testing.assert_close(p, q)


# --- NaN, checkpoint safety, checkpoint frequency --------------------------------------------------

def test_a_nan_validation_metric_is_never_the_best(tmp_path, capsys):
    calls = []

    def flaky(out, y):  # NaN in epoch 1 (the first validation), then the true accuracy
        calls.append(1)
        value = ((out > 0) == (y > 0.5)).float().flatten(1).mean(1)
        return value * float("nan") if len(calls) <= 2 else value  # 2 validation batches per epoch

    model, opt, tl, vl = setup(lr=2.0)
    history = train.fit(model, tl, vl, LOSS, opt, epochs=3, checkpoint_dir=tmp_path, metrics={"acc": flaky},
                        monitor="acc", progress=False)
    assert history[0]["acc"] != history[0]["acc"]  # NaN
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] in (2, 3) and best["acc"] == max(h["acc"] for h in history[1:])
    assert "acc is NaN: not a new best" in capsys.readouterr().out


def test_only_nan_keeps_the_last_weights_and_says_so(tmp_path, capsys):
    model, opt, tl, vl = setup()
    train.fit(model, tl, vl, LOSS, opt, epochs=2, checkpoint_dir=tmp_path, monitor="acc", progress=False,
              metrics={"acc": lambda out, y: torch.full((len(out),), float("nan"))})
    assert not (tmp_path / "best.pt").exists()
    assert "no epoch had a valid acc" in capsys.readouterr().out


def test_checkpoints_hold_only_what_weights_only_loading_accepts(tmp_path):
    onecycle_run(tmp_path, epochs=2, optimizer=torch.optim.AdamW)
    for name in ("last.pt", "best.pt"):
        torch.load(tmp_path / name, weights_only=True)  # raises if anything else is inside


class _Exploit:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_a_planted_checkpoint_cannot_run_code(tmp_path):
    run(tmp_path / "ckpt", epochs=1)
    state = torch.load(tmp_path / "ckpt" / "last.pt", weights_only=True)
    exploit = _Exploit()
    exploit.marker = str(tmp_path / "pwned")
    state["history"] = [exploit]
    torch.save(state, tmp_path / "ckpt" / "last.pt")  # someone else's last.pt, in a Kaggle dataset
    with pytest.raises(RuntimeError, match="refusing to load"):
        run(tmp_path / "ckpt", epochs=2)
    assert not (tmp_path / "pwned").exists()


class Interrupt(Exception):
    pass


def interrupted_run(tmp_path, save_every, die_in_epoch=3):
    model, opt, tl, vl = setup(lr=0.01)
    batches = []

    def loss_fn(out, y):
        batches.extend([1] if torch.is_grad_enabled() else [])  # count training batches, not validation
        if len(batches) > (die_in_epoch - 1) * len(tl):
            raise Interrupt  # the session dies during this epoch
        return LOSS(out, y)

    with pytest.raises(Interrupt):
        train.fit(model, tl, vl, loss_fn, opt, epochs=4, checkpoint_dir=tmp_path, metrics=METRICS, monitor="acc",
                  save_every=save_every, progress=False)


def test_last_checkpoint_is_written_at_most_every_save_every_seconds(tmp_path):
    interrupted_run(tmp_path / "rare", save_every=3600)
    assert not (tmp_path / "rare" / "last.pt").exists()  # epochs 1-2 took far less than an hour
    interrupted_run(tmp_path / "often", save_every=0)
    assert len(torch.load(tmp_path / "often" / "last.pt", weights_only=True)["history"]) == 2
    straight, _ = run(tmp_path / "straight", epochs=4, lr=0.01)
    resumed, history = run(tmp_path / "often", epochs=4, lr=0.01)  # resumed from epoch 2: still exact
    assert len(history) == 4
    for p, q in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(p, q)


def test_passing_the_same_used_objects_again_is_the_same_run(tmp_path):
    model, _, tl, vl = setup()
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=2 * len(tl))
    kwargs = dict(epochs=2, scheduler=sched, checkpoint_dir=tmp_path, metrics=METRICS, monitor="acc", progress=False)
    first = train.fit(model, tl, vl, LOSS, opt, **kwargs)
    assert train.fit(model, tl, vl, LOSS, opt, **kwargs) == first  # as notebook 03 shows resuming
