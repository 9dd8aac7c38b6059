"""Print every registered model with its trainable parameter count: ``python -m nets``."""
from __future__ import annotations

import sys

import nets


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    num_classes = int(argv[0]) if argv else 10
    print(f"{'model':<18} {'parameters':>12}  ({num_classes} classes)")
    for name in nets.list_models():
        n = nets.get_model(name, num_classes=num_classes).num_parameters()
        print(f"{name:<18} {n:>12,}  {n / 1e6:6.2f}M")


if __name__ == "__main__":
    main()
