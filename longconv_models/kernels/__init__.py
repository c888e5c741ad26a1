"""CUDA sources of longconv_models (compiled on first use; see longconv_models/extension.py)."""
