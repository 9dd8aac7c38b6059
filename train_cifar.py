"""Train any registered net on CIFAR-10 (or CIFAR-100) with minidl: the main job.

    python train_cifar.py                          # ResNet-20, the default recipe, 40 epochs
    python train_cifar.py --model densenet_bc_100 --epochs 100 --device cuda
    python train_cifar.py --resume runs/resnet20-.../checkpoint.npz      # continue a run
    python train_cifar.py --eval-only --resume runs/.../checkpoint.npz   # test accuracy only

Default recipe: batch 128, SGD with Nesterov momentum 0.9, lr 0.1, weight decay 5e-4, one-cycle
learning rate (linear warm-up from lr/10 over the first 15% of steps, then linear decay to
lr/1000), random 32x32 crops of the 4-pixel zero-padded image and horizontal flips, per-channel
normalization with the CIFAR-10 mean and std.

Each epoch writes, atomically, ``checkpoint.npz`` (model, optimizer, scheduler, epoch, RNG
states: resumable, bit-identical on the CPU), ``metrics.csv``, ``metrics.json`` and, with
matplotlib installed, ``curves.png`` into the run folder (``--out``). Ctrl-C finishes the
current step, saves a checkpoint and exits; ``--resume`` continues from it exactly.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import sys
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
                limit_train=None, limit_test=None, model_option=[])
# Changing these would change what a resumed run computes, so they must match the checkpoint.
RUN_KEYS = list(DEFAULTS)
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
    a("--momentum", type=float, help="SGD/RMSprop momentum (default 0.9)")
    a("--nesterov", action=argparse.BooleanOptionalAction, help="Nesterov momentum for SGD "
      "(default on)")
    a("--weight-decay", type=float, help="L2 weight decay (AdamW: decoupled) (default 5e-4)")
    a("--schedule", choices=["onecycle", "cosine", "multistep", "step", "constant"],
      help="learning-rate schedule, stepped every batch (default onecycle); multistep divides "
      "by 10 at 50%% and 75%% of training, step every 30%%")
    a("--warmup", type=float, help="fraction of the steps spent warming up linearly from lr/10 "
      "(one-cycle's pct_start; a LinearLR warm-up for the others) (default 0.15)")
    a("--label-smoothing", type=float, help="cross-entropy label smoothing (default 0)")
    a("--cutout", type=int, help="side of a random square zeroed per training image (default 0)")
    a("--augment", action=argparse.BooleanOptionalAction, help="random crop + flip (default on)")
    a("--device", default="auto", help="cpu, cuda or cuda:N (default: cuda if available)")
    a("--data-dir", default="data", help="folder holding (or to receive) the CIFAR files")
    a("--download", action="store_true", help="download the official archive if missing")
    a("--no-verify-md5", action="store_true", help="load a copy whose bytes differ from the "
      "official release (e.g. a converted one) without its md5 check; says so when loading")
    a("--seed", type=int, help="seed of weights, data order and augmentation (default 0)")
    a("--out", help="run folder (default runs/<model>-<time>; with --resume, its folder)")
    a("--resume", metavar="CHECKPOINT", help="continue from a checkpoint.npz (or its run folder)")
    a("--eval-only", action="store_true", help="evaluate the --resume checkpoint and exit")
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


def resolve_config(args, checkpoint):
    """Run settings: explicit flags, else the checkpoint's (when resuming), else DEFAULTS."""
    saved = checkpoint["config"] if checkpoint else DEFAULTS
    cfg = {}
    for key in RUN_KEYS:
        given = getattr(args, key)
        if checkpoint and given is not None and given != saved[key]:
            raise Fail(f"--{key.replace('_', '-')} {given} differs from the checkpoint's "
                       f"{saved[key]!r}; drop it to continue the run, or start a new run")
        cfg[key] = saved[key] if given is None else given
    for key, low in (("epochs", 1), ("batch_size", 1)):
        if cfg[key] < low:
            raise Fail(f"--{key.replace('_', '-')} must be a positive integer, got {cfg[key]}")
    for key in ("lr",):
        if not cfg[key] > 0:
            raise Fail(f"--lr must be positive, got {cfg[key]}")
    for key in ("momentum", "weight_decay", "label_smoothing", "cutout"):
        if cfg[key] < 0:
            raise Fail(f"--{key.replace('_', '-')} must be >= 0, got {cfg[key]}")
    if not 0 <= cfg["warmup"] < 1:
        raise Fail(f"--warmup must be a fraction in [0, 1), got {cfg['warmup']}")
    for key in ("limit_train", "limit_test"):
        if cfg[key] is not None and cfg[key] < 1:
            raise Fail(f"--{key.replace('_', '-')} must be a positive integer, got {cfg[key]}")
    return cfg


def load_checkpoint(path):
    if os.path.isdir(path):
        path = os.path.join(path, "checkpoint.npz")
    try:
        ck = minidl.load(path)
    except (FileNotFoundError, ValueError) as exc:
        raise Fail(f"--resume: {exc}; pass the checkpoint.npz of an earlier run") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise Fail(f"--resume: {path} is not a train_cifar.py checkpoint")
    return ck, path


def load_data(cfg, args):
    cls = D.CIFAR10 if cfg["dataset"] == "cifar10" else D.CIFAR100
    try:
        train = cls(args.data_dir, train=True, download=args.download,
                    verify_md5=not args.no_verify_md5)
        test = cls(args.data_dir, train=False, verify_md5=not args.no_verify_md5)
    except (OSError, ValueError, RuntimeError) as exc:
        raise Fail(" ".join(str(exc).split())) from None
    subsets = []
    for ds, limit in ((train, cfg["limit_train"]), (test, cfg["limit_test"])):
        n = len(ds.targets) if limit is None else min(limit, len(ds.targets))
        subsets.append((ds.data[:n], ds.targets[:n]))
    mean, std = ((D.CIFAR10_MEAN, D.CIFAR10_STD) if cfg["dataset"] == "cifar10"
                 else (D.CIFAR100_MEAN, D.CIFAR100_STD))
    return subsets, len(train.classes), (mean, std)


def build_optimizer(cfg, params):
    o, lr, wd, mom = cfg["optimizer"], cfg["lr"], cfg["weight_decay"], cfg["momentum"]
    if o == "sgd":
        return minidl.optim.SGD(params, lr=lr, momentum=mom, weight_decay=wd,
                                nesterov=cfg["nesterov"] and mom > 0)
    if o == "rmsprop":
        return minidl.optim.RMSprop(params, lr=lr, momentum=mom, weight_decay=wd)
    cls = minidl.optim.Adam if o == "adam" else minidl.optim.AdamW
    return cls(params, lr=lr, weight_decay=wd)


def build_scheduler(cfg, opt, total):
    S = minidl.optim.lr_scheduler
    warm = int(round(cfg["warmup"] * total))
    if cfg["schedule"] == "onecycle":
        return S.OneCycleLR(opt, max_lr=cfg["lr"], total_steps=total,
                            pct_start=max(cfg["warmup"], 1.0 / total),
                            anneal_strategy="linear", div_factor=10.0, final_div_factor=100.0,
                            cycle_momentum=False)
    rest = total - warm
    main = {"cosine": lambda: S.CosineAnnealingLR(opt, T_max=rest),
            "multistep": lambda: S.MultiStepLR(opt, [int(rest * 0.5), int(rest * 0.75)]),
            "step": lambda: S.StepLR(opt, max(1, int(rest * 0.3))),
            "constant": lambda: S.StepLR(opt, total + 1, gamma=1.0)}[cfg["schedule"]]()
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


def evaluate(model, loader, progress):
    model.eval()
    meter = Meter()
    with minidl.no_grad():
        for x, y in tqdm(loader, desc="  eval", leave=False, disable=not progress):
            logits = model(x)
            meter.add(F.cross_entropy(logits, y), logits, y)
    model.train()
    loss_sum, correct, seen = meter.totals()
    return loss_sum / seen, correct / seen


FIELDS = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "epoch_seconds",
          "train_images_per_s"]


def write_metrics(out, rows, summary):
    def csv_text(f):
        text = io.StringIO()
        w = csv.DictWriter(text, FIELDS)
        w.writeheader()
        w.writerows(rows)
        f.write(text.getvalue().encode())
    atomic_write(os.path.join(out, "metrics.csv"), csv_text)
    atomic_write(os.path.join(out, "metrics.json"), lambda f: f.write(
        json.dumps({"epochs": rows, "summary": summary}, indent=2).encode()))
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

    def __enter__(self):
        self.prev = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.set:
            raise KeyboardInterrupt
        self.set = True
        print("\ninterrupted: saving a checkpoint after this step (Ctrl-C again to abort)",
              file=sys.stderr)

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.prev)
        return False


def run(argv=None):
    args = build_parser().parse_args(argv)
    checkpoint, ck_path = load_checkpoint(args.resume) if args.resume else (None, None)
    if args.eval_only and checkpoint is None:
        raise Fail("--eval-only needs --resume CHECKPOINT (the weights to evaluate)")
    cfg = resolve_config(args, checkpoint)
    try:
        device = minidl.backend.get_device(
            ("cuda" if minidl.is_cuda_available() else "cpu") if args.device == "auto"
            else args.device)
    except (ValueError, RuntimeError) as exc:
        raise Fail(f"--device: {exc}") from None
    if args.threads is not None:
        if args.threads < 1:
            raise Fail(f"--threads must be a positive integer, got {args.threads}")
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
    options = parse_options(cfg["model_option"])
    (train_set, test_set), num_classes, (mean, std) = load_data(cfg, args)
    minidl.manual_seed(cfg["seed"])
    try:
        model = nets.get_model(cfg["model"], num_classes=num_classes, **options)
    except (ValueError, TypeError) as exc:
        raise Fail(f"--model: {exc}") from None
    model.to(device)
    norm = D.Normalize(mean, std)
    aug = ([D.RandomCrop(32, padding=4), D.RandomHorizontalFlip()] if cfg["augment"] else [])
    train_tf = D.Compose(aug + [norm] + ([D.Cutout(cfg["cutout"])] if cfg["cutout"] else []))
    on_gpu = device.type != "cpu"       # keep the uint8 images there: batches gathered on it
    train_loader = D.DataLoader(train_set, cfg["batch_size"], shuffle=True, drop_last=True,
                                seed=cfg["seed"], device=device, transform=train_tf,
                                preload=on_gpu)
    test_loader = D.DataLoader(test_set, 256, device=device, transform=norm, preload=on_gpu)
    steps = len(train_loader)
    if steps == 0:
        raise Fail(f"--batch-size {cfg['batch_size']} is larger than the {len(train_set[1])} "
                   "training images: nothing to train on")
    opt = build_optimizer(cfg, model.parameters())
    sched = build_scheduler(cfg, opt, cfg["epochs"] * steps)
    state = {"epoch": 0, "step": 0, "partial": [0.0, 0, 0, 0.0], "rows": [], "wall": 0.0}
    if checkpoint is not None:
        try:
            model.load_state_dict(checkpoint["model"])
            opt.load_state_dict(checkpoint["optimizer"])
            sched.load_state_dict(checkpoint["scheduler"])
        except (RuntimeError, ValueError, TypeError, KeyError) as exc:
            raise Fail(f"--resume: {ck_path} does not fit this run: "
                       f"{' '.join(str(exc).split())}") from None
        minidl.set_rng_state(checkpoint["rng"])
        state.update({k: checkpoint[k] for k in state})
    progress = not args.no_progress
    name = f"{cfg['model']} ({model.num_parameters():,} parameters) on {device}"
    if args.eval_only:
        loss, acc = evaluate(model, test_loader, progress)
        print(f"{name}: test loss {loss:.4f}, test accuracy {100 * acc:.2f}% "
              f"({len(test_set[1])} images, checkpoint {ck_path})")
        return 0
    out = args.out or (os.path.dirname(ck_path) if ck_path else os.path.join(
        "runs", f"{cfg['model']}-{time.strftime('%Y%m%d-%H%M%S')}"))
    os.makedirs(out, exist_ok=True)
    print(f"training {name}, {cfg['epochs']} epochs x {steps} steps of {cfg['batch_size']}; "
          f"run folder {out}")
    return train(model, opt, sched, train_loader, test_loader, cfg, state, out, progress,
                 args.cuda_graph)


def save_checkpoint(out, model, opt, sched, cfg, state):
    minidl.save({"format": CHECKPOINT_FORMAT, "config": cfg, "model": model.state_dict(),
                 "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                 "rng": minidl.get_rng_state(), **state}, os.path.join(out, "checkpoint.npz"))


def train(model, opt, sched, train_loader, test_loader, cfg, state, out, progress,
          cuda_graph=False):
    steps = len(train_loader)
    summary = {"model": cfg["model"], "config": cfg,
               "device": str(next(iter(model.parameters())).device),
               "tf32": minidl.tf32_enabled(), "cuda_graph": cuda_graph,
               "cpu_threads": minidl.get_num_threads(),
               "host_memory_reuse": minidl.host_memory_reuse()}

    def train_step(x, y):
        logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg["label_smoothing"])
        opt.zero_grad()
        loss.backward()
        opt.step()
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
                try:
                    loss, logits = step_fn(x, y)
                except RuntimeError as exc:
                    if cuda_graph and "CUDA graph" in str(exc):
                        raise Fail(f"--cuda-graph: {' '.join(str(exc).split())}") from None
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
                    save_checkpoint(out, model, opt, sched, cfg, state)
                    bar.close()
                    print(f"saved {out}/checkpoint.npz at epoch {epoch + 1}, step "
                          f"{state['step']}; continue with --resume {out}")
                    return 130
            bar.close()
            loss_sum, correct, seen = meter.totals()
            seconds += time.perf_counter() - t0
            test_loss, test_acc = evaluate(model, test_loader, progress)
            state["rows"].append({
                "epoch": epoch + 1, "lr": lr,
                "train_loss": loss_sum / seen, "train_acc": correct / seen,
                "test_loss": test_loss, "test_acc": test_acc, "epoch_seconds": seconds,
                "train_images_per_s": seen / seconds})
            state.update(epoch=epoch + 1, step=0, partial=[0.0, 0, 0, 0.0],
                         wall=state["wall"] + time.perf_counter() - t0)
            rows = state["rows"]
            best = max(rows, key=lambda r: r["test_acc"])
            summary.update(best_test_acc=best["test_acc"], best_epoch=best["epoch"],
                           final_test_acc=rows[-1]["test_acc"], wall_seconds=state["wall"],
                           train_images_per_s=float(np.mean([r["train_images_per_s"]
                                                             for r in rows])))
            save_checkpoint(out, model, opt, sched, cfg, state)
            write_metrics(out, rows, summary)
            print(f"epoch {epoch + 1}/{cfg['epochs']}: train loss {loss_sum / seen:.4f} acc "
                  f"{100 * correct / seen:.2f}% | test loss {test_loss:.4f} acc "
                  f"{100 * test_acc:.2f}% | {seconds:.1f} s, {seen / seconds:.0f} img/s",
                  flush=True)
            if stop.set:
                print(f"stopped after epoch {epoch + 1}; continue with --resume {out}")
                return 130
    print(f"done: best test accuracy {100 * summary['best_test_acc']:.2f}% (epoch "
          f"{summary['best_epoch']}), final {100 * summary['final_test_acc']:.2f}%, wall time "
          f"{summary['wall_seconds']:.0f} s, {summary['train_images_per_s']:.0f} images/s")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """Library warnings (e.g. the skipped md5 check) as one plain line, not a source excerpt."""
    print(f"train_cifar.py: warning: {message}", file=sys.stderr)


def main(argv=None):
    with warnings.catch_warnings():
        warnings.simplefilter("default")
        warnings.showwarning = _show_warning
        try:
            return run(argv)
        except Fail as exc:
            print(f"train_cifar.py: error: {exc}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
