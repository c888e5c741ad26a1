"""Install longconv_models.

The CUDA kernels in ``longconv_models/kernels/`` ship as package data and are
compiled on first use on a CUDA machine, or ahead of time with
``python -m longconv_models.build``. Installing never needs nvcc.
"""
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent
version = {}
exec((ROOT / "longconv_models" / "version.py").read_text(), version)

setup(
    name="longconv-models",
    version=version["__version__"],
    description="Fast long-convolution sequence models: fused Monarch FFT-conv kernels, "
    "layers and Hugging Face Hyena / HyenaDNA / M2-BERT models",
    long_description=(ROOT / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["longconv_models", "longconv_models.*"]),
    package_data={"longconv_models.kernels": ["*.cu", "*.cuh", "*.h", "*.cpp", "**/*.cu", "**/*.cuh", "**/*.h", "**/*.cpp"],
                  "longconv_models": ["checkpoints/**/*"]},
    include_package_data=True,
    install_requires=[
        "torch>=2.4",
        "transformers>=5.0,<6",
        "datasets",
        "einops",
        "safetensors",
        "huggingface_hub",
        "ninja",
        "tqdm",
        "numpy",
    ],
    extras_require={"dev": ["pytest>=7", "accelerate", "matplotlib", "parameterized", "omegaconf", "peft"]},
)
