"""Fine-tuning data through Hugging Face ``datasets``: CSV, JSON / JSON Lines and FASTA files as
memory-mapped Arrow tables (or streamed, for files larger than memory), tokenized with batched
``map``.

FASTA records are read line by line (``.gz`` too); a header ``>name key=value ...`` gives the
columns ``id``, ``sequence`` and one per ``key`` (e.g. ``label=promoter``).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import datasets

FASTA = (".fa", ".fasta", ".fna", ".ffn", ".faa")
JSON = (".json", ".jsonl")
CSV = (".csv", ".tsv")


def _kind(path: Path) -> str:
    suffixes = [s.lower() for s in path.suffixes]
    last = suffixes[-2] if suffixes and suffixes[-1] == ".gz" and len(suffixes) > 1 else (suffixes or [""])[-1]
    for kind, known in (("fasta", FASTA), ("json", JSON), ("csv", CSV)):
        if last in known:
            return kind
    raise ValueError(f"{path}: unknown data format {last or '(no suffix)'!r}; expected CSV ({', '.join(CSV)}), "
                     f"JSON ({', '.join(JSON)}) or FASTA ({', '.join(FASTA)}), optionally .gz")


def read_fasta(path: str, stamp=None) -> Iterator[dict]:
    """Records of a FASTA file, one at a time (``stamp`` only keys the ``datasets`` cache)."""
    opener = gzip.open if str(path).endswith(".gz") else open
    header, chunks = None, []
    with opener(path, "rt") as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                if header is not None:
                    yield _record(header, chunks, path)
                header, chunks = line, []
            elif line:
                if header is None:
                    raise ValueError(f"{path}: sequence data before the first '>' header")
                chunks.append(line)
    if header is not None:
        yield _record(header, chunks, path)


def _record(header: str, chunks: list[str], path) -> dict:
    name, *fields = header[1:].split()
    rec = {"id": name, "sequence": "".join(chunks)}
    for f in fields:
        if "=" in f:
            k, v = f.split("=", 1)
            rec[k] = v
    return rec


def load_table(path: str | os.PathLike, streaming: bool = False, required: tuple[str, ...] = ()):
    """One file as a ``datasets.Dataset`` (memory-mapped; built once, then cached) or, with
    ``streaming``, a ``datasets.IterableDataset`` read as it is consumed. ``required`` columns
    are checked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    kind = _kind(path)
    if kind == "fasta":
        st = path.stat()  # in the cache key: an edited file is read again
        kwargs = {"path": str(path), "stamp": (st.st_mtime_ns, st.st_size)}
        cls = datasets.IterableDataset if streaming else datasets.Dataset
        try:
            table = cls.from_generator(read_fasta, gen_kwargs=kwargs)
        except datasets.exceptions.DatasetGenerationError as exc:  # surface the file's problem itself
            raise (exc.__cause__ if isinstance(exc.__cause__, ValueError) else exc) from None
    else:
        extra = {"delimiter": "\t"} if kind == "csv" and path.suffixes[0].lower() == ".tsv" else {}
        table = datasets.load_dataset(kind, data_files=str(path), split="train", streaming=streaming, **extra)
    columns = table.column_names if table.column_names is not None else list(next(iter(table)).keys())
    missing = [c for c in required if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {missing}; found {columns}"
                         + (" (FASTA headers carry them as key=value, e.g. '>seq1 label=promoter')"
                            if kind == "fasta" else ""))
    return table


def label_names(table, column: str = "label") -> list[str]:
    """The sorted label names of a (non-streamed) table."""
    if isinstance(table, datasets.IterableDataset):
        raise ValueError("label names of a streamed dataset are not known in advance: pass them (--labels a,b,...)")
    return sorted({str(v) for v in table.unique(column)})


def tokenize(table, tokenizer, column: str, max_length: int | None, labels: list[str] | None = None,
             label_column: str = "label", batch_size: int = 1000):
    """Token ids (truncated to ``max_length``) in ``input_ids`` and, with ``labels``, label ids in
    ``labels``; every other column removed."""
    index = {name: i for i, name in enumerate(labels or [])}

    def encode(batch):
        out = {"input_ids": tokenizer(batch[column], truncation=max_length is not None, max_length=max_length)["input_ids"]}
        if labels is not None:
            try:
                out["labels"] = [index[str(v)] for v in batch[label_column]]
            except KeyError as exc:
                raise ValueError(f"label {exc.args[0]!r} is not one of {labels}") from None
        return out

    columns = table.column_names if table.column_names is not None else list(next(iter(table)).keys())
    return table.map(encode, batched=True, batch_size=batch_size, remove_columns=columns)
