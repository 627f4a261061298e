"""Build the native core: every native/*.pyx concept is `include`d into one extension module.

One compiled unit keeps cross-concept calls as plain C calls (no module boundary) and gives
Python a single import, `seqfast._native`.  Set SEQFAST_DEBUG=1 for an unoptimised build with
bounds checks on, useful when chasing a crash in a native loop.
"""

import os

from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("SEQFAST_DEBUG") == "1"

extension = Extension(
    "seqfast._native",
    ["native/_native.pyx"],
    extra_compile_args=["-O0", "-g"] if DEBUG else ["-O3"],
)

setup(
    ext_modules=cythonize(
        [extension],
        language_level=3,
        compiler_directives={
            "boundscheck": DEBUG,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": DEBUG,
            "embedsignature": True,
        },
        include_path=["native"],
    ),
)
