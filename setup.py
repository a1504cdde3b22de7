"""Build configuration for the Cython kernels in ext/ (metadata lives in pyproject.toml)."""

from setuptools import setup

setup()
