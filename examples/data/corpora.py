"""The two training corpora of the embedded checkpoints, built by documented procedures.

* ``synthetic_genome``: DNA with structure a model can learn, generated from a fixed seed:
  protein-coding "genes" (ATG, codons drawn from a skewed codon-usage table, a stop codon),
  AT-rich intergenic DNA from a 3rd-order Markov chain, copies of a few "transposons" with 3%
  point mutations, and short tandem repeats. No download needed.
* ``python_docs_corpus``: text that ships with Python itself: the docstrings of the standard
  library modules (``ast``-extracted, in sorted module order), ASCII only.

    python examples/data/corpora.py dna out.txt --length 2000000
    python examples/data/corpora.py text out.txt
"""

from __future__ import annotations

import argparse
import ast
import random
import sys
import sysconfig
from pathlib import Path

BASES = "ACGT"
STOPS = ("TAA", "TAG", "TGA")
CODONS = [a + b + c for a in BASES for b in BASES for c in BASES if a + b + c not in STOPS]


def synthetic_genome(length: int = 2_000_000, seed: int = 0) -> str:
    rng = random.Random(seed)
    usage = [rng.random() ** 3 for _ in CODONS]  # a skewed codon-usage table
    # 3rd-order Markov chain for intergenic DNA, biased towards A/T
    context = {a + b + c: [rng.random() * w for w in (1.6, 1.0, 1.0, 1.6)] for a in BASES for b in BASES for c in BASES}
    transposons = ["".join(rng.choice(BASES) for _ in range(rng.randint(300, 900))) for _ in range(4)]
    out: list[str] = []
    n = 0
    while n < length:
        kind = rng.random()
        if kind < 0.45:  # gene
            piece = "ATG" + "".join(rng.choices(CODONS, usage, k=rng.randint(80, 400))) + rng.choice(STOPS)
        elif kind < 0.85:  # intergenic
            s = list(rng.choice(CODONS))
            for _ in range(rng.randint(100, 1500)):
                s.append(rng.choices(BASES, context["".join(s[-3:])])[0])
            piece = "".join(s)
        elif kind < 0.95:  # a mutated transposon copy
            piece = "".join(rng.choice(BASES) if rng.random() < 0.03 else b for b in rng.choice(transposons))
        else:  # short tandem repeat
            unit = "".join(rng.choice(BASES) for _ in range(rng.randint(2, 6)))
            piece = unit * rng.randint(5, 40)
        out.append(piece)
        n += len(piece)
    return "".join(out)[:length]


def python_docs_corpus() -> str:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs = []
    for path in sorted(stdlib.glob("*.py")):
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc) > 40:
                    docs.append(doc.encode("ascii", "ignore").decode())
    return "\n\n".join(docs)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("kind", choices=["dna", "text"])
    ap.add_argument("out")
    ap.add_argument("--length", type=int, default=2_000_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    text = synthetic_genome(args.length, args.seed) if args.kind == "dna" else python_docs_corpus()
    Path(args.out).write_text(text)
    print(f"wrote {len(text):,} characters to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
