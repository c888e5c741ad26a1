"""Fine-tuning data through `datasets`: CSV / TSV / JSON Lines / FASTA (gzipped too), memory-mapped
or streamed, tokenized in batched map; clear errors for missing columns and unknown formats."""

import gzip
import json

import pytest

datasets = pytest.importorskip("datasets")

from longconv_models.data import label_names, load_table, read_fasta, tokenize
from longconv_models.models import HyenaDNATokenizerFast

ROWS = [("ACGTacgt", "a"), ("GGGNNT", "b"), ("TTTT", "a")]


@pytest.fixture()
def files(tmp_path):
    (tmp_path / "d.csv").write_text("sequence,label\n" + "\n".join(f"{s},{lab}" for s, lab in ROWS))
    (tmp_path / "d.tsv").write_text("sequence\tlabel\n" + "\n".join(f"{s}\t{lab}" for s, lab in ROWS))
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps({"sequence": s, "label": lab}) for s, lab in ROWS))
    fasta = "".join(f">r{i} label={lab} source=x\n{s[:3]}\n{s[3:]}\n" for i, (s, lab) in enumerate(ROWS))
    (tmp_path / "d.fa").write_text(fasta)
    with gzip.open(tmp_path / "d.fa.gz", "wt") as f:
        f.write(fasta)
    return tmp_path


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.jsonl", "d.fa", "d.fa.gz"])
@pytest.mark.parametrize("streaming", [False, True])
def test_every_format_gives_the_same_rows(files, name, streaming):
    table = load_table(files / name, streaming=streaming, required=("sequence", "label"))
    assert isinstance(table, datasets.IterableDataset if streaming else datasets.Dataset)
    assert [(r["sequence"], str(r["label"])) for r in table] == ROWS
    tok = HyenaDNATokenizerFast()
    encoded = list(tokenize(table, tok, "sequence", max_length=5, labels=["a", "b"]))
    assert [r["labels"] for r in encoded] == [0, 1, 0]
    assert [r["input_ids"] for r in encoded] == [tok(s, truncation=True, max_length=5)["input_ids"] for s, _ in ROWS]
    assert set(encoded[0]) == {"input_ids", "labels"}


def test_fasta_headers_and_errors(files, tmp_path):
    assert next(read_fasta(str(files / "d.fa"))) == {"id": "r0", "sequence": "ACGTacgt", "label": "a", "source": "x"}
    assert label_names(load_table(files / "d.fa")) == ["a", "b"]
    with pytest.raises(ValueError, match=r"missing column\(s\) \['score'\].*key=value"):
        load_table(files / "d.fa", required=("sequence", "score"))
    with pytest.raises(ValueError, match="unknown data format '.txt'"):
        (tmp_path / "x.txt").write_text("ACGT")
        load_table(tmp_path / "x.txt")
    (tmp_path / "bad.fa").write_text("ACGT\n>r1\nAC\n")
    with pytest.raises(Exception, match="before the first '>' header"):
        load_table(tmp_path / "bad.fa")
    with pytest.raises(ValueError, match="label 'b' is not one of"):
        list(tokenize(load_table(files / "d.csv"), HyenaDNATokenizerFast(), "sequence", None, labels=["a"]))
    with pytest.raises(ValueError, match="pass them"):
        label_names(load_table(files / "d.csv", streaming=True))


def test_edited_fasta_is_read_again(files):
    first = load_table(files / "d.fa")
    (files / "d.fa").write_text(">z label=q\nAAAA\n")
    assert [r["id"] for r in load_table(files / "d.fa")] == ["z"] and len(first) == 3
