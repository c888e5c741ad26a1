"""Compile the CUDA kernels ahead of time (also on a machine without a GPU, given nvcc).

    python -m longconv_models.build [--arch "8.0;9.0a"] [--verbose]
"""

from __future__ import annotations

import argparse
import time

from . import extension


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default=None, help='semicolon-separated, e.g. "8.0;9.0a" (default: visible GPUs)')
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)
    archs = args.arch.replace(",", ";").split(";") if args.arch else None
    t0 = time.time()
    module = extension.build(archs, verbose=args.verbose)
    names = sorted(n for n in dir(module) if not n.startswith("_"))
    print(f"built {module.__name__} in {time.time() - t0:.0f}s: {', '.join(names)}")


if __name__ == "__main__":
    main()
