"""train_cifar.py's --mixup, --cutmix, --ema and --grad-clip on a tiny synthetic CIFAR-10: each
does what its help says, a run with all of them resumes exactly, old checkpoints (saved before
these flags existed) still resume, and bad values are one-line errors."""
import json
import os

import numpy as np
import pytest

import minidl
import minidl.functional as F
import train_cifar
from tests.cifar_fake import records
from tests.test_train_cifar import (TINY, StopAfter, _one_line_error, full_and_resumed, rows,
                                    run)

ALL = ["--mixup", "0.4", "--cutmix", "1.0", "--ema", "0.8", "--grad-clip", "1.0"]


def test_mixing_feeds_class_probabilities_and_accuracy_uses_the_labels(
        data_dir, tmp_path, monkeypatch):
    seen = []
    plain = F.cross_entropy

    def spy(logits, target, **kw):
        seen.append(target.numpy().copy())
        return plain(logits, target, **kw)
    monkeypatch.setattr(F, "cross_entropy", spy)
    out = str(tmp_path / "run")
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--out", out,
               "--mixup", "0.4", "--cutmix", "1.0") == 0
    train = [t for t in seen if t.dtype.kind == "f"]
    assert len(train) == 7                               # every training step, mixed
    assert all(t.shape == (32, 10) and t.dtype == np.float32 for t in train)
    for t in train:
        np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
    assert any(((t > 0).sum(1) == 2).any() for t in train)   # two labels mixed in a row
    assert all(t.dtype.kind == "i" for t in seen if t.dtype.kind != "f")     # evaluation
    acc = rows(out)[0]["train_acc"]
    assert acc * 7 * 32 == pytest.approx(round(acc * 7 * 32))   # counted on whole labels


def test_grad_clip_scales_every_step_before_the_update(data_dir, tmp_path, monkeypatch):
    calls = []
    clip = minidl.nn.utils.clip_grad_norm_

    def spy(params, max_norm, *a, **kw):
        params = list(params)
        calls.append((len(params), max_norm, all(p.grad is not None for p in params)))
        total = clip(params, max_norm, *a, **kw)
        norm = np.sqrt(sum(float((p.grad.numpy().astype(np.float64) ** 2).sum())
                           for p in params))
        assert norm <= max_norm * (1 + 1e-5)
        return total
    monkeypatch.setattr(minidl.nn.utils, "clip_grad_norm_", spy)
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--out", str(tmp_path / "r"),
               "--grad-clip", "0.05") == 0
    n = len(list(train_cifar.nets.get_model("resnet20", depth=8).parameters()))
    assert calls == [(n, 0.05, True)] * 7


def test_ema_is_evaluated_saved_and_reported(data_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "2", "--out", out,
               "--ema", "0.8") == 0
    r = rows(out)
    assert all(0 <= e["ema_test_acc"] <= 1 and e["ema_test_loss"] > 0 for e in r)
    assert [e["ema_test_loss"] for e in r] != [e["test_loss"] for e in r]
    with open(os.path.join(out, "metrics.csv")) as f:
        assert f.readline().strip() == ",".join(train_cifar.FIELDS + train_cifar.EMA_FIELDS)
    with open(os.path.join(out, "metrics.json")) as f:
        summary = json.load(f)["summary"]
    assert summary["final_ema_test_acc"] == r[-1]["ema_test_acc"]
    text = capsys.readouterr().out
    assert "EMA weights: best" in text and f"EMA {100 * r[-1]['ema_test_acc']:.2f}%" in text
    # the saved average is the one evaluated, and it is the EMA of the weights
    ck = minidl.load(os.path.join(out, "checkpoint.npz"))
    assert int(ck["ema"]["n_averaged"].item()) == 14
    assert set(ck["ema"]) == {"module." + k for k in ck["model"]} | {"n_averaged"}
    capsys.readouterr()
    assert run("--eval-only", "--resume", out, "--data-dir", data_dir, "--no-progress") == 0
    text = capsys.readouterr().out
    assert f"EMA weights (--ema 0.8): test loss {r[-1]['ema_test_loss']:.4f}" in text


def test_ema_follows_the_formula(data_dir, tmp_path, monkeypatch):
    """The averaged weights equal decay-weighted sums of the weights after each step (the
    first step's weights copied), recomputed here from the model's own snapshots."""
    snaps = []
    real = minidl.optim.swa_utils.AveragedModel

    class Spy(real):
        def update_parameters(self, model):
            snaps.append({k: v.numpy().astype(np.float64)
                          for k, v in model.state_dict().items() if v.dtype.kind == "f"})
            return super().update_parameters(model)
    monkeypatch.setattr(minidl.optim.swa_utils, "AveragedModel", Spy)
    out = str(tmp_path / "run")
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--out", out,
               "--ema", "0.7") == 0
    ema = minidl.load(os.path.join(out, "checkpoint.npz"))["ema"]
    assert len(snaps) == 7
    for key in snaps[0]:
        expect = snaps[0][key]
        for s in snaps[1:]:
            expect = 0.7 * expect + 0.3 * s[key]
        np.testing.assert_allclose(ema["module." + key].numpy(), expect, rtol=1e-5,
                                   atol=1e-6, err_msg=key)


@pytest.mark.parametrize("stop_after", [4, 7])
def test_run_with_every_regularizer_resumes_exactly(data_dir, tmp_path, monkeypatch,
                                                    stop_after):
    full, part = full_and_resumed(data_dir, tmp_path, monkeypatch, stop_after, ALL)
    a, b = rows(full), rows(part)
    keys = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
            "ema_test_loss", "ema_test_acc"]
    assert [[e[k] for k in keys] for e in a] == [[e[k] for k in keys] for e in b]
    ca = minidl.load(os.path.join(full, "checkpoint.npz"))
    cb = minidl.load(os.path.join(part, "checkpoint.npz"))
    for part_name in ("model", "ema"):
        for k in ca[part_name]:
            np.testing.assert_array_equal(ca[part_name][k].numpy(), cb[part_name][k].numpy())
    assert ca["config"]["mixup"] == 0.4 and ca["config"]["ema"] == 0.8


def test_checkpoint_from_before_these_flags_resumes_with_them_off(data_dir, tmp_path,
                                                                  monkeypatch):
    out = str(tmp_path / "run")
    StopAfter.n = 4
    monkeypatch.setattr(train_cifar, "StopFlag", StopAfter)
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--out", out) == 130
    monkeypatch.undo()
    records(monkeypatch, 48, 100)
    path = os.path.join(out, "checkpoint.npz")
    ck = minidl.load(path)
    for key in train_cifar.LATER_KEYS:
        del ck["config"][key]
    minidl.save(ck, path)
    assert run("--resume", out, "--no-progress", "--data-dir", data_dir) == 0
    ck = minidl.load(path)
    assert ck["epoch"] == 1 and "ema" not in ck
    assert all(ck["config"][k] == train_cifar.DEFAULTS[k] for k in train_cifar.LATER_KEYS)


def test_bad_values_and_damaged_ema_checkpoints_are_one_line(data_dir, tmp_path, monkeypatch,
                                                              capsys):
    for flag, value, message in [
            ("--ema", "1", "--ema must be a decay in [0, 1) (0: off), got 1.0"),
            ("--ema", "-0.5", "--ema must be a decay in [0, 1) (0: off), got -0.5"),
            ("--mixup", "-1", "--mixup must be >= 0 and finite (0: off), got -1.0"),
            ("--cutmix", "inf", "--cutmix must be >= 0 and finite (0: off), got inf"),
            ("--grad-clip", "nan", "--grad-clip must be >= 0 and finite (0: off), got nan")]:
        out = tmp_path / "bad"
        assert message in _one_line_error(capsys, *TINY, "--data-dir", data_dir, "--out",
                                          str(out), flag, value)
        assert not out.exists()
    out = str(tmp_path / "run")
    StopAfter.n = 3
    monkeypatch.setattr(train_cifar, "StopFlag", StopAfter)
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--out", out,
               "--ema", "0.9") == 130
    monkeypatch.undo()
    records(monkeypatch, 48, 100)
    capsys.readouterr()
    err = _one_line_error(capsys, "--resume", out, "--data-dir", data_dir, "--ema", "0.5")
    assert "--ema 0.5 differs from the checkpoint (--ema 0.9)" in err
    path = os.path.join(out, "checkpoint.npz")
    ck = minidl.load(path)
    del ck["ema"]
    minidl.save(ck, path)
    err = _one_line_error(capsys, "--resume", out, "--data-dir", data_dir)
    assert "incomplete or damaged" in err and "ema" in err


@pytest.mark.cuda
def test_cuda_graph_with_every_regularizer_matches_the_eager_run(data_dir, tmp_path):
    gpu = [a if a != "cpu" else "cuda" for a in TINY]
    common = gpu + ["--data-dir", data_dir, "--epochs", "1", "--seed", "5"] + ALL
    eager, graphed = str(tmp_path / "eager"), str(tmp_path / "graph")
    assert run(*common, "--out", eager) == 0
    assert run(*common, "--out", graphed, "--cuda-graph") == 0
    for a, b in zip(rows(eager), rows(graphed)):
        for k in ("train_loss", "test_loss", "ema_test_loss"):
            assert b[k] == pytest.approx(a[k], rel=1e-4), k
