"""Where the asset bundles pipeline_scripts/: beside this file, so the training pipeline can upload them."""

from __future__ import annotations

from pathlib import Path

BUNDLED_SCRIPTS = Path(__file__).resolve().parent / "pipeline_scripts"


def scripts_dir() -> Path:
    """Read at call time, so tests can point BUNDLED_SCRIPTS at the checkout's pipeline_scripts/."""
    if not (BUNDLED_SCRIPTS / "preprocess.py").is_file():
        raise FileNotFoundError(
            f"pipeline scripts not found in {BUNDLED_SCRIPTS}; the Lambda asset bundles pipeline_scripts/ there"
        )
    return BUNDLED_SCRIPTS
