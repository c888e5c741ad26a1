"""Pieces shared by the per-family checkpoint converters (``models/<family>/convert_<family>.py``);
the generic reader, checker and command line are in ``longconv_models/convert.py``."""

from __future__ import annotations

import re

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted (with the reason)."""


# Implicit filters reuse one Sin module at indices 1, 3, 5 (and in the reverse MLP of M2); a file
# may hold any subset of those names. They are folded into implicit_filter.1.freq.
SHARED_FREQ = re.compile(r"^(.*\.filter_fn2?)\.implicit_filter(_rev)?\.(\d+)\.freq$")


def strip_wrappers(key: str) -> str:
    """Remove Lightning / DDP / composer prefixes and the ``.layer`` segment of checkpointed blocks."""
    key = re.sub(r"^(module\.|model\.)+", "", key)
    return re.sub(r"\.(mixer|mlp)\.layer\.", r".\1.", key)


def fold_shared_freq(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out: dict[str, torch.Tensor] = {}
    freq: dict[str, list[tuple[str, torch.Tensor]]] = {}
    for k, v in state.items():
        m = SHARED_FREQ.match(k)
        if m:
            freq.setdefault(m.group(1), []).append((k, v))
        else:
            out[k] = v
    for prefix, items in freq.items():
        ref_key, ref = items[0]
        for k, v in items[1:]:
            if v.shape != ref.shape or not torch.equal(v, ref):
                raise CheckpointError(f"{k} differs from {ref_key}: the shared Sin frequency must be equal")
        out[f"{prefix}.implicit_filter.1.freq"] = ref
    return out


def take_known(section: dict, section_name: str, mapping: dict[str, str], ignored: set[str],
               required: dict[str, object]) -> dict:
    """Map the keys of one section of an original (nested) config to config fields. Keys that only
    steer training or the original implementation are ``ignored``; keys whose value changes the
    architecture are accepted only at the ``required`` value; any other key is an error."""
    out, unknown = {}, []
    for key, value in section.items():
        if key in mapping:
            out[mapping[key]] = value
        elif key in required:
            if value != required[key] and not (required[key] is None and value in ([], {}, 0)):
                raise CheckpointError(f"{section_name}.{key} = {value!r} is not supported (only {required[key]!r})")
        elif key not in ignored:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"unknown keys in the config's {section_name} section: {sorted(unknown)} "
                              "(not part of this family's published configurations)")
    return out
