"""Train any registered net on CIFAR-10 (or CIFAR-100) with minidl: the main job.

    python train_cifar.py                          # ResNet-20, the default recipe, 40 epochs
    python train_cifar.py --model densenet_bc_100 --epochs 100 --device cuda
    python train_cifar.py --resume runs/resnet20-.../checkpoint.npz      # continue a run
    python train_cifar.py --eval-only --resume runs/.../checkpoint.npz   # test accuracy only

Default recipe: batch 128, SGD with Nesterov momentum 0.9, lr 0.1, weight decay 5e-4, one-cycle
learning rate (linear warm-up from lr/10 over the first 15% of steps, then linear decay to
lr/1000), random 32x32 crops of the 4-pixel zero-padded image and horizontal flips, per-channel
normalization with the CIFAR-10 mean and std.

Each epoch writes, atomically, ``checkpoint.npz`` (model, optimizer, scheduler, the averaged
weights with --ema, epoch, RNG states: resumable, bit-identical on the CPU), ``metrics.csv``,
``metrics.json`` and, with matplotlib installed, ``curves.png`` into the run folder
(``--out``). Ctrl-C finishes the current step, saves a checkpoint and exits; ``--resume``
continues from it exactly.
"""
from __future__ import annotations

import argparse
import bisect
import csv
import io
import itertools
import json
import math
import os
import pickle
import signal
import sys
import tempfile
import time
import warnings

import numpy as np
from tqdm import tqdm

import minidl
import minidl.functional as F
import nets
from minidl import data as D
from minidl.serialization import atomic_write

DEFAULTS = dict(model="resnet20", dataset="cifar10", epochs=40, batch_size=128, optimizer="sgd",
                lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="onecycle",
                warmup=0.15, label_smoothing=0.0, cutout=0, augment=True, seed=0,
                limit_train=None, limit_test=None, model_option=[], mixup=0.0, cutmix=0.0,
                ema=0.0, grad_clip=0.0)
# Changing these would change what a resumed run computes, so they must match the checkpoint.
RUN_KEYS = list(DEFAULTS)
# Settings added after the first checkpoint format: a checkpoint without them ran with them off
LATER_KEYS = ("mixup", "cutmix", "ema", "grad_clip")
CHECKPOINT_FORMAT = "minidl-train-cifar-1"


class Fail(Exception):
    """A bad command line or input: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise Fail(f"{message} (see --help)")


def build_parser():
    p = Parser(description=__doc__.split("\n\n")[0],
               formatter_class=argparse.RawDescriptionHelpFormatter,
               epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    a = p.add_argument
    a("--model", help=f"a registered net (default {DEFAULTS['model']}): "
      + ", ".join(nets.list_models()))
    a("--model-option", action="append", metavar="KEY=VALUE",
      help="constructor option of the net, repeatable (e.g. shortcut=B, depth=8, drop_rate=0.2)")
    a("--dataset", choices=["cifar10", "cifar100"], help="default cifar10")
    a("--epochs", type=int, help="training epochs (default 40)")
    a("--batch-size", type=int, help="images per step (default 128)")
    a("--optimizer", choices=["sgd", "adam", "adamw", "rmsprop"], help="default sgd")
    a("--lr", type=float, help="peak learning rate (default 0.1)")
    a("--momentum", type=float, help="SGD/RMSprop momentum, in [0, 1) (default 0.9)")
    a("--nesterov", action=argparse.BooleanOptionalAction, help="Nesterov momentum for SGD "
      "(default on)")
    a("--weight-decay", type=float, help="L2 weight decay (AdamW: decoupled) (default 5e-4)")
    a("--schedule", choices=["onecycle", "cosine", "multistep", "step", "constant"],
      help="learning-rate schedule, stepped every batch (default onecycle); multistep divides "
      "by 10 at 50%% and 75%% of the steps, step at 30%%, 60%% and 90%% (of the whole run, "
      "warm-up included)")
    a("--warmup", type=float, help="fraction of the steps spent warming up linearly from lr/10 "
      "(one-cycle's pct_start; a linear warm-up for the others, which always leaves at least "
      "one step after it) (default 0.15)")
    a("--label-smoothing", type=float, help="cross-entropy label smoothing, in [0, 1] "
      "(default 0)")
    a("--cutout", type=int, help="side of a random square zeroed per training image, 0..32 "
      "(default 0)")
    a("--augment", action=argparse.BooleanOptionalAction, help="random crop + flip (default on)")
    a("--mixup", type=float, metavar="ALPHA", help="mix each training batch with itself "
      "rolled by one image, weight ~ Beta(ALPHA, ALPHA), labels mixed alike (Zhang et al.; "
      "0.2-1 is usual; default 0: off)")
    a("--cutmix", type=float, metavar="ALPHA", help="paste a box of the rolled batch into "
      "each training batch, area ~ Beta(ALPHA, ALPHA), labels mixed by area (Yun et al.; 1 "
      "is usual; default 0: off); with --mixup too, each batch takes one of the two at random")
    a("--ema", type=float, metavar="DECAY", help="also keep an exponential moving average of "
      "the weights and BN statistics, updated every step (avg = DECAY * avg + (1 - DECAY) * "
      "weights; 0.999 is usual; default 0: off), and evaluate it every epoch")
    a("--grad-clip", type=float, metavar="NORM", help="scale the gradients down to a total "
      "2-norm of at most NORM before each step (default 0: off)")
    a("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda if available)")
    a("--data-dir", default="data", help="folder holding (or to receive) the CIFAR files")
    a("--download", action="store_true", help="download the official archive if missing")
    a("--no-verify-md5", action="store_true", help="load a copy whose bytes differ from the "
      "official release (e.g. a converted one) without its md5 check; says so when loading")
    a("--seed", type=int, help="seed of weights, data order and augmentation (default 0)")
    a("--out", help="run folder (default runs/<model>-<time>; with --resume, its folder); "
      "one holding another run's checkpoint is refused")
    a("--resume", metavar="CHECKPOINT", help="continue from a checkpoint.npz (or its run folder)")
    a("--eval-only", action="store_true", help="evaluate the --resume checkpoint and exit "
      "(--limit-test may differ from the run's)")
    a("--limit-train", type=int, metavar="N", help="train on the first N images (smoke runs)")
    a("--limit-test", type=int, metavar="N", help="evaluate on the first N images")
    a("--tf32", action="store_true", help="on a GPU, let float32 matrix multiplies use TF32 "
      "tensor cores (several times faster GEMMs, ~1e-3 relative error per product; off by "
      "default)")
    a("--cuda-graph", action="store_true", help="on a GPU, capture the training step once as "
      "a CUDA graph and replay it every step (much less Python and launch overhead per step; "
      "needs --device cuda and --optimizer sgd, and a model without dropout)")
    a("--threads", type=int, metavar="N", help="CPU threads of minidl's kernels (default: as "
      f"many as NumPy's BLAS uses, here {minidl.get_num_threads()}; see minidl.set_num_threads)")
    a("--no-progress", action="store_true", help="no progress bars (the summary lines remain)")
    return p


def parse_options(items):
    """['depth=8', 'shortcut=B'] -> {'depth': 8, 'shortcut': 'B'} (numbers and bools parsed)."""
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise Fail(f"--model-option expects KEY=VALUE, got {item!r}")
        try:
            value = json.loads(text.lower() if text.lower() in ("true", "false") else text)
        except ValueError:
            value = text
        out[key.replace("-", "_")] = value
    return out


def flag_text(key, value):
    """A setting as the command line spells it: --no-augment, --model-option a=1 ..."""
    name = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return name if value else "--no-" + name[2:]
    if value is None or value == []:
        return f"no {name}"
    if key == "model_option":
        return " ".join(f"{name} {item}" for item in value)
    return f"{name} {value}"


def model_settings(model, items):
    """The options ``items`` give ``model``, over its defaults (for comparing option lists)."""
    try:
        defaults = nets.model_options(model)
    except ValueError as exc:
        raise Fail(f"--model: {exc}") from None
    return {**defaults, **parse_options(items)}


def _is_int(v):
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _is_number(v):
    """An int or float, NaN and inf included (a diverged run's losses are still its record)."""
    return _is_int(v) or isinstance(v, (float, np.floating))


def _is_real(v):
    return _is_number(v) and math.isfinite(v)


# (test, what it must be): every run setting, checked before anything is loaded or written
CHECKS = {
    "model": (lambda v: isinstance(v, str), "a model name"),
    "dataset": (lambda v: v in ("cifar10", "cifar100"), "cifar10 or cifar100"),
    "epochs": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "batch_size": (lambda v: _is_int(v) and v >= 1, "a positive integer"),
    "optimizer": (lambda v: v in ("sgd", "adam", "adamw", "rmsprop"),
                  "one of sgd, adam, adamw, rmsprop"),
    "lr": (lambda v: _is_real(v) and v > 0, "positive and finite"),
    "momentum": (lambda v: _is_real(v) and 0 <= v < 1, "a number in [0, 1)"),
    "nesterov": (lambda v: isinstance(v, bool), "on or off"),
    "weight_decay": (lambda v: _is_real(v) and v >= 0, ">= 0 and finite"),
    "schedule": (lambda v: v in ("onecycle", "cosine", "multistep", "step", "constant"),
                 "one of onecycle, cosine, multistep, step, constant"),
    "warmup": (lambda v: _is_real(v) and 0 <= v < 1, "a fraction in [0, 1)"),
    "label_smoothing": (lambda v: _is_real(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "cutout": (lambda v: _is_int(v) and 0 <= v <= 32,
               "an integer in [0, 32] (the side of a square inside the 32x32 image)"),
    "augment": (lambda v: isinstance(v, bool), "on or off"),
    "seed": (lambda v: _is_int(v) and v >= 0, "a non-negative integer"),
    "limit_train": (lambda v: v is None or (_is_int(v) and v >= 1), "a positive integer"),
    "limit_test": (lambda v: v is None or (_is_int(v) and v >= 1), "a positive integer"),
    "model_option": (lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
                     "a list of KEY=VALUE"),
    "mixup": (lambda v: _is_real(v) and v >= 0, ">= 0 and finite (0: off)"),
    "cutmix": (lambda v: _is_real(v) and v >= 0, ">= 0 and finite (0: off)"),
    "ema": (lambda v: _is_real(v) and 0 <= v < 1, "a decay in [0, 1) (0: off)"),
    "grad_clip": (lambda v: _is_real(v) and v >= 0, ">= 0 and finite (0: off)"),
}
# What an --eval-only run needs of the checkpoint's settings: the net (its other settings
# only shaped the training, and may differ, e.g. a larger --limit-test)
NET_KEYS = ("model", "dataset", "model_option")


def resolve_config(args, checkpoint, ck_path=None):
    """Run settings: explicit flags, else the checkpoint's (when resuming), else DEFAULTS."""
    saved = checkpoint["config"] if checkpoint else DEFAULTS
    cfg, origin = {}, {}
    for key in RUN_KEYS:
        given = getattr(args, key)
        cfg[key] = saved[key] if given is None else given
        origin[key] = ck_path if checkpoint and given is None else None
    for key in RUN_KEYS:
        test, what = CHECKS[key]
        if not test(cfg[key]):
            where = f" (in the checkpoint {origin[key]})" if origin[key] else ""
            raise Fail(f"--{key.replace('_', '-')} must be {what}, got {cfg[key]!r}{where}")
    if not checkpoint:
        return cfg
    for key in NET_KEYS if args.eval_only else RUN_KEYS:
        given = getattr(args, key)
        if given is None:
            continue
        if key == "model_option":
            same = (model_settings(cfg["model"], given)
                    == model_settings(cfg["model"], saved[key]))
        else:
            same = given == saved[key]
        if not same:
            todo = ("to evaluate the checkpoint's net" if args.eval_only
                    else "to continue the run, or start a new run without --resume")
            raise Fail(f"{flag_text(key, given)} differs from the checkpoint "
                       f"({flag_text(key, saved[key])}); drop it {todo}")
        cfg[key] = saved[key]
    return cfg


# What a checkpoint must hold besides "format" and "config", and what each must be
_STATE = {"model": dict, "optimizer": dict, "scheduler": dict, "rng": dict, "epoch": int,
          "step": int, "partial": list, "rows": list, "wall": (int, float)}


def load_checkpoint(path):
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.npz")
    hint = "pass the checkpoint.npz of an earlier run (or its run folder)"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        raise Fail(f"--resume: no checkpoint at {path}; {hint}") from None
    except OSError as exc:
        raise Fail(f"--resume: cannot read {path} ({exc.strerror or exc}); {hint}") from None
    if not head.startswith(b"PK"):
        raise Fail(f"--resume: {path} is not a readable minidl checkpoint (not a zip archive, "
                   f"as .npz files are); {hint}")
    try:
        ck = minidl.load(path)
    except (FileNotFoundError, ValueError) as exc:
        raise Fail(f"--resume: {_cli_words(exc)}; {hint}") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise Fail(f"--resume: {path} is not a train_cifar.py checkpoint; {hint}")
    config = ck.get("config")
    problems = [] if isinstance(config, dict) else ["config"]
    for key in LATER_KEYS if isinstance(config, dict) else ():
        config.setdefault(key, DEFAULTS[key])
    problems += [f"config[{k!r}]" for k in RUN_KEYS if isinstance(config, dict)
                 and k not in config]
    for key, kind in _STATE.items():
        value = ck.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) or (
                kind is int and value < 0):
            problems.append(key)
    if not problems:
        rows = ck["rows"]
        if len(ck["partial"]) != 4 or not all(_is_number(v) for v in ck["partial"]):
            problems.append("partial")
        ema = _is_real(config["ema"]) and config["ema"] > 0
        fields = FIELDS + EMA_FIELDS if ema else FIELDS
        if len(rows) != ck["epoch"] or not all(
                isinstance(r, dict) and all(_is_number(r.get(k)) for k in fields) for r in rows):
            problems.append("rows")
        if ema and not isinstance(ck.get("ema"), dict):
            problems.append("ema")
    if problems:
        raise Fail(f"--resume: {path} is an incomplete or damaged train_cifar.py checkpoint "
                   f"(bad or missing: {', '.join(problems)}); {hint}")
    return ck, path


def _cli_words(text):
    """A library message on one line, with its Python-API advice spelled as this script's
    flags."""
    return (" ".join(str(text).split()).replace("download=True", "--download")
            .replace("verify_md5=False", "--no-verify-md5"))


def load_data(cfg, args, train=True):
    """((train images, labels) or None, (test images, labels)), (mean, std), class names."""
    cls = D.CIFAR10 if cfg["dataset"] == "cifar10" else D.CIFAR100
    splits, download = [], args.download       # the first split loaded fetches the archive
    try:
        for split, limit in ((True, cfg["limit_train"]), (False, cfg["limit_test"])):
            if split and not train:
                splits.append(None)
                continue
            ds = cls(args.data_dir, train=split, download=download,
                     verify_md5=not args.no_verify_md5)
            download = False
            n = len(ds.targets) if limit is None else min(limit, len(ds.targets))
            splits.append((ds.data[:n], ds.targets[:n]))
            names = list(ds.classes)
    except (OSError, ValueError, RuntimeError, pickle.UnpicklingError) as exc:
        raise Fail(_cli_words(exc)) from None
    mean, std = ((D.CIFAR10_MEAN, D.CIFAR10_STD) if cfg["dataset"] == "cifar10"
                 else (D.CIFAR100_MEAN, D.CIFAR100_STD))
    return splits, (mean, std), names


def build_optimizer(cfg, params):
    o, lr, wd, mom = cfg["optimizer"], cfg["lr"], cfg["weight_decay"], cfg["momentum"]
    if o == "sgd":
        return minidl.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd,
                                nesterov=cfg["nesterov"] and mom > 0)
    if o == "rmsprop":
        return minidl.optim.RMSprop(params, lr=lr, momentum=mom, weight_decay=wd)
    cls = minidl.optim.Adam if o == "adam" else minidl.optim.AdamW
    return cls(params, lr=lr, weight_decay=wd)


def decay_steps(schedule, total):
    """The steps (0-based, of the whole run, warm-up included) from which multistep and step
    divide the lr by 10 once more: the first steps at or past 50% and 75% of the ``total``
    steps (multistep), or 30%, 60% and 90% (step); none that the run does not reach."""
    if schedule == "multistep":
        points = [-(-total // 2), -(-3 * total // 4)]
    elif schedule == "step":
        points = [-(-3 * k * total // 10) for k in (1, 2, 3)]
    else:
        points = []
    return [d for d in points if d < total]


class WarmupDecayLR(minidl.optim.lr_scheduler.LRScheduler):
    """``lr(t) = lr * w(t) * 0.1 ** (number of decays <= t)``, with ``w`` the linear warm-up
    from 1/10 to 1 over the first ``warm`` steps (then 1) and ``decays`` steps of the whole run,
    so a decay lands where it is asked to even inside the warm-up."""

    def __init__(self, optimizer, warm, decays):
        self.warm, self.decays = int(warm), sorted(int(d) for d in decays)
        super().__init__(optimizer)

    def get_lr(self):
        t = self.last_epoch
        factor = 0.1 + 0.9 * t / self.warm if t < self.warm else 1.0
        factor *= 0.1 ** bisect.bisect_right(self.decays, t)
        return [base * factor for base in self.base_lrs]


def build_scheduler(cfg, opt, total):
    """The lr schedule over ``total`` (>= 1) steps; every schedule fits any step count: the
    warm-up is capped to leave at least one step after it."""
    S = minidl.optim.lr_scheduler
    warm = min(int(round(cfg["warmup"] * total)), total - 1)
    if cfg["schedule"] == "onecycle":
        return S.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=total,
                            pct_start=max(cfg["warmup"], 1.0 / total),
                            anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0,
                            cycle_momentum=False)
    if cfg["schedule"] in ("multistep", "step"):
        return WarmupDecayLR(opt, warm, decay_steps(cfg["schedule"], total))
    rest = total - warm
    main = (S.CosineAnnealingLR(opt, T_max=rest) if cfg["schedule"] == "cosine"
            else S.StepLR(opt, total + 1, gamma=1.0))
    if warm == 0:
        return main
    return S.SequentialLR(opt, [S.LinearLR(opt, 0.1, 1.0, warm), main], [warm])


class Meter:
    """Sums of loss and correct predictions, kept on the training device (float64) so a step
    never waits for the GPU; ``totals()`` reads them back (one sync)."""

    def __init__(self, loss_sum=0.0, correct=0, seen=0):
        self.loss, self.correct, self.seen = loss_sum, correct, seen

    def add(self, loss, logits, y):
        """loss: the batch's mean loss; logits (B, C); y (B,) labels."""
        n = len(y)
        self.loss = self.loss + loss.data.astype("float64") * float(n)
        self.correct = self.correct + (logits.data.argmax(1) == y.data).sum()
        self.seen += n

    def totals(self):
        host = minidl.backend.as_numpy        # also raises any failed deferred input check
        return float(host(self.loss)), int(host(self.correct)), self.seen


def evaluate(model, loader, progress, classes=None):
    """Test loss and accuracy of ``model`` over ``loader``; with ``classes`` (how many) also
    the confusion matrix: counts[true class, predicted class], summed on the device."""
    model.eval()
    meter = Meter()
    counts = None
    with minidl.no_grad():
        for x, y in tqdm(loader, desc="  eval", leave=False, disable=not progress):
            logits = model(x)
            meter.add(F.cross_entropy(logits, y), logits, y)
            if classes is not None:
                xp = minidl.backend.xp_of(y.data)
                pairs = y.data.astype(np.int64) * classes + logits.data.argmax(1)
                batch = xp.bincount(pairs, minlength=classes * classes)
                counts = batch if counts is None else counts + batch
    model.train()
    loss_sum, correct, seen = meter.totals()
    if classes is None:
        return loss_sum / seen, correct / seen
    counts = minidl.backend.as_numpy(counts).reshape(classes, classes)
    return loss_sum / seen, correct / seen, counts


def per_class(counts, names):
    """{class name: test accuracy} from a confusion matrix (None for a class with no test
    image)."""
    seen = counts.sum(axis=1)
    return {n: (float(counts[i, i] / seen[i]) if seen[i] else None)
            for i, n in enumerate(names)}


def confusion_text(counts, names, top=3):
    """Two lines: the accuracy of each class (the worst ten, when there are more than 20),
    and the ``top`` most frequent confusions (a true class taken for another)."""
    acc = per_class(counts, names)
    shown, head = [n for n in names if acc[n] is not None], "per class"
    if len(shown) > 20:
        shown, head = sorted(shown, key=lambda n: acc[n])[:10], "worst classes"
    first = f"{head}: " + ", ".join(f"{n} {100 * acc[n]:.1f}%" for n in shown)
    off = counts.astype(np.float64)
    np.fill_diagonal(off, 0)
    order = np.argsort(-off, axis=None, kind="stable")[:top]
    seen = counts.sum(axis=1)
    pairs = [f"{names[t]} as {names[p]} {100 * off[t, p] / seen[t]:.1f}% of {names[t]}"
             for t, p in zip(*np.unravel_index(order, off.shape)) if off[t, p] > 0]
    return first + "\nmost confused: " + (", ".join(pairs) if pairs else "none")


FIELDS = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds",
          "train_images_per_s"]
EMA_FIELDS = ["ema_test_loss", "ema_test_acc"]        # with --ema: the averaged weights' test


def _with_ema(rows):
    """Whether the epochs ``rows`` were evaluated with EMA weights too (--ema)."""
    return bool(rows) and EMA_FIELDS[1] in rows[0]


def _finite(obj):
    """``obj`` with NaN and infinities as None (null): strict JSON, which a diverged run's
    losses would otherwise break for jq and JavaScript readers."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_metrics(out, rows, summary):
    def csv_text(f):
        text = io.StringIO()
        w = csv.DictWriter(text, FIELDS + (EMA_FIELDS if _with_ema(rows) else []))
        w.writeheader()
        w.writerows(rows)
        f.write(text.getvalue().encode())
    atomic_write(os.path.join(out, "metrics.csv"), csv_text)
    atomic_write(os.path.join(out, "metrics.json"), lambda f: f.write(json.dumps(
        _finite({"epochs": rows, "summary": summary}), indent=2, allow_nan=False).encode()))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return
    ep = [r["epoch"] for r in rows]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4))
    a1.plot(ep, [r["train_loss"] for r in rows], label="train", marker=".")
    a1.plot(ep, [r["test_loss"] for r in rows], label="test", marker=".")
    a2.plot(ep, [100 * r["train_acc"] for r in rows], label="train", marker=".")
    a2.plot(ep, [100 * r["test_acc"] for r in rows], label="test", marker=".")
    if _with_ema(rows):
        a1.plot(ep, [r["ema_test_loss"] for r in rows], label="test (EMA)", marker=".")
        a2.plot(ep, [100 * r["ema_test_acc"] for r in rows], label="test (EMA)", marker=".")
    for ax, name in ((a1, "loss"), (a2, "accuracy (%)")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))   # epochs are whole numbers
        ax.set_ylabel(name)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(summary["model"])
    fig.tight_layout()
    atomic_write(os.path.join(out, "curves.png"), lambda f: fig.savefig(f, format="png"))
    plt.close(fig)


class StopFlag:
    """First Ctrl-C asks the loop to stop after the current step; a second one stops at once."""

    def __init__(self):
        self.set = False

    def __enter__(self):                   # SIGTERM (a job scheduler's stop) as Ctrl-C
        self.prev = {sig: signal.signal(sig, self._handle)
                     for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        print("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to abort)",
              file=sys.stderr)

    def __exit__(self, *exc):
        for sig, prev in self.prev.items():
            signal.signal(sig, prev)
        return False


RUN_FILES = ("checkpoint.npz", "metrics.csv", "metrics.json", "curves.png")


def run_folder(args, cfg, ck_path):
    """The run folder (created later, by ``make_run_folder``): refused when it is a file, or
    holds files a run writes (another run's, or the user's) that are not this run's own (a
    resumed run's folder is its checkpoint's). Without --out: None, a fresh name is claimed
    when the folder is made."""
    if args.out is not None and not args.out.strip():
        raise Fail("--out is empty; give a folder for the run, or leave --out out")
    if args.out:
        out = args.out
    elif ck_path:
        out = os.path.dirname(ck_path) or os.curdir
    else:
        return None
    if os.path.exists(out) and not os.path.isdir(out):
        raise Fail(f"--out {out} is a file, not a folder; choose another --out")
    own = os.path.join(out, "checkpoint.npz")
    resuming_here = bool(ck_path) and os.path.isfile(own) and os.path.samefile(own, ck_path)
    taken = [f for f in RUN_FILES if os.path.lexists(os.path.join(out, f))]
    if taken and not resuming_here:
        what = ("already holds a run" if "checkpoint.npz" in taken
                else "holds files a run writes")
        raise Fail(f"run folder {out} {what} ({', '.join(taken)}), which this run would "
                   f"overwrite; continue a run there with --resume {out}, or choose another "
                   "--out")
    return out


def make_run_folder(out, cfg):
    """Create the run folder and check that files can be written there; ``out`` None: a new
    folder runs/<model>-<time>[-n] claimed with an exclusive create, so two runs started in
    the same second never share one."""
    try:
        if out is None:
            base = os.path.join("runs", f"{cfg['model']}-{time.strftime('%Y%m%d-%H%M%S')}")
            os.makedirs("runs", exist_ok=True)
            for n in itertools.count(1):
                out = base if n == 1 else f"{base}-{n}"
                try:
                    os.mkdir(out)
                    break
                except FileExistsError:
                    continue
        else:
            os.makedirs(out, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as exc:
        raise Fail(f"--out: cannot write in the run folder {out} ({exc.strerror or exc}); "
                   "choose another --out") from None
    return out


def summarize(rows, wall):
    best = max(rows, key=lambda r: r["test_acc"])
    out = dict(best_test_acc=best["test_acc"], best_epoch=best["epoch"],
               final_test_acc=rows[-1]["test_acc"], wall_seconds=wall,
               train_images_per_s=float(np.mean([r["train_images_per_s"] for r in rows])))
    if _with_ema(rows):
        best = max(rows, key=lambda r: r["ema_test_acc"])
        out.update(best_ema_test_acc=best["ema_test_acc"], best_ema_epoch=best["epoch"],
                   final_ema_test_acc=rows[-1]["ema_test_acc"])
    return out


def result_text(summary):
    ema = ("" if "best_ema_test_acc" not in summary else
           f"; EMA weights: best {100 * summary['best_ema_test_acc']:.2f}% (epoch "
           f"{summary['best_ema_epoch']}), final {100 * summary['final_ema_test_acc']:.2f}%")
    return (f"best test accuracy {100 * summary['best_test_acc']:.2f}% (epoch "
            f"{summary['best_epoch']}), final {100 * summary['final_test_acc']:.2f}%{ema}, wall "
            f"time {summary['wall_seconds']:.0f} s, {summary['train_images_per_s']:.0f} "
            "images/s")


def run(argv=None):
    args = build_parser().parse_args(argv)
    if args.threads is not None and args.threads < 1:
        raise Fail(f"--threads must be a positive integer, got {args.threads}")
    if args.resume is not None and not args.resume.strip():
        raise Fail("--resume is empty; give a checkpoint file or run folder, or leave it out")
    checkpoint, ck_path = load_checkpoint(args.resume) if args.resume else (None, None)
    if args.eval_only and checkpoint is None:
        raise Fail("--eval-only needs --resume CHECKPOINT (the weights to evaluate)")
    cfg = resolve_config(args, checkpoint, ck_path)
    model_settings(cfg["model"], [])                    # a known net, or a one-line error
    options = parse_options(cfg["model_option"])
    try:
        device = minidl.backend.get_device(
            ("cuda" if minidl.is_cuda_available() else "cpu") if args.device == "auto"
            else args.device)
    except (ValueError, RuntimeError) as exc:
        raise Fail(f"--device: {exc}") from None
    if args.threads is not None:
        minidl.set_num_threads(args.threads)
    if args.tf32:
        if device.type != "cuda":
            raise Fail(f"--tf32 is a GPU matrix-multiply mode; it needs --device cuda, got "
                       f"{device}")
        minidl.set_tf32(True)
    if args.cuda_graph and device.type != "cuda":
        raise Fail(f"--cuda-graph captures GPU work; it needs --device cuda, got {device}")
    if args.cuda_graph and cfg["optimizer"] != "sgd":
        raise Fail(f"--cuda-graph needs --optimizer sgd (the others count steps on the host, "
                   f"which a replayed graph cannot), got {cfg['optimizer']}")
    out = None if args.eval_only else run_folder(args, cfg, ck_path)
    if checkpoint is not None and not args.eval_only and checkpoint["epoch"] >= cfg["epochs"]:
        summary = summarize(checkpoint["rows"], checkpoint["wall"])
        print(f"{ck_path}: this run is already complete ({cfg['epochs']} epochs): "
              f"{result_text(summary)}; nothing to train (--eval-only evaluates it; a new run "
              "needs another --out and no --resume)")
        return 0
    minidl.manual_seed(cfg["seed"])
    try:
        model = nets.get_model(cfg["model"], num_classes=10 if cfg["dataset"] == "cifar10"
                               else 100, **options)
    except (ValueError, TypeError) as exc:
        raise Fail(f"--model: {exc}") from None
    model.to(device)
    try:                           # options the net accepts but CIFAR's images do not fit
        with minidl.no_grad():
            model.eval()(minidl.zeros(1, 3, 32, 32, device=device))
    except (ValueError, TypeError) as exc:
        raise Fail(f"--model-option: {cfg['model']} with these options does not take "
                   f"CIFAR's 3x32x32 images: {_cli_words(exc)}") from None
    model.train()
    (train_set, test_set), (mean, std), names = load_data(cfg, args,
                                                          train=not args.eval_only)
    norm = D.Normalize(mean, std)
    on_gpu = device.type != "cpu"       # keep the uint8 images there: batches gathered on it
    test_loader = D.DataLoader(test_set, 256, device=device, transform=norm, preload=on_gpu)
    progress = not args.no_progress
    name = f"{cfg['model']} ({model.num_parameters():,} parameters) on {device}"

    def does_not_fit(exc):
        return Fail(f"--resume: {ck_path} does not fit this run: {_cli_words(exc)}")

    if args.eval_only:
        try:
            model.load_state_dict(checkpoint["model"])
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            raise does_not_fit(exc) from None
        loss, acc, counts = evaluate(model, test_loader, progress, len(names))
        print(f"{name}: test loss {loss:.4f}, test accuracy {100 * acc:.2f}% "
              f"({len(test_set[1])} images, checkpoint {ck_path})")
        print(confusion_text(counts, names))
        if isinstance(checkpoint.get("ema"), dict):
            ema = build_ema(cfg, model)
            try:
                ema.load_state_dict(checkpoint["ema"])
            except (RuntimeError, ValueError, TypeError, KeyError) as exc:
                raise does_not_fit(exc) from None
            loss, acc, counts = evaluate(ema.module, test_loader, progress, len(names))
            print(f"{name}, EMA weights (--ema {cfg['ema']}): test loss {loss:.4f}, test "
                  f"accuracy {100 * acc:.2f}%")
            print(confusion_text(counts, names))
        return 0
    aug = ([D.RandomCrop(32, padding=4), D.RandomHorizontalFlip()] if cfg["augment"] else [])
    train_tf = D.Compose(aug + [norm] + ([D.Cutout(cfg["cutout"])] if cfg["cutout"] else []))
    train_loader = D.DataLoader(train_set, cfg["batch_size"], shuffle=True, drop_last=True,
                                seed=cfg["seed"], device=device, transform=train_tf,
                                preload=on_gpu)
    steps = len(train_loader)
    if steps == 0:
        raise Fail(f"--batch-size {cfg['batch_size']} is larger than the {len(train_set[1])} "
                   "training images: nothing to train on")
    opt = build_optimizer(cfg, model.parameters())
    sched = build_scheduler(cfg, opt, cfg["epochs"] * steps)
    ema = build_ema(cfg, model) if cfg["ema"] else None
    state = {"epoch": 0, "step": 0, "partial": [0.0, 0, 0, 0.0], "rows": [], "wall": 0.0}
    if checkpoint is not None:
        if checkpoint["step"] >= steps:
            raise does_not_fit(f"it stopped at step {checkpoint['step']} of an epoch, and the "
                               f"data here gives {steps} steps per epoch")
        old = checkpoint["scheduler"]
        if cfg["schedule"] in ("multistep", "step") and (
                "_schedulers" in old or "_milestones" in old or "step_size" in old):
            raise Fail(f"--resume: {ck_path} was saved by an earlier train_cifar.py, whose "
                       f"--schedule {cfg['schedule']} placed its decays after the warm-up; "
                       "finish that run with the version that started it, or start a new run")
        try:
            model.load_state_dict(checkpoint["model"])
            opt.load_state_dict(checkpoint["optimizer"])
            sched.load_state_dict(old)
            if ema is not None:
                ema.load_state_dict(checkpoint["ema"])
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            raise does_not_fit(exc) from None
        try:
            minidl.set_rng_state(checkpoint["rng"])
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            raise Fail(f"--resume: {ck_path} has an unreadable random-number state "
                       f"({_cli_words(exc)})") from None
        state.update({k: checkpoint[k] for k in state})
    out = make_run_folder(out, cfg)
    print(f"training {name}, {cfg['epochs']} epochs x {steps} steps of {cfg['batch_size']}; "
          f"run folder {out}")
    return train(model, opt, sched, train_loader, test_loader, cfg, state, out, progress,
                 args.cuda_graph, ema, names)


def build_ema(cfg, model):
    """The exponential moving average of ``model``'s weights and buffers (BN statistics)."""
    swa = minidl.optim.swa_utils
    return swa.AveragedModel(model, multi_avg_fn=swa.get_ema_multi_avg_fn(cfg["ema"]),
                             use_buffers=True)


def build_mixer(cfg):
    """``mix(images, labels, rng) -> (images, class probabilities)`` for --mixup / --cutmix,
    or None when both are off."""
    classes = 10 if cfg["dataset"] == "cifar10" else 100
    if cfg["mixup"] and cfg["cutmix"]:
        return D.MixUpOrCutMix(cfg["mixup"], cfg["cutmix"], num_classes=classes)
    if cfg["mixup"] or cfg["cutmix"]:
        return (D.MixUp(cfg["mixup"], num_classes=classes) if cfg["mixup"]
                else D.CutMix(cfg["cutmix"], num_classes=classes))
    return None


def save_checkpoint(out, model, opt, sched, cfg, state, ema=None):
    extra = {} if ema is None else {"ema": ema.state_dict()}
    tree = {"format": CHECKPOINT_FORMAT, "config": cfg, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "rng": minidl.get_rng_state(), **extra, **state}
    writing(out, lambda: minidl.save(tree, os.path.join(out, "checkpoint.npz")))


def writing(out, write):
    """Run ``write`` (files go in atomically); a disk that filled up, or a folder that
    stopped being writable, during the run is one line, not a traceback."""
    try:
        write()
    except OSError as exc:
        raise Fail(f"cannot write in the run folder {out} ({exc.strerror or exc}); the files "
                   "saved there before are intact: free some space (or fix the folder) and "
                   f"continue with --resume {out}") from None


def train(model, opt, sched, train_loader, test_loader, cfg, state, out, progress,
          cuda_graph=False, ema=None, names=None):
    steps = len(train_loader)
    mix = build_mixer(cfg)
    summary = {"model": cfg["model"], "config": cfg,
               "device": str(next(iter(model.parameters())).device),
               "tf32": minidl.tf32_enabled(), "cuda_graph": cuda_graph,
               "cpu_threads": minidl.get_num_threads(),
               "host_memory_reuse": minidl.host_memory_reuse()}

    def train_step(x, y):
        """One SGD step on images x and targets y (labels, or class probabilities when
        mixing)."""
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg["label_smoothing"])
        opt.zero_grad()
        loss.backward()
        if cfg["grad_clip"]:
            minidl.nn.utils.clip_grad_norm_(model.parameters(), cfg["grad_clip"])
        opt.step()
        if ema is not None:         # (in the CUDA graph too: the first update is a warm-up's)
            ema.update_parameters(model)
        return loss, logits

    step_fn = minidl.cuda_graph.GraphedStep(train_step) if cuda_graph else train_step
    with StopFlag() as stop:
        while state["epoch"] < cfg["epochs"]:
            epoch, first = state["epoch"], state["step"]
            *partial, seconds = state["partial"]
            meter = Meter(*partial)
            t0 = time.perf_counter()
            bar = tqdm(train_loader.batches(epoch, first), total=steps, initial=first,
                       desc=f"epoch {epoch + 1}/{cfg['epochs']}", disable=not progress)
            for x, y in bar:
                target = y
                if mix is not None:         # seeded by (seed, epoch, step): resumes exactly
                    x, target = mix(x, y, train_loader.batch_rng(epoch, state["step"], 2))
                try:
                    loss, logits = step_fn(x, target)
                except RuntimeError as exc:
                    if cuda_graph and "CUDA graph" in str(exc):
                        raise Fail(f"--cuda-graph: {_cli_words(exc)}") from None
                    raise
                lr = opt.param_groups[0]["lr"]          # the rate this step used
                if epoch * steps + state["step"] + 1 < cfg["epochs"] * steps:
                    sched.step()            # (none after the last step: nothing uses it, and
                    #                          one-cycle's linear decay would overshoot below 0)
                meter.add(loss, logits, y)
                state["step"] += 1
                if progress and (state["step"] % 10 == 0 or state["step"] == steps):
                    loss_sum, correct, seen = meter.totals()      # a sync every 10 steps only
                    rate = seen / (seconds + time.perf_counter() - t0)
                    bar.set_postfix(loss=f"{loss_sum / seen:.3f}",
                                    acc=f"{100 * correct / seen:.1f}", img_s=f"{rate:.0f}")
                if stop.set and state["step"] < steps:
                    elapsed = time.perf_counter() - t0
                    state["partial"] = [*meter.totals(), seconds + elapsed]
                    state["wall"] += elapsed
                    save_checkpoint(out, model, opt, sched, cfg, state, ema)
                    bar.close()
                    print(f"saved {out}/checkpoint.npz at epoch {epoch + 1}, step "
                          f"{state['step']}; continue with --resume {out}")
                    return 130
            bar.close()
            loss_sum, correct, seen = meter.totals()
            seconds += time.perf_counter() - t0
            test_loss, test_acc, *counts = evaluate(model, test_loader, progress,
                                                    None if names is None else len(names))
            row = {"epoch": epoch + 1, "lr": lr,
                   "train_loss": loss_sum / seen, "train_acc": correct / seen,
                   "test_loss": test_loss, "test_acc": test_acc, "epoch_seconds": seconds,
                   "train_images_per_s": seen / seconds}
            ema_text = ""
            if ema is not None:
                row["ema_test_loss"], row["ema_test_acc"] = evaluate(ema.module, test_loader,
                                                                     progress)
                ema_text = f", EMA {100 * row['ema_test_acc']:.2f}%"
            state["rows"].append(row)
            state.update(epoch=epoch + 1, step=0, partial=[0.0, 0, 0, 0.0],
                         wall=state["wall"] + time.perf_counter() - t0)
            summary.update(summarize(state["rows"], state["wall"]))
            if counts:
                summary.update(final_test_acc_per_class=per_class(counts[0], names),
                               final_confusion=dict(classes=names, counts=counts[0].tolist()))
            save_checkpoint(out, model, opt, sched, cfg, state, ema)
            writing(out, lambda: write_metrics(out, state["rows"], summary))
            print(f"epoch {epoch + 1}/{cfg['epochs']}: train loss {loss_sum / seen:.4f} acc "
                  f"{100 * correct / seen:.2f}% | test loss {test_loss:.4f} acc "
                  f"{100 * test_acc:.2f}%{ema_text} | {seconds:.1f} s, "
                  f"{seen / seconds:.0f} img/s",
                  flush=True)
            if stop.set and state["epoch"] < cfg["epochs"]:   # (after the last: just done)
                print(f"stopped after epoch {epoch + 1}; continue with --resume {out}")
                return 130
    print(f"done: {result_text(summarize(state['rows'], state['wall']))}")
    if counts:                                    # (the last epoch's: the loop ran one)
        print(confusion_text(counts[0], names))
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Library warnings (e.g. the skipped md5 check) as one plain line, not a source excerpt."""
    print(f"train_cifar.py: warning: {_cli_words(message)}", file=sys.stderr)


def main(argv=None):
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            return run(argv)
        except Fail as exc:
            print(f"train_cifar.py: error: {exc}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("\ntrain_cifar.py: interrupted; nothing more was saved", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
