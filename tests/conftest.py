import os

import pytest
import torch


def cuda_kernels_available() -> bool:
    if not torch.cuda.is_available():
        return False
    from longconv_models import extension

    return extension.load_extension() is not None


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (marker: cuda)")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(int(os.environ.get("LONGCONV_TEST_SEED", "0")))
