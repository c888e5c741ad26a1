"""Convert published Hyena / HyenaDNA / M2-BERT checkpoints to this library's Hugging Face format.

    python -m longconv_models.convert SRC OUT [--family auto|hyenadna|hyena|m2_bert] [--config CONFIG]

SRC is a checkpoint directory or file: ``*.safetensors`` (e.g. the ``LongSafari/*-seqlen-hf``
repos), or a PyTorch state dict (``*.bin``, ``*.pt``, ``*.ckpt``: raw HyenaDNA Lightning
checkpoints, the safari ``hyena_small_150b_tok.ckpt``, M2-BERT ``pytorch_model.bin``). Pickles are
read with ``torch.load(weights_only=True)``; a checkpoint that needs arbitrary Python objects
is refused (extract its ``state_dict`` in a trusted environment and save it with safetensors).

The config comes from ``config.json`` next to the weights (published ``-hf``, M2 ``m2_bert`` /
``bert`` and original HyenaDNA nested configs are understood) or ``--config``; the safari Hyena
checkpoint has none and gets the ``hyena-small-150b`` configuration. Every tensor is checked
against the model the config describes: unknown, missing or mis-shaped weights are errors.
OUT receives ``config.json``, ``model.safetensors`` and, for HyenaDNA, the tokenizer files.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import torch
from safetensors.torch import load_file

from .models import (
    HyenaConfig,
    HyenaDNAConfig,
    HyenaDNAForCausalLM,
    HyenaDNATokenizer,
    HyenaForCausalLM,
    M2BertConfig,
    M2BertForMaskedLM,
    M2BertForSequenceClassification,
    M2BertModel,
)


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted (with the reason)."""


# Buffers with defined values that may be absent from a checkpoint (recomputed by the model).
REGENERABLE = re.compile(r"(pos_emb\.t|modulation\.deltas|embeddings\.position_ids)$")
# Tensors of the original implementations that have no counterpart (dropped).
IGNORED = re.compile(r"(^|\.)flashfft\.|torchmetrics|(^|\.)(train|val|test)_metrics")
SHARED_FREQ = re.compile(r"^(.*\.filter_fn2?)\.implicit_filter(_rev)?\.(\d+)\.freq$")


def read_state_dict(path: Path) -> tuple[dict[str, torch.Tensor], Path]:
    """Tensors of a checkpoint file or directory, and the directory it lives in."""
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
    state: dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix == ".safetensors":
            part = load_file(str(f))
        else:
            try:
                part = torch.load(str(f), map_location="cpu", weights_only=True)
            except Exception as exc:  # UnpicklingError and friends
                raise CheckpointError(
                    f"{f.name} cannot be read with torch.load(weights_only=True) ({type(exc).__name__}: "
                    f"{str(exc).splitlines()[0][:200]}). If you trust it, extract its state_dict in a separate "
                    "environment and save it with safetensors.torch.save_file."
                ) from exc
            for key in ("state_dict", "model", "module"):  # Lightning / composer wrappers
                if isinstance(part, dict) and key in part and isinstance(part[key], dict):
                    part = part[key]
        if not isinstance(part, dict) or not all(isinstance(v, torch.Tensor) for v in part.values()):
            bad = {k: type(v).__name__ for k, v in part.items() if not isinstance(v, torch.Tensor)} if isinstance(part, dict) else type(part).__name__
            raise CheckpointError(f"{f.name} is not a flat tensor state dict (non-tensor entries: {str(bad)[:200]})")
        state.update(part)
    return state, folder


def detect_family(state: dict[str, torch.Tensor], config: dict | None) -> str:
    model_type = (config or {}).get("model_type", "")
    if model_type in ("hyenadna", "m2_bert", "hyena"):
        return model_type
    keys = " ".join(re.sub(r"\.(mixer|mlp)\.layer\.", r".\1.", k) for k in state)
    if "encoder.layer." in keys and "attention.filter_fn" in keys:
        return "m2_bert"
    if "backbone.layers." in keys and "mixer.filter_fn" in keys:
        vocab = next((v.shape[0] for k, v in state.items() if k.endswith("word_embeddings.weight")), 0)
        return "hyenadna" if vocab <= 16 else "hyena"
    raise CheckpointError("cannot tell the model family from the keys; pass --family")


def canonical_keys(state: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """Original key names -> this library's names (prefixes, wrappers, shared Sin frequency)."""
    out: dict[str, torch.Tensor] = {}
    freq: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for key, value in state.items():
        if IGNORED.search(key):
            continue
        k = re.sub(r"^(module\.|model\.)+", "", key)
        k = re.sub(r"\.(mixer|mlp)\.layer\.", r".\1.", k)  # checkpointed HyenaDNA blocks
        if family in ("hyenadna", "hyena"):
            k = k.replace("s4seq.encoder.", "backbone.").replace("mixer.output_linear.", "mixer.out_proj.")
            if not k.startswith(("hyena.", "lm_head.", "score.")):
                k = "hyena." + k
        m = SHARED_FREQ.match(k)
        if m:  # implicit_filter{,_rev}.{1,3,5}.freq: one shared tensor, kept as implicit_filter.1.freq
            freq.setdefault(m.group(1), []).append((k, value))
            continue
        out[k] = value
    for prefix, items in freq.items():
        ref_key, ref = items[0]
        for k, v in items[1:]:
            if not torch.equal(v, ref):
                raise CheckpointError(f"{k} differs from {ref_key}: the shared Sin frequency must be equal")
        out[f"{prefix}.implicit_filter.1.freq"] = ref
    return out


def config_for(family: str, raw: dict | None, state: dict[str, torch.Tensor]):
    raw = dict(raw or {})
    if family == "hyenadna":
        if "layer" in raw and isinstance(raw["layer"], dict):  # original nested HyenaDNA config
            layer = raw.pop("layer")
            raw.update(max_seq_len=layer.get("l_max"), emb_dim=layer.get("emb_dim", 3),
                       filter_order=layer.get("filter_order", 64), activation_freq=layer.get("w", 1),
                       short_filter_order=layer.get("local_order", 3), modulate=layer.get("modulate", True),
                       modulation_shift=0.0)
        keep = {k: v for k, v in raw.items() if k in HyenaDNAConfig().to_dict() or k in ("d_inner",)}
        keep.pop("model_type", None)
        keep.pop("auto_map", None)
        keep.pop("architectures", None)
        return HyenaDNAConfig(**keep)
    if family == "hyena":
        if not raw:  # the safari checkpoint ships without a config: hyena-small-150b
            vocab = state["hyena.backbone.embeddings.word_embeddings.weight"].shape[0]
            return HyenaConfig(vocab_size=50257 if vocab == 50264 else vocab)
        raw.pop("model_type", None)
        return HyenaConfig(**raw)
    raw["model_type"] = "m2_bert"  # older M2 repos say "bert"
    for k in ("auto_map", "architectures", "model_type"):
        raw.pop(k, None)
    return M2BertConfig(**raw)


def model_class_for(family: str, state: dict[str, torch.Tensor]):
    if family == "hyenadna":
        return HyenaDNAForCausalLM
    if family == "hyena":
        return HyenaForCausalLM
    keys = set(state)
    if any(k.startswith("cls.predictions") for k in keys):
        return M2BertForMaskedLM
    if any(k.startswith("classifier.") for k in keys):
        return M2BertForSequenceClassification
    return M2BertModel


def check_against(model: torch.nn.Module, state: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """Validate names and shapes; fill tied/regenerable tensors; return the full state dict."""
    expected = model.state_dict()
    if isinstance(model, M2BertModel):  # a bare encoder: checkpoint keys may carry "bert."
        state = {k.removeprefix("bert."): v for k, v in state.items()}
    if family in ("hyenadna", "hyena") and "lm_head.weight" not in state:
        emb = state.get("hyena.backbone.embeddings.word_embeddings.weight")
        if emb is not None:
            state["lm_head.weight"] = emb  # tied in the original
    if isinstance(model, M2BertForMaskedLM) and "cls.predictions.decoder.weight" not in state:
        state["cls.predictions.decoder.weight"] = state.get("bert.embeddings.word_embeddings.weight")
    unexpected = sorted(set(state) - set(expected))
    missing = sorted(k for k in set(expected) - set(state) if not REGENERABLE.search(k))
    if unexpected or missing:
        raise CheckpointError(
            f"checkpoint does not match {type(model).__name__}"
            + (f"; unexpected keys ({len(unexpected)}): {unexpected[:8]}" if unexpected else "")
            + (f"; missing keys ({len(missing)}): {missing[:8]}" if missing else "")
        )
    for k, v in state.items():
        if tuple(v.shape) != tuple(expected[k].shape):
            raise CheckpointError(f"{k}: checkpoint shape {tuple(v.shape)} != model shape {tuple(expected[k].shape)}")
    full = dict(expected)
    full.update({k: v.to(expected[k].dtype) for k, v in state.items()})
    return full


def convert(src: str | Path, out: str | Path, family: str = "auto", config_path: str | Path | None = None):
    """Convert a published checkpoint; returns the loaded model (also saved to ``out``)."""
    state, folder = read_state_dict(Path(src))
    cfg_file = Path(config_path) if config_path else folder / "config.json"
    raw = json.loads(cfg_file.read_text()) if cfg_file.is_file() else None
    if family == "auto":
        family = detect_family(state, raw)
    if family not in ("hyenadna", "hyena", "m2_bert"):
        raise CheckpointError(f"unknown family {family!r}")
    if raw and raw.get("model_type") not in (None, family, "bert"):
        raise CheckpointError(f"config model_type {raw.get('model_type')!r} does not match family {family!r}")
    state = canonical_keys(state, family)
    config = config_for(family, raw, state)
    model = model_class_for(family, state)(config)
    model.load_state_dict(check_against(model, state, family))
    out = Path(out)
    model.save_pretrained(out)
    if family == "hyenadna":
        HyenaDNATokenizer(model_max_length=config.max_seq_len).save_pretrained(out)
    return model


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("src", help="checkpoint file or directory")
    ap.add_argument("out", help="output directory (Hugging Face format)")
    ap.add_argument("--family", default="auto", choices=["auto", "hyenadna", "hyena", "m2_bert"])
    ap.add_argument("--config", default=None, help="config.json (default: next to the weights)")
    args = ap.parse_args(argv)
    try:
        model = convert(args.src, args.out, args.family, args.config)
    except CheckpointError as exc:
        raise SystemExit(f"error: {exc}") from None
    n = sum(p.numel() for p in model.parameters())
    print(f"converted {type(model).__name__} ({n / 1e6:.2f}M parameters) -> {args.out}")


if __name__ == "__main__":
    main()
