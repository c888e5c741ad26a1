"""Convert published Hyena / HyenaDNA / M2-BERT checkpoints to this library's Hugging Face format.

    python -m longconv_models.convert SRC OUT [--family auto|hyenadna|hyena|m2_bert] [--config CONFIG]

SRC is a checkpoint directory or file: ``*.safetensors`` (e.g. the ``LongSafari/*-seqlen-hf``
repos) or a PyTorch pickle (``*.bin``, ``*.pt``, ``*.ckpt``: raw HyenaDNA Lightning checkpoints,
the safari ``hyena_small_150b_tok.ckpt``, M2-BERT ``pytorch_model.bin``). Pickles are read with
``torch.load(weights_only=True)`` or, for training checkpoints that pickle more than tensors
(OmegaConf hyper-parameters, optimizer state), with ``longconv_models.restricted_pickle``, which
rebuilds tensors and plain containers and never imports or calls anything the file names.

The config comes from ``--config`` (JSON or YAML), else ``config.json`` next to the weights,
else the hyper-parameters inside a Lightning checkpoint; flat transformers configs and the
original nested configs (safari / hyena-dna ``model`` + ``layer``) are understood, and a key that
is neither mapped nor known to be training-only is an error. Without any config, Hyena and
HyenaDNA sizes are read from the tensor shapes (per-source defaults for the rest, see
``model_cards/``); M2-BERT needs its config. Every tensor is checked against the model the
config describes: unknown, missing, mis-shaped, non-floating or non-finite weights are errors.
The per-family rules live next to each model: ``models/<family>/convert_<family>.py``.
OUT receives ``config.json``, ``model.safetensors`` and, for HyenaDNA, the tokenizer files.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file

from . import restricted_pickle
from .models._conversion import CheckpointError, strip_wrappers
from .models.hyena import convert_hyena
from .models.hyenadna import convert_hyenadna
from .models.m2_bert import convert_m2_bert

__all__ = ["CheckpointError", "Checkpoint", "convert", "read_checkpoint", "main"]

FAMILIES = {"hyenadna": convert_hyenadna, "hyena": convert_hyena, "m2_bert": convert_m2_bert}
# Buffers with defined values that may be absent from a checkpoint (recomputed by the model).
REGENERABLE = re.compile(r"(pos_emb\.t|modulation\.deltas|embeddings\.position_ids)$")
# Training-time entries of the original implementations (dropped).
IGNORED = re.compile(r"torchmetrics|(^|\.)(train|val|test)_metrics")
WRAPPERS = ("state_dict", "model", "module")  # Lightning / composer


@dataclass
class Checkpoint:
    state: dict[str, torch.Tensor]
    folder: Path
    hyper_parameters: dict | None = None  # from a Lightning checkpoint
    unresolved: set[str] = field(default_factory=set)  # globals the restricted unpickler left inert


def _unreadable(f: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(f"cannot read {f.name}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]} "
                           "(truncated or not a PyTorch checkpoint?)")


def _read_pickle(f: Path) -> tuple[object, set[str]]:
    try:
        return torch.load(str(f), map_location="cpu", weights_only=True), set()
    except pickle.UnpicklingError:
        pass  # more than tensors: the restricted unpickler below
    except Exception as exc:
        raise _unreadable(f, exc) from exc
    try:
        return restricted_pickle.torch_load(str(f))
    except Exception as exc:
        raise _unreadable(f, exc) from exc


def read_checkpoint(path: Path) -> Checkpoint:
    """Tensors of a checkpoint file or directory (and a Lightning checkpoint's hyper-parameters)."""
    if path.is_dir():
        files = sorted(path.glob("*.safetensors")) or [
            p for ext in ("*.bin", "*.pt", "*.ckpt", "*.pth") for p in sorted(path.glob(ext))
        ]
        if not files:
            raise CheckpointError(f"no *.safetensors / *.bin / *.pt / *.ckpt weights in {path}")
        folder = path
    elif path.is_file():
        files, folder = [path], path.parent
    else:
        raise CheckpointError(f"{path} does not exist")
    ckpt = Checkpoint({}, folder)
    for f in files:
        if f.suffix == ".safetensors":
            try:
                part = load_file(str(f))
            except Exception as exc:  # SafetensorError: truncated header or data
                raise CheckpointError(f"cannot read {f.name}: {str(exc)[:200]} (truncated or corrupt file?)") from exc
        else:
            part, unresolved = _read_pickle(f)
            ckpt.unresolved |= unresolved
            if isinstance(part, dict) and part.get("hyper_parameters") is not None:
                hp = restricted_pickle.to_plain(part["hyper_parameters"])
                ckpt.hyper_parameters = hp if isinstance(hp, dict) else None
            for key in WRAPPERS:
                if isinstance(part, dict) and isinstance(part.get(key), dict):
                    part = part[key]
        if not isinstance(part, dict) or not all(isinstance(v, torch.Tensor) for v in part.values()):
            bad = ({k: type(v).__name__ for k, v in part.items() if not isinstance(v, torch.Tensor)}
                   if isinstance(part, dict) else type(part).__name__)
            raise CheckpointError(f"{f.name} is not a tensor state dict (non-tensor entries: {str(bad)[:200]})")
        ckpt.state.update({k: v for k, v in part.items() if not IGNORED.search(k)})
    return ckpt


def read_config(path: Path) -> dict:
    try:
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml  # a dependency of transformers

            raw = yaml.safe_load(text)
        else:
            raw = json.loads(text)
    except Exception as exc:
        raise CheckpointError(f"cannot read the config {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise CheckpointError(f"{path} does not hold a mapping")
    return raw


def detect_family(state: dict[str, torch.Tensor], config: dict | None) -> str:
    model_type = (config or {}).get("model_type", "")
    if model_type in FAMILIES:
        return model_type
    if model_type == "bert":
        return "m2_bert"
    keys = " ".join(strip_wrappers(k) for k in state)
    if "encoder.layer." in keys and "attention.filter_fn" in keys:
        return "m2_bert"
    if "backbone.layers." in keys and "mixer.filter_fn" in keys:
        vocab = next((v.shape[0] for k, v in state.items() if k.endswith("word_embeddings.weight")), 0)
        return "hyenadna" if vocab <= 16 else "hyena"
    raise CheckpointError("cannot tell the model family from the keys; pass --family")


def check_against(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Validate names, shapes, dtypes and values; return the full state dict to load."""
    expected = model.state_dict()
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(k for k in set(expected) - set(state) if not REGENERABLE.search(k))
    if unexpected or missing:
        raise CheckpointError(
            f"checkpoint does not match {type(model).__name__}"
            + (f"; unexpected keys ({len(unexpected)}): {unexpected[:8]}" if unexpected else "")
            + (f"; missing keys ({len(missing)}): {missing[:8]}" if missing else "")
        )
    for k, v in state.items():
        want = expected[k]
        if tuple(v.shape) != tuple(want.shape):
            raise CheckpointError(f"{k}: checkpoint shape {tuple(v.shape)} != model shape {tuple(want.shape)}")
        if want.is_floating_point() != v.is_floating_point() or v.is_complex():
            raise CheckpointError(f"{k}: checkpoint dtype {v.dtype}, the model holds {want.dtype} (corrupt or "
                                  "not this architecture)")
        if v.is_floating_point() and not torch.isfinite(v).all():
            raise CheckpointError(f"{k} holds NaN or Inf values")
    full = dict(expected)
    full.update({k: v.to(expected[k].dtype) for k, v in state.items()})
    return full


def convert(src: str | Path, out: str | Path | None, family: str = "auto", config_path: str | Path | None = None,
            notes: list[str] | None = None):
    """Convert a published checkpoint; returns the loaded model (also saved to ``out`` unless None).
    What was assumed (per-source defaults, inferred sizes) is appended to ``notes``."""
    notes = [] if notes is None else notes
    ckpt = read_checkpoint(Path(src))
    if config_path:
        raw = read_config(Path(config_path))
    elif (ckpt.folder / "config.json").is_file():
        raw = read_config(ckpt.folder / "config.json")
    else:
        raw = ckpt.hyper_parameters
        if raw:
            notes.append("config from the checkpoint's hyper-parameters")
    if ckpt.unresolved:  # the unusual names first: training libraries are expected in a checkpoint
        usual = ("omegaconf.", "pytorch_lightning.", "lightning.", "lightning_fabric.", "torchmetrics.")
        names = sorted(ckpt.unresolved, key=lambda n: (n.startswith(usual), n))
        notes.append(f"left inert while reading ({len(names)}): {', '.join(names[:10])}")
    if family == "auto":
        family = detect_family(ckpt.state, raw)
    if family not in FAMILIES:
        raise CheckpointError(f"unknown family {family!r}")
    model_type = (raw or {}).get("model_type")
    if model_type not in (None, family, "bert"):
        raise CheckpointError(f"config model_type {model_type!r} does not match family {family!r}")
    rules = FAMILIES[family]
    state = rules.canonical_keys(ckpt.state)
    config, assumed = rules.build_config(raw, state, list(ckpt.state))
    notes += assumed
    model = rules.model_class(state, config)(config)
    if hasattr(rules, "complete"):
        state = rules.complete(state, model)
    model.load_state_dict(check_against(model, state))
    if out is not None:
        out = Path(out)
        model.save_pretrained(out)
        if hasattr(rules, "save_extras"):
            rules.save_extras(model, out)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="checkpoint file or directory")
    ap.add_argument("out", help="output directory (Hugging Face format)")
    ap.add_argument("--family", default="auto", choices=["auto", *FAMILIES])
    ap.add_argument("--config", default=None, help="config (JSON or YAML; default: config.json next to the weights)")
    args = ap.parse_args(argv)
    notes: list[str] = []
    try:
        model = convert(args.src, args.out, args.family, args.config, notes)
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None
    for note in notes:
        print(f"note: {note}")
    n = sum(p.numel() for p in model.parameters())
    print(f"converted {type(model).__name__} ({n / 1e6:.2f}M parameters) -> {args.out}")


if __name__ == "__main__":
    main()
