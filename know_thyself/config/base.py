"""The base of every step config: typed fields with their help, conversion, validation, parameter export.

Each step's options live in a dataclass; each field carries its command-line help in its
metadata (:func:`option`), so the help is written once, beside the field, and so are the values
an option takes when they are a fixed set (its ``choices``, which the command line offers and
refuses others by). A subclass that only changes a default inherits both (:meth:`StepConfig.help`,
:meth:`StepConfig.choices`). :meth:`StepConfig.from_options`
rejects unknown keys, converts types, and every check names the field and the fix, before any
model is loaded or any run is opened. :meth:`StepConfig.params` gives the strings that are logged
as MLflow parameters and compared by the step cache. A chain derives each step's config from its
own with :meth:`StepConfig.derive`.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeVar, get_type_hints

_RUN_ID = re.compile(r"^[0-9a-f]{32}$")
_Config = TypeVar("_Config", bound="StepConfig")


def option(
    default: Any, help: str, required: bool = False, choices: tuple = (), many: bool = False,
) -> Any:
    """A config field with its default and its command-line help.

    Args:
        default: The default value, the one home of it.
        help: The command-line help (``--help``), written once, here.
        required: An option the step cannot run without (an upstream run id): MLproject declares it
            without a default, so ``mlflow run`` asks for it.
        choices: The values the option takes, when they are a fixed set: the command line lists them
            in ``--help`` and MLproject, and refuses any other value before the step starts. The
            config's ``validate`` still checks them too, for callers of the Python API.
        many: The value is a comma-separated list of ``choices`` (a sweep's grid): the command line
            then takes it as text and its help lists the values.
    """
    if many and not choices:
        raise TypeError("option(many=True) lists values of choices; give choices too")
    metadata = {"help": help, "required": required, "choices": tuple(choices), "many": many}
    return field(default=default, metadata=metadata)


def check(ok: bool, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``ok``: the one form of every config check."""
    if not ok:
        raise ValueError(message)


def check_run_id(name: str, value: str, optional: bool = False) -> None:
    """Validate the form of an upstream run id option (32 hex digits)."""
    if optional and value == "":
        return
    check(
        not _RUN_ID.match(value.lower()) or value == value.lower(),
        f"{name} must be an MLflow run id (32 hex digits), got {value!r}: run ids are in lower case; "
        f"pass {value.lower()!r}",
    )
    check(
        bool(_RUN_ID.match(value)),
        f"{name} must be an MLflow run id (32 hex digits), got {value!r}; "
        "copy it from the MLflow UI or the upstream step's output",
    )


@dataclass
class StepConfig:
    """Base class: conversion, unknown-key rejection and parameter export."""

    step: ClassVar[str] = ""

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> StepConfig:
        """Build a config from a mapping of option names to values (strings are converted)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(
                f"unknown option(s) for {cls.step}: {', '.join(unknown)}; "
                f"accepted: {', '.join(sorted(known))}"
            )
        hints = get_type_hints(cls)
        converted = {}
        for key, value in options.items():
            converted[key] = convert_value(key, value, hints[key])
        return cls(**converted)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad field and the fix."""

    def params(self) -> dict[str, str]:
        """Every field as a string, the form MLflow stores parameters in."""
        return {k: str(v) for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def declared(cls, name: str) -> Mapping[str, Any]:
        """The metadata :func:`option` gave field ``name``: its own, or that of the class it overrides a default of."""
        for klass in cls.__mro__:
            declared = getattr(klass, "__dataclass_fields__", {}).get(name)
            if declared is not None and declared.metadata.get("help"):
                return declared.metadata
        return {}

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of field ``name``: its own, or that of the class it overrides a default of."""
        return cls.declared(name).get("help", "")

    @classmethod
    def choices(cls, name: str) -> tuple:
        """The values field ``name`` takes when they are a fixed set (see :func:`option`); ``()`` if any."""
        return cls.declared(name).get("choices", ())

    @classmethod
    def takes_many(cls, name: str) -> bool:
        """Whether field ``name`` is a comma-separated list of its :meth:`choices` (see :func:`option`)."""
        return bool(cls.declared(name).get("many", False))

    @classmethod
    def choices_note(cls, name: str) -> str:
        """The values field ``name`` takes, as a phrase for help and MLproject (``""`` when any value does)."""
        choices = cls.choices(name)
        if not choices:
            return ""
        listed = ", ".join(str(choice) for choice in choices)
        return f"comma-separated, each one of: {listed}" if cls.takes_many(name) else f"one of: {listed}"

    def derive(self, target: type[_Config], **values: Any) -> _Config:
        """The config of step ``target`` implied by this one: the fields they share, then ``values``.

        The result is built (and so validated) once; a value ``target`` needs and this config does
        not hold (an upstream run id) must be given in ``values``.
        """
        shared = {f.name: getattr(self, f.name) for f in fields(target) if f.name in self.__dataclass_fields__}
        return target(**{**shared, **values})


def convert_value(key: str, value: Any, kind: Any) -> Any:
    """``value`` as the field type ``kind`` (bool, int, float or str); a bad value names the option ``key``."""
    if kind is bool and isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("1", "true", "yes"):
            return True
        if lowered in ("0", "false", "no"):
            return False
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if kind in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{key} must be a number ({kind.__name__}), got {value!r}")
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ValueError(f"{key} must be a number ({kind.__name__}), got {value!r}") from None
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{key} must be a whole number, got {value!r}")
        if not math.isfinite(number):
            raise ValueError(f"{key} must be a finite number, got {value!r}")
        return number
    if kind is str:
        return "" if value is None else str(value)
    return value


