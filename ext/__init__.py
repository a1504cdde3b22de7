"""Cython kernels of the twin's fast event engine (see issue 3)."""

__all__: list[str] = []
