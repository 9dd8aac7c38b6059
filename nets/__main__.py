"""Print every registered model with its trainable parameter count: ``python -m nets``."""
from __future__ import annotations

import argparse

import nets


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m nets", description=__doc__.split(":")[0])
    ap.add_argument("num_classes", nargs="?", type=int, default=10,
                    help="classes of the output layer (default 10)")
    args = ap.parse_args(argv)
    if args.num_classes < 1:
        ap.error(f"num_classes must be a positive integer, got {args.num_classes}")
    print(f"{'model':<18} {'parameters':>12}  ({args.num_classes} classes)")
    for name in nets.list_models():
        n = nets.get_model(name, num_classes=args.num_classes).num_parameters()
        print(f"{name:<18} {n:>12,}  {n / 1e6:6.2f}M")


if __name__ == "__main__":
    main()
