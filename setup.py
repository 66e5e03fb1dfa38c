"""Builds the compiled GenBank and pairing fast paths, bsm_data._gbfast, from bsm_data/csrc (the
rest of the package is configured in pyproject.toml). It is optional: without a C compiler the
build goes on and bsm_data.genbank and bsm_data.pairing run their Python paths, which give the
same rows and samples."""
from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "bsm_data._gbfast",
            sources=[f"bsm_data/csrc/{name}.c" for name in ("module", "parse", "extract", "pair")],
            depends=["bsm_data/csrc/gbfast.h"],
            optional=True,
        )
    ]
)
