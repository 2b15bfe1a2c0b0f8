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
from dataclasses import fields
from pathlib import Path
from typing import get_type_hints

import yaml

from know_thyself.config import MultiphaseConfig
from know_thyself.data.files import not_a_readable_file

EXPERIMENT = "know-thyself"


class PresetError(ValueError):
    """A preset file that cannot be used; the message names the file, the line where known, and the fix."""


def read_preset(path: str | Path) -> dict:
    """The options a preset file sets, as written: a flat mapping of option names to single values.

    Refused, each with the line and the fix: a path that is not a readable file, YAML aliases
    (``*name``; refused while parsing, before anything is expanded, so a "billion laughs" file
    costs nothing), an option set twice (YAML would keep the last silently), an option with no
    value, a list or mapping as a value, and a text option whose plain value YAML 1.1 reads as
    something else (``dataset: yes`` is the boolean true, ``model: 0123`` the number 83).
    """
    path = Path(path)
    text = _preset_text(path)
    where = f"preset {str(path)!r}"
    loader = yaml.SafeLoader(text)
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise PresetError(
                    f"{where}, line {event.start_mark.line + 1}: the YAML alias *{event.anchor} is not accepted in a "
                    "preset; write each value out (a preset is a flat list of option: value lines)"
                )
        document = loader.get_single_node()
        if document is None:
            return {}
        if not isinstance(document, yaml.MappingNode):
            raise PresetError(f"{where} must be a mapping of option names to values")
        options = _preset_options(document, loader, where)
    except yaml.YAMLError as exc:
        raise PresetError(f"{where} is not valid YAML ({' '.join(str(exc).split())}); fix it there") from None
    finally:
        loader.dispose()
    return options


def _preset_text(path: Path) -> str:
    """The text of a preset file; a path that is not a readable UTF-8 file is refused with the fix."""
    problem = not_a_readable_file(path)
    if problem == "":
        raise PresetError(f"preset {str(path)!r} does not exist; presets live in presets/*.yaml")
    if problem == "it is a folder":
        inside = sorted(path.glob("*.yaml"))
        hint = f" such as {inside[0]}" if inside else ""
        raise PresetError(f"preset {str(path)!r} is a folder, not a preset file; give one .yaml file{hint} "
                          "(presets live in presets/*.yaml)")
    if problem:
        raise PresetError(f"preset {str(path)!r} exists but is not a readable file: {problem}")
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PresetError(f"preset {str(path)!r} cannot be read ({exc}); save it as UTF-8 text") from None


def _preset_options(document: yaml.MappingNode, loader: yaml.SafeLoader, where: str) -> dict:
    """The options of a composed preset, each key and value checked on its node (so its line is known)."""
    hints = get_type_hints(MultiphaseConfig)
    defaults = {f.name: f.default for f in fields(MultiphaseConfig)}
    options: dict = {}
    lines: dict = {}
    for key_node, value_node in document.value:
        line = key_node.start_mark.line + 1
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str):
            raise PresetError(f"{where}, line {line}: {key_node.value!r} is not an option name; write name: value")
        if key in lines:
            raise PresetError(f"{where}, line {line}: option {key!r} is set twice (lines {lines[key]} and {line}), "
                              "and YAML would silently keep the last; keep one")
        lines[key] = line
        if key not in hints:  # unknown: MultiphaseConfig.from_options names the accepted options
            options[key] = None
            continue
        if not isinstance(value_node, yaml.ScalarNode):
            raise PresetError(f"{where}, line {line}: option {key!r} must be a single value, not a "
                              f"{'list' if isinstance(value_node, yaml.SequenceNode) else 'mapping'}")
        if value_node.tag == "tag:yaml.org,2002:null":
            raise PresetError(f"{where}, line {line}: option {key!r} has no value; write one after '{key}:' or "
                              f"delete the line to keep the default ({defaults[key]!r})")
        value = loader.construct_object(value_node, deep=True)
        if hints[key] is str and not isinstance(value, str):
            raw = value_node.value
            if isinstance(value, bool):
                raise PresetError(f"{where}, line {line}: {key}: {raw} is read by YAML as the boolean "
                                  f"{str(value).lower()}, not as text; quote it ({key}: \"{raw}\") or give the "
                                  f"{key} you mean")
            if str(value) != raw:
                raise PresetError(f"{where}, line {line}: {key}: {raw} is read by YAML as {value!r}, not as the "
                                  f"text {raw!r}; quote it ({key}: \"{raw}\")")
        options[key] = value
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
