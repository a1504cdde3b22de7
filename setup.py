"""Build configuration for the Cython kernels in ext/ (metadata lives in pyproject.toml).

Compiler directives are set once here. ``TWIN_DEBUG_BOUNDS=1`` at build time turns bounds
checks, negative indexing and Python division semantics back on, for debugging a kernel:

    TWIN_DEBUG_BOUNDS=1 pip install -e .
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("TWIN_DEBUG_BOUNDS", "") not in ("", "0")

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "cdivision": not DEBUG,
    "initializedcheck": DEBUG,
}

extensions = [
    Extension("ext._kernel", ["ext/_kernel.pyx"], extra_compile_args=["-O3"]),
    Extension("ext._hooks", ["ext/_hooks.pyx"], extra_compile_args=["-O3"]),
    Extension("ext._mmc_tight", ["ext/_mmc_tight.pyx"], extra_compile_args=["-O3"]),
    Extension("ext._route", ["ext/_route.pyx"], extra_compile_args=["-O3"]),
]

# the debug build keeps its generated C apart, so switching modes always regenerates it
setup(ext_modules=cythonize(extensions, compiler_directives=directives, include_path=["."],
                            build_dir="build/debug-bounds" if DEBUG else None))
