"""Named experiment presets: small YAML files of multiphase options.

Usage: python -m know_thyself.presets presets/offline-default.yaml
prints the ``-P name=value`` arguments for ``mlflow run . -e multiphase``. Unknown or invalid
options fail here, before anything runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from know_thyself.config import MultiphaseConfig


def read_preset(path: str | Path) -> dict:
    """The options a preset file sets, as written (checked to be a mapping)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"preset {str(path)!r} does not exist; presets live in presets/*.yaml")
    try:
        options = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"preset {str(path)!r} is not valid YAML: {exc}") from None
    if not isinstance(options, dict):
        raise ValueError(f"preset {str(path)!r} must be a mapping of option names to values")
    return options


def load_preset(path: str | Path) -> MultiphaseConfig:
    """Read and validate a preset file."""
    return MultiphaseConfig.from_options(read_preset(path))


def mlflow_run_args(path: str | Path) -> list[str]:
    """``-P name=value`` arguments for the options a preset sets (validated first)."""
    options = read_preset(path)
    MultiphaseConfig.from_options(options)
    return [arg for key, value in options.items() for arg in ("-P", f"{key}={value}")]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(" ".join(mlflow_run_args(argv[0])))
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
