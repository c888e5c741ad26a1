"""transformers' own common model tests (``ModelTesterMixin``), taken from the source distribution
of the installed transformers version (``pip download``, cached under ``~/.cache/longconv_models``).

The sdist ships ``tests/test_modeling_common.py`` but not two modules it imports:
``exporters/test_export.py`` (``ExportTesterMixin``: torch.export tests, covered by our own
``test_torch_export_dynamic_length``) and ``generation/test_utils.py`` (``GenerationTesterMixin``:
generate tests, covered by ``tests/models/test_generation.py``). They are stood in for by empty mixins, so
those tests are absent rather than skipped; every other common test runs.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import transformers

CACHE = Path(os.environ.get("LONGCONV_CACHE", Path.home() / ".cache" / "longconv_models"))
PACKAGE = "hf_common_tests"
STUBS = {
    "exporters/test_export.py": "class ExportTesterMixin:\n    \"\"\"not in the sdist\"\"\"\n",
    "generation/test_utils.py": "class GenerationTesterMixin:\n    \"\"\"not in the sdist\"\"\"\n",
}


def _extract(version: str) -> Path:
    root = CACHE / f"transformers-{version}-tests"
    pkg = root / PACKAGE
    if (pkg / "test_modeling_common.py").is_file():
        return root
    dl = CACHE / "sdist"
    dl.mkdir(parents=True, exist_ok=True)
    sdist = dl / f"transformers-{version}.tar.gz"
    if not sdist.is_file():
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                        f"transformers=={version}", "-d", str(dl)], check=True, capture_output=True, timeout=300)
    pkg.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as tar:
        member = tar.getmember(f"transformers-{version}/tests/test_modeling_common.py")
        (pkg / "test_modeling_common.py").write_bytes(tar.extractfile(member).read())
    (pkg / "__init__.py").write_text("")
    for rel, text in STUBS.items():
        (pkg / rel).parent.mkdir(exist_ok=True)
        (pkg / rel).parent.joinpath("__init__.py").write_text("")
        (pkg / rel).write_text(text)
    return root


def load_model_tester_mixin():
    """``ModelTesterMixin`` of the installed transformers, or raise (offline, no sdist)."""
    root = _extract(transformers.__version__)
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    return importlib.import_module(f"{PACKAGE}.test_modeling_common").ModelTesterMixin
