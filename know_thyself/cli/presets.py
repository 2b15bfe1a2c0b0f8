"""Named experiment presets: small YAML files of the multiphase options a variant changes.

Usage: python -m know_thyself.cli.presets presets/offline-own-words.yaml
         prints the ``-P name=value`` arguments for ``mlflow run . -e multiphase``, shell-quoted;
       python -m know_thyself.cli.presets --run [PRESET] [-- MLFLOW_RUN_ARGS...]
         runs ``mlflow run . -e multiphase --env-manager local`` with the preset's options (none:
         the defaults), passing every value as one argument, whatever spaces or ``*`` it holds.

The defaults live in the configs (:mod:`know_thyself.config`); a preset states only what it
changes. Unknown or invalid options fail here, before anything runs.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

import yaml

from know_thyself.config import MultiphaseConfig

EXPERIMENT = "know-thyself"


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


def mlflow_run_args(path: str | Path | None) -> list[str]:
    """``-P name=value`` arguments for the options a preset sets (validated first); none without a preset."""
    if not path:
        return []
    options = read_preset(path)
    MultiphaseConfig.from_options(options)
    return [arg for key, value in options.items() for arg in ("-P", f"{key}={value}")]


def mlflow_run_command(path: str | Path | None, extra: list[str]) -> list[str]:
    """The whole ``mlflow run`` command ``make run`` starts, as an argument list (never through a shell)."""
    return ["mlflow", "run", ".", "-e", "multiphase", "--env-manager", "local", "--experiment-name", EXPERIMENT,
            *mlflow_run_args(path), *extra]


def main(argv: list[str]) -> int:
    try:
        if argv[:1] == ["--run"]:
            rest = argv[1:]
            extra = rest[rest.index("--") + 1:] if "--" in rest else []
            named = rest[: rest.index("--")] if "--" in rest else rest
            if len(named) > 1:
                print(__doc__, file=sys.stderr)
                return 2
            command = mlflow_run_command(named[0] if named else None, extra)
            if shutil.which(command[0]) is None:
                raise ValueError("the mlflow command is not on PATH; run `make install` and use the .venv")
            sys.stdout.flush()
            os.execvp(command[0], command)
        if len(argv) != 1:
            print(__doc__, file=sys.stderr)
            return 2
        print(shlex.join(mlflow_run_args(argv[0])))
    except ValueError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
