"""train_cifar.py end to end on a tiny synthetic CIFAR-10 (CPU): smoke run, exact resume after
an interruption, eval-only, one-line errors with exit code 2, and crash-safe checkpoints."""
import json
import os
import pathlib
import subprocess
import sys
import tarfile
import time

import numpy as np
import pytest

import minidl
import train_cifar
from tests.cifar_fake import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--model", "resnet20", "--model-option", "depth=8", "--batch-size", "32",
        "--device", "cpu", "--no-progress", "--limit-test", "64"]


def run(*argv):
    return train_cifar.main(list(argv))


def rows(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return json.load(f)["epochs"]


def test_smoke_run_lowers_loss_and_writes_everything(data_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    threads = minidl.get_num_threads()
    try:
        assert run(*TINY, "--data-dir", data_dir, "--epochs", "3", "--out", out,
                   "--threads", "1") == 0
        assert minidl.get_num_threads() == 1
    finally:
        minidl.set_num_threads(threads)
    r = rows(out)
    assert [e["epoch"] for e in r] == [1, 2, 3]
    assert r[-1]["train_loss"] < r[0]["train_loss"]
    assert r[-1]["test_acc"] > 0.2                       # 10 classes: chance is 0.1
    assert {"checkpoint.npz", "metrics.csv", "metrics.json"} <= set(os.listdir(out))
    try:
        import matplotlib  # noqa: F401
        assert os.path.getsize(os.path.join(out, "curves.png")) > 1000
    except ImportError:
        assert "curves.png" not in os.listdir(out)
    with open(os.path.join(out, "metrics.csv")) as f:
        assert f.readline().strip() == ",".join(train_cifar.FIELDS)
        assert len(f.readlines()) == 3
    ck = minidl.load(os.path.join(out, "checkpoint.npz"))
    assert ck["epoch"] == 3 and ck["config"]["model"] == "resnet20"
    with open(os.path.join(out, "metrics.json")) as f:
        summary = json.load(f)["summary"]
    assert summary["device"] == "cpu" and summary["tf32"] is False
    assert summary["cpu_threads"] == 1
    assert summary["host_memory_reuse"] == minidl.host_memory_reuse()
    counts = np.array(summary["final_confusion"]["counts"])
    assert summary["final_confusion"]["classes"] == [f"class{i}" for i in range(10)]
    assert counts.shape == (10, 10) and counts.sum() == 64             # --limit-test 64
    assert np.trace(counts) / 64 == pytest.approx(r[-1]["test_acc"])
    per_class = summary["final_test_acc_per_class"]
    for i, name in enumerate(summary["final_confusion"]["classes"]):
        seen = counts[i].sum()
        assert per_class[name] == (pytest.approx(counts[i, i] / seen) if seen else None)
    text = capsys.readouterr().out
    assert "done: best test accuracy" in text and "images/s" in text
    assert "\nper class: class0 " in text and "\nmost confused: " in text


class StopAfter(train_cifar.StopFlag):
    """Acts as if Ctrl-C came after ``n`` training steps."""
    n = 0

    def __init__(self):
        self.count = 0

    @property
    def set(self):
        self.count += 1
        return self.count > StopAfter.n

    @set.setter
    def set(self, value):
        pass


def full_and_resumed(data_dir, tmp_path, monkeypatch, stop_after, extra=()):
    """Run folders of a 2-epoch run, and of the same run stopped (as by Ctrl-C) after
    ``stop_after`` steps and resumed to the end."""
    full, part = str(tmp_path / "full"), str(tmp_path / "part")
    common = TINY + ["--data-dir", data_dir, "--epochs", "2", "--seed", "3", *extra]
    assert run(*common, "--out", full) == 0
    StopAfter.n = stop_after
    monkeypatch.setattr(train_cifar, "StopFlag", StopAfter)
    assert run(*common, "--out", part) == 130
    monkeypatch.undo()
    records(monkeypatch, 48, 100)
    assert run("--resume", part, "--no-progress", "--data-dir", data_dir,
               "--device", "cpu") == 0      # (the default would take a GPU when there is one)
    return full, part


@pytest.mark.parametrize("stop_after", [4, 7])      # mid-epoch, and at the end of epoch 1
def test_resume_reproduces_uninterrupted_run(data_dir, tmp_path, monkeypatch, stop_after):
    full, part = full_and_resumed(data_dir, tmp_path, monkeypatch, stop_after)
    a, b = rows(full), rows(part)
    keys = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc"]
    assert [[e[k] for k in keys] for e in a] == [[e[k] for k in keys] for e in b]
    wa = minidl.load(os.path.join(full, "checkpoint.npz"))["model"]
    wb = minidl.load(os.path.join(part, "checkpoint.npz"))["model"]
    for k in wa:
        np.testing.assert_array_equal(wa[k].numpy(), wb[k].numpy())


def test_eval_only(data_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--out", out) == 0
    acc = rows(out)[-1]["test_acc"]
    capsys.readouterr()
    assert run("--eval-only", "--resume", out, "--data-dir", data_dir, "--no-progress") == 0
    text = capsys.readouterr().out
    assert f"test accuracy {100 * acc:.2f}%" in text
    assert "\nper class: class0 " in text and "\nmost confused: " in text


def test_no_verify_md5_says_so_in_one_line(data_dir, tmp_path, capsys):
    """Only for an archive (an extracted folder has no md5 to skip, and says nothing)."""
    out = str(tmp_path / "run")
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--limit-train", "32",
               "--no-verify-md5", "--out", out) == 0
    assert "md5" not in capsys.readouterr().err
    packed = tmp_path / "packed"
    packed.mkdir()
    with tarfile.open(packed / "cifar-10-binary.tar.gz", "w:gz") as tar:
        tar.add(os.path.join(data_dir, "cifar-10-batches-bin"), arcname="cifar-10-batches-bin")
    assert run(*TINY, "--data-dir", str(packed), "--epochs", "1", "--limit-train", "32",
               "--no-verify-md5", "--out", out + "2") == 0
    err = capsys.readouterr().err
    warn = [ln for ln in err.splitlines() if "md5" in ln]
    assert len(warn) == 1 and warn[0].startswith("train_cifar.py: warning: CIFAR10: "), err
    assert "--no-verify-md5: loading" in warn[0] and "verify_md5=False" not in err
    assert "UserWarning" not in err and "load_data(" not in err


def _one_line_error(capsys, *argv):
    assert run(*argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train_cifar.py: error: ") and "\n" not in err, err
    return err


def test_bad_input_is_one_line_and_exit_2(data_dir, tmp_path, capsys):
    d = ["--data-dir", data_dir]
    err = _one_line_error(capsys, *TINY, "--data-dir", str(tmp_path / "nowhere"))
    assert "nowhere" in err and "pass --download to fetch" in err and "=True" not in err
    err = _one_line_error(capsys, "--model", "resnet21", *d)
    assert "resnet21" in err and "resnet20" in err and "densenet_bc_100" in err
    if not minidl.is_cuda_available():
        err = _one_line_error(capsys, "--device", "cuda", *d)
        assert "cuda" in err and "pip install" in err
    assert "--epochs must be a positive" in _one_line_error(capsys, "--epochs", "0", *d)
    assert "--threads must be a positive integer, got 0" in _one_line_error(capsys, "--threads",
                                                                             "0", *d)
    assert "--batch-size must be a positive" in _one_line_error(capsys, "--batch-size", "-1", *d)
    assert "--lr must be positive" in _one_line_error(capsys, "--lr", "0", *d)
    assert "invalid int value" in _one_line_error(capsys, "--epochs", "x", *d)
    assert "--eval-only needs --resume" in _one_line_error(capsys, "--eval-only", *d)
    assert "--tf32 is a GPU matrix-multiply mode; it needs --device cuda, got cpu" in \
        _one_line_error(capsys, "--tf32", "--device", "cpu", *d)
    assert "--cuda-graph captures GPU work; it needs --device cuda, got cpu" in \
        _one_line_error(capsys, "--cuda-graph", "--device", "cpu", *d)
    assert "no checkpoint at" in _one_line_error(capsys, "--resume", str(tmp_path / "no.npz"))
    assert "--model-option expects KEY=VALUE" in _one_line_error(capsys, "--model-option",
                                                                 "depth", *d)
    assert "has no option(s) colour" in _one_line_error(capsys, "--model-option", "colour=red",
                                                        *d)


def test_bad_resume_overwrites_nothing(data_dir, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--out", out) == 0
    ck = os.path.join(out, "checkpoint.npz")
    before = {n: pathlib.Path(out, n).read_bytes() for n in os.listdir(out)}
    err = _one_line_error(capsys, "--resume", ck, "--model", "resnet32", "--data-dir", data_dir)
    assert "--model resnet32 differs from the checkpoint (--model resnet20)" in err
    truncated = str(tmp_path / "trunc.npz")
    with open(truncated, "wb") as f:
        f.write(before["checkpoint.npz"][:1000])
    assert "not a readable minidl checkpoint" in _one_line_error(capsys, "--resume", truncated)
    for name, content in (("notes.npz", b"not a zip"), ("array.npy", b"\x93NUMPY\x01\x00")):
        pathlib.Path(tmp_path, name).write_bytes(content)
        err = _one_line_error(capsys, "--resume", str(tmp_path / name))
        assert "is not a readable minidl checkpoint (not a zip archive" in err, err
        assert "pickle" not in err
    other = str(tmp_path / "other.npz")
    minidl.save({"format": "something else"}, other)
    assert "not a train_cifar.py checkpoint" in _one_line_error(capsys, "--resume", other)
    after = {n: pathlib.Path(out, n).read_bytes() for n in os.listdir(out)}
    assert after == before


def test_help_documents_every_flag():
    text = subprocess.run([sys.executable, "train_cifar.py", "--help"], cwd=ROOT,
                          capture_output=True, text=True, check=True).stdout
    for flag in ("--model", "--epochs", "--batch-size", "--optimizer", "--lr", "--momentum",
                 "--nesterov", "--weight-decay", "--schedule", "--warmup", "--label-smoothing",
                 "--device", "--data-dir", "--download", "--seed", "--out", "--resume",
                 "--eval-only", "--limit-train", "--limit-test", "--tf32", "--cuda-graph",
                 "--threads"):
        assert flag in text
    assert "one-cycle" in text


def test_finished_run_resumes_as_complete_and_eval_only_may_change_limit_test(
        data_dir, tmp_path, monkeypatch, capsys):
    out = str(tmp_path / "run")
    StopAfter.n = 1                 # Ctrl-C during the last step of the last epoch (2 steps)
    monkeypatch.setattr(train_cifar, "StopFlag", StopAfter)
    assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--limit-train", "64",
               "--out", out) == 0
    monkeypatch.undo()
    records(monkeypatch, 48, 100)
    text = capsys.readouterr().out
    assert "done: best test accuracy" in text and "stopped after" not in text
    acc = rows(out)[-1]["test_acc"]
    before = {n: pathlib.Path(out, n).read_bytes() for n in os.listdir(out)}
    d = ["--data-dir", data_dir, "--no-progress"]
    # resuming it (also with the default option spelled out) trains nothing and says so
    assert run("--resume", out, *d, "--model-option", "depth=8",
               "--model-option", "shortcut=A") == 0
    text = capsys.readouterr().out
    assert "this run is already complete (1 epochs)" in text, text
    assert f"final {100 * acc:.2f}%" in text
    monkeypatch.chdir(out)                                # a bare relative file name
    assert run("--resume", "checkpoint.npz", *d) == 0
    assert "already complete" in capsys.readouterr().out
    after = {n: pathlib.Path(out, n).read_bytes() for n in os.listdir(out)}
    assert after == before
    # --eval-only on more test images than the run used; training settings may differ
    assert run("--eval-only", "--resume", out, *d, "--limit-test", "100", "--epochs", "9",
               "--no-augment", "--lr", "0.5") == 0
    assert "(100 images, checkpoint" in capsys.readouterr().out
    # what differs is named as a flag
    err = _one_line_error(capsys, "--resume", out, *d, "--no-augment")
    assert "--no-augment differs from the checkpoint (--augment); drop it" in err
    err = _one_line_error(capsys, "--resume", out, *d, "--model-option", "depth=14")
    assert "--model-option depth=14 differs from the checkpoint (--model-option depth=8)" in err
    err = _one_line_error(capsys, "--eval-only", "--resume", out, *d, "--model", "resnet32")
    assert "--model resnet32 differs from the checkpoint (--model resnet20)" in err
    # a checkpoint with the right format tag but missing parts
    ck = minidl.load(os.path.join(out, "checkpoint.npz"))
    for drop in ("cutout", "rows", "rng"):
        bad = dict(ck, config=dict(ck["config"]))
        (bad["config"] if drop == "cutout" else bad).pop(drop)
        path = str(tmp_path / f"no_{drop}.npz")
        minidl.save(bad, path)
        err = _one_line_error(capsys, "--resume", path, *d)
        assert "is an incomplete or damaged train_cifar.py checkpoint" in err and drop in err
    # a diverged run (NaN losses) is still a run: its record loads
    nan = dict(ck, rows=[dict(r, train_loss=float("nan")) for r in ck["rows"]],
               partial=[float("nan")] + list(ck["partial"][1:]))
    minidl.save(nan, str(tmp_path / "diverged.npz"))
    assert run("--resume", str(tmp_path / "diverged.npz"), *d) == 0
    assert "already complete" in capsys.readouterr().out
    assert after == {n: pathlib.Path(out, n).read_bytes() for n in os.listdir(out)}


def test_out_must_be_a_folder_without_another_run(data_dir, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "checkpoint.npz").write_bytes(b"an earlier run")
    err = _one_line_error(capsys, *TINY, "--data-dir", data_dir, "--out", str(out))
    assert f"run folder {out} already holds a run (checkpoint.npz), which this run would " \
           "overwrite; continue a run there with --resume" in err
    (tmp_path / "file").write_bytes(b"x")
    err = _one_line_error(capsys, *TINY, "--data-dir", data_dir, "--out", str(tmp_path / "file"))
    assert "is a file, not a folder" in err
    err = _one_line_error(capsys, *TINY, "--data-dir", data_dir, "--limit-train", "32",
                          "--out", str(tmp_path / "file" / "sub"))
    assert "cannot write in the run folder" in err
    assert (out / "checkpoint.npz").read_bytes() == b"an earlier run"
    assert (tmp_path / "file").read_bytes() == b"x"
    mine = tmp_path / "mine"                  # no checkpoint, but files a run would replace
    mine.mkdir()
    (mine / "metrics.csv").write_bytes(b"my numbers")
    (mine / "notes.txt").write_bytes(b"mine")
    err = _one_line_error(capsys, *TINY, "--data-dir", data_dir, "--out", str(mine))
    assert "holds files a run writes (metrics.csv), which this run would overwrite" in err
    assert (mine / "metrics.csv").read_bytes() == b"my numbers"
    for flag in ("--out", "--resume"):
        err = _one_line_error(capsys, *TINY, "--data-dir", data_dir, flag, " ")
        assert f"{flag} is empty" in err


def test_default_run_folders_are_claimed_once(monkeypatch, tmp_path):
    """Two runs started in the same second get runs/<model>-<time> and ...-2 (each folder is
    created exclusively), and a folder the run cannot write in is refused before training."""
    monkeypatch.chdir(tmp_path)
    cfg = {"model": "resnet20"}
    first = train_cifar.make_run_folder(None, cfg)
    monkeypatch.setattr(train_cifar.time, "strftime", lambda fmt: os.path.basename(first)[9:])
    second = train_cifar.make_run_folder(None, cfg)
    assert second == first + "-2" and os.path.isdir(second)
    assert train_cifar.make_run_folder(None, cfg) == first + "-3"
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"x")
    with pytest.raises(train_cifar.Fail, match="cannot write in the run folder"):
        train_cifar.make_run_folder(str(blocker / "run"), cfg)


def test_model_options_that_do_not_fit_cifar_images_are_refused(data_dir, capsys):
    err = _one_line_error(capsys, *TINY, "--data-dir", data_dir, "--model-option",
                          "in_channels=1")
    assert "--model-option: resnet20 with these options does not take CIFAR's 3x32x32" in err


def test_metrics_json_is_strict_json_when_a_run_diverges(tmp_path):
    """A diverged run's NaN losses are written as null (bare NaN is not JSON: jq and
    JavaScript refuse the file)."""
    row = {k: 0.0 for k in train_cifar.FIELDS}
    row.update(epoch=1, train_loss=float("nan"), test_loss=float("inf"))
    train_cifar.write_metrics(str(tmp_path), [row], {"model": "m", "best_test_acc": 0.1})

    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    data = json.loads((tmp_path / "metrics.json").read_text(), parse_constant=refuse)
    assert data["epochs"][0]["train_loss"] is None and data["epochs"][0]["test_loss"] is None


@pytest.mark.parametrize("flag,value,message", [
    ("--label-smoothing", "1.5", "--label-smoothing must be a number in [0, 1], got 1.5"),
    ("--label-smoothing", "nan", "--label-smoothing must be a number in [0, 1], got nan"),
    ("--momentum", "nan", "--momentum must be a number in [0, 1), got nan"),
    ("--momentum", "1", "--momentum must be a number in [0, 1), got 1.0"),
    ("--weight-decay", "nan", "--weight-decay must be >= 0 and finite, got nan"),
    ("--weight-decay", "-1", "--weight-decay must be >= 0 and finite, got -1.0"),
    ("--lr", "inf", "--lr must be positive and finite, got inf"),
    ("--warmup", "nan", "--warmup must be a fraction in [0, 1), got nan"),
    ("--seed", "-1", "--seed must be a non-negative integer, got -1"),
    ("--cutout", "33", "--cutout must be an integer in [0, 32]"),
    ("--limit-test", "0", "--limit-test must be a positive integer, got 0"),
])
def test_numeric_flags_are_checked_before_anything_is_written(data_dir, tmp_path, capsys,
                                                              flag, value, message):
    out = tmp_path / "run"
    assert message in _one_line_error(capsys, *TINY, "--data-dir", data_dir, "--out", str(out),
                                      flag, value)
    assert not out.exists()


def test_interrupt_before_training_is_one_line(data_dir, tmp_path, monkeypatch, capsys):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(train_cifar, "load_data", interrupted)       # Ctrl-C while loading
    out = tmp_path / "run"
    assert run(*TINY, "--data-dir", data_dir, "--out", str(out)) == 130
    err = capsys.readouterr().err.strip()
    assert err == "train_cifar.py: interrupted; nothing more was saved"
    assert not out.exists()


def test_data_errors_name_the_flags(data_dir, tmp_path, capsys):
    import tarfile
    root = tmp_path / "tarred"
    root.mkdir()
    with tarfile.open(root / "cifar-10-binary.tar.gz", "w:gz") as t:     # not the official md5
        t.add(os.path.join(data_dir, "cifar-10-batches-bin"), arcname="cifar-10-batches-bin")
    err = _one_line_error(capsys, *TINY, "--data-dir", str(root))
    assert "md5 mismatch" in err and "pass --no-verify-md5 to load" in err
    assert "verify_md5" not in err
    evil = tmp_path / "evil" / "cifar-10-batches-py"
    evil.mkdir(parents=True)
    marker = tmp_path / "marker"
    (evil / "data_batch_1").write_bytes(b"cos\nsystem\n(S'touch " + str(marker).encode()
                                        + b"'\ntR.")
    err = _one_line_error(capsys, *TINY, "--data-dir", str(evil.parent))
    assert "refusing to unpickle 'os.system'" in err and not marker.exists()


def _lrs(schedule, total, warmup):
    cfg = dict(train_cifar.DEFAULTS, schedule=schedule, warmup=warmup)
    opt = train_cifar.build_optimizer(cfg, minidl.nn.Linear(2, 2).parameters())
    sched = train_cifar.build_scheduler(cfg, opt, total)
    out = []
    for t in range(total):
        out.append(opt.param_groups[0]["lr"])
        if t + 1 < total:
            sched.step()
    return out


@pytest.mark.parametrize("schedule", ["onecycle", "cosine", "multistep", "step", "constant"])
def test_every_schedule_fits_any_step_count(schedule):
    for total in range(1, 13):
        for warmup in (0.0, 0.15, 0.5, 0.9, 0.99):
            lrs = _lrs(schedule, total, warmup)
            assert all(0 < lr <= 0.1 * (1 + 1e-12) for lr in lrs), (total, warmup, lrs)


def test_step_decays_fall_where_help_says():
    def decays(lrs):
        return [t for t in range(1, len(lrs)) if lrs[t] < lrs[t - 1] * 0.5]
    assert decays(_lrs("multistep", 100, 0.15)) == [50, 75]        # 50% and 75% of the steps
    assert decays(_lrs("step", 100, 0.15)) == [30, 60, 90]         # every 30%
    assert decays(_lrs("multistep", 100, 0.0)) == [50, 75]
    assert decays(_lrs("multistep", 8, 0.15)) == [4, 6]
    lrs = _lrs("multistep", 100, 0.6)              # a decay inside the warm-up applies there
    assert lrs[49] == pytest.approx(0.1 * (0.1 + 0.9 * 49 / 60))
    assert lrs[50] == pytest.approx(0.01 * (0.1 + 0.9 * 50 / 60))
    assert lrs[60] == pytest.approx(0.01) and lrs[75] == pytest.approx(0.001)
    help_text = train_cifar.build_parser().format_help()
    assert "50% and 75% of the steps" in " ".join(help_text.split())


def test_one_step_runs_with_every_warmup(data_dir, tmp_path):
    for i, (schedule, warmup) in enumerate((("multistep", "0.15"), ("cosine", "0.9"))):
        assert run(*TINY, "--data-dir", data_dir, "--epochs", "1", "--limit-train", "32",
                   "--limit-test", "32", "--schedule", schedule, "--warmup", warmup,
                   "--out", str(tmp_path / f"run{i}")) == 0


_WRITER = """
import sys, numpy as np, minidl
path = sys.argv[1]
i = 0
while True:
    i += 1
    minidl.save({"i": i, "w": minidl.tensor(np.full((400, 1000), i, np.float32))}, path)
"""


def test_kill_during_checkpoint_write_leaves_a_loadable_file(tmp_path):
    path = str(tmp_path / "checkpoint.npz")
    minidl.save({"i": 0, "w": minidl.zeros(400, 1000)}, path)
    for delay in (0.6, 0.9, 1.3):
        proc = subprocess.Popen([sys.executable, "-c", _WRITER, path], cwd=ROOT)
        time.sleep(delay)
        proc.kill()                                   # SIGKILL: no cleanup runs
        proc.wait()
        ck = minidl.load(path)
        assert (ck["w"].numpy() == ck["i"]).all()


@pytest.mark.cuda
def test_cuda_run_checkpoints_resumes_and_evaluates(data_dir, tmp_path, monkeypatch, capsys):
    """The whole script on the GPU: train, Ctrl-C mid-epoch, resume from the checkpoint (saved
    from device arrays, loaded back onto the device), finish, evaluate; same metrics layout."""
    gpu = [a if a != "cpu" else "cuda" for a in TINY]
    part = str(tmp_path / "part")
    common = gpu + ["--data-dir", data_dir, "--epochs", "2", "--seed", "3"]
    StopAfter.n = 4
    monkeypatch.setattr(train_cifar, "StopFlag", StopAfter)
    assert run(*common, "--out", part) == 130
    monkeypatch.undo()
    records(monkeypatch, 48, 100)
    assert run("--resume", part, "--no-progress", "--data-dir", data_dir) == 0
    r = rows(part)
    assert [e["epoch"] for e in r] == [1, 2] and r[-1]["train_loss"] < r[0]["train_loss"]
    with open(os.path.join(part, "metrics.json")) as f:
        assert json.load(f)["summary"]["device"].startswith("cuda")
    ck = minidl.load(os.path.join(part, "checkpoint.npz"))
    assert ck["epoch"] == 2 and all(t.device == "cpu" for t in ck["model"].values())
    capsys.readouterr()
    assert run("--eval-only", "--resume", part, "--data-dir", data_dir, "--no-progress") == 0
    assert f"test accuracy {100 * r[-1]['test_acc']:.2f}%" in capsys.readouterr().out


@pytest.mark.cuda
def test_cuda_graph_run_matches_the_eager_run(data_dir, tmp_path, capsys):
    """--cuda-graph trains the same: the replayed steps (with the one-cycle learning rate
    changing every step) give the eager run's metrics; and what a graph cannot hold is a
    one-line error."""
    gpu = [a if a != "cpu" else "cuda" for a in TINY]
    common = gpu + ["--data-dir", data_dir, "--epochs", "1", "--seed", "5"]
    eager, graphed = str(tmp_path / "eager"), str(tmp_path / "graph")
    assert run(*common, "--out", eager) == 0
    assert run(*common, "--out", graphed, "--cuda-graph") == 0
    for a, b in zip(rows(eager), rows(graphed)):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["test_loss"] == pytest.approx(a["test_loss"], rel=1e-4)
        assert b["lr"] == a["lr"]
    with open(os.path.join(graphed, "metrics.json")) as f:
        assert json.load(f)["summary"]["cuda_graph"] is True
    capsys.readouterr()
    assert "--cuda-graph needs --optimizer sgd" in _one_line_error(
        capsys, *common, "--cuda-graph", "--optimizer", "adam")
    err = _one_line_error(capsys, "--model", "densenet40", "--model-option", "depth=7",
                          "--model-option", "growth_rate=2", "--model-option", "drop_rate=0.2",
                          *gpu[4:], "--data-dir", data_dir, "--epochs", "1", "--cuda-graph",
                          "--out", str(tmp_path / "drop"))
    assert err.startswith("train_cifar.py: error: --cuda-graph: drawing random numbers"), err


def test_old_step_schedule_checkpoint_is_refused_in_one_line(data_dir, tmp_path, monkeypatch,
                                                               capsys):
    """Checkpoints of multistep/step runs from before the decays counted the warm-up hold
    another scheduler's state: resuming says so instead of failing on its keys."""
    out = str(tmp_path / "run")
    StopAfter.n = 2
    monkeypatch.setattr(train_cifar, "StopFlag", StopAfter)
    run(*TINY, "--data-dir", data_dir, "--epochs", "2", "--schedule", "multistep",
        "--out", out)
    monkeypatch.undo()
    records(monkeypatch, 48, 100)
    capsys.readouterr()
    path = os.path.join(out, "checkpoint.npz")
    ck = minidl.load(path)
    ck["scheduler"] = {"_schedulers": [], "_milestones": [3], "last_epoch": 2}
    minidl.save(ck, path)
    err = _one_line_error(capsys, "--resume", out, "--data-dir", data_dir, "--no-progress")
    assert "was saved by an earlier train_cifar.py, whose --schedule multistep" in err
