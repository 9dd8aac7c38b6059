"""Print every registered model with its trainable parameter count: ``python -m nets``
(``--macs``: also its multiply-accumulates per 32x32 image, from ``minidl.summary``)."""
from __future__ import annotations

import argparse
import warnings

import minidl
import nets


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m nets", description=__doc__.split(":")[0])
    ap.add_argument("num_classes", nargs="?", type=int, default=10,
                    help="classes of the output layer (default 10)")
    ap.add_argument("--macs", action="store_true", help="also count multiply-accumulates per "
                    "32x32 image (one forward pass of each model; takes a while)")
    args = ap.parse_args(argv)
    if args.num_classes < 1:
        ap.error(f"num_classes must be a positive integer, got {args.num_classes}")
    print(f"{'model':<18} {'parameters':>12}" + (f"  {'':7} {'MACs/image':>14}" if args.macs
                                                  else "") + f"  ({args.num_classes} classes)")
    for name in nets.list_models():
        model = nets.get_model(name, num_classes=args.num_classes)
        n = model.num_parameters()
        line = f"{name:<18} {n:>12,}  {n / 1e6:6.2f}M"
        if args.macs:
            with warnings.catch_warnings():     # untrained and in eval mode, the deepest nets
                warnings.simplefilter("ignore", RuntimeWarning)   # overflow: MACs don't care
                macs = minidl.summary(model, (1, 3, 32, 32), depth=0).total_macs
            line += f" {macs:>14,}  {macs / 1e6:8.1f}M"
        print(line)


if __name__ == "__main__":
    main()
