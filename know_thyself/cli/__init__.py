"""Shared command-line plumbing for the entry points: options generated from the step configs
(names, types, defaults, the help written beside each field and the values it takes), and errors
turned into one clear line with a non-zero exit."""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import MISSING, fields
from typing import Any, get_type_hints

import click

from know_thyself.config import StepConfig

# Errors of MLflow (and of the SQLAlchemy store beneath it) that become one line.
TRACKING_ERRORS = ("MlflowException", "RestException", "OperationalError", "DatabaseError")
_CLICK_TYPES = {int: click.INT, float: click.FLOAT, str: click.STRING, bool: click.BOOL}


def config_options(config_cls: type[StepConfig]) -> Callable:
    """Add one ``--option`` per field of ``config_cls``, with its type, default and help.

    A field with ``choices`` (:func:`~know_thyself.config.base.option`) becomes a ``click.Choice``:
    ``--help`` shows its values, and any other value is refused by the parser (exit 2) with the list.
    A comma-separated list of choices (a sweep's grid) stays text, its values named in its help; the
    config checks each item.
    """
    hints = get_type_hints(config_cls)

    def decorate(command: Callable) -> Callable:
        for field in reversed(fields(config_cls)):
            default = field.default if field.default is not MISSING else None
            command = click.option(
                f"--{field.name}",
                field.name,
                type=option_type(config_cls, field.name, hints[field.name]),
                default=default,
                show_default=True,
                required=field.default is MISSING,
                help=option_help(config_cls, field.name),
            )(command)
        return command

    return decorate


def option_type(config_cls: type[StepConfig], name: str, kind: type) -> click.ParamType:
    """The click type of field ``name``: a ``click.Choice`` of its choices, else its Python type's."""
    choices = config_cls.choices(name)
    if choices and not config_cls.takes_many(name):
        return click.Choice(choices)
    return _CLICK_TYPES.get(kind, click.STRING)


def option_help(config_cls: type[StepConfig], name: str) -> str:
    """The ``--help`` text of field ``name``; a list of choices (which click's metavar cannot show) names its values."""
    text = config_cls.help(name)
    if config_cls.takes_many(name):
        text = f"{text} One or more of: {', '.join(str(choice) for choice in config_cls.choices(name))}."
    return text


def run_cli(body: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an entry point: set up logging; expected errors become one line and exit 1.

    Expected errors are bad input (``ValueError``), the file system and the network (``OSError``,
    which includes ``ConnectionError``) and the tracking store (MLflow's and SQLAlchemy's errors and
    their subclasses, matched by class name so that neither is imported here). When ``mlflow run``
    opened a run for the command, every failure (an unexpected one too, whose traceback follows) goes
    into that run's description and the run ends FAILED. The entry point configures tracking
    itself, after checking its options. Set ``KNOW_THYSELF_DEBUG=1`` to see the full traceback instead.
    """

    @functools.wraps(body)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
        if os.environ.get("KNOW_THYSELF_DEBUG") == "1":
            return body(*args, **kwargs)
        from know_thyself.tracking import tracking_error_line

        # MLflow logs a traceback of every database error it re-raises; the error itself becomes our one line.
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)

        # Read now: MLflow removes $MLFLOW_RUN_ID from the environment when the step continues that run.
        project_run = os.environ.get("MLFLOW_RUN_ID", "").strip()
        try:
            return body(*args, **kwargs)
        except (ValueError, OSError) as exc:
            fail_project_run(str(exc), project_run)
            raise click.ClickException(str(exc)) from None
        except Exception as exc:  # tracking-store errors: one line, not a traceback
            name = exc.__class__.__name__
            if any(cls.__name__ in TRACKING_ERRORS for cls in type(exc).__mro__):
                message = f"tracking store error: {tracking_error_line(str(exc)) or name}"
                fail_project_run(message, project_run)
                raise click.ClickException(message) from None
            fail_project_run(f"{name}: {exc}", project_run)  # a bug: the traceback follows, the run still says why
            raise

    return wrapper


class StepCommand(click.Command):
    """A click command whose usage errors (a value of the wrong type, an empty value, an unknown option)
    also go into the description of the run ``mlflow run`` opened, like every other failure."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            fail_project_run(exc.format_message(), os.environ.get("MLFLOW_RUN_ID", "").strip())
            raise


def fail_project_run(message: str, run_id: str) -> None:
    """A command failed: write ``message`` into the description of the run ``mlflow run`` opened for it
    (``run_id``, ``$MLFLOW_RUN_ID`` as the command started; nothing when empty), and end that run FAILED if it is
    still RUNNING (a step that fails before opening its run leaves it so).

    The step may have continued that run already, and MLflow then removed ``$MLFLOW_RUN_ID`` from the
    environment; the note is written with it set again for that moment, so that the one writer of failure
    notes (:func:`~know_thyself.tracking.notes.note_failure_on_project_run`) applies its own checks.
    """
    from know_thyself.tracking import note_failure_on_project_run
    from know_thyself.tracking.runs import end_project_run_failed

    if not run_id:
        return
    current = os.environ.get("MLFLOW_RUN_ID")
    os.environ["MLFLOW_RUN_ID"] = run_id
    try:
        note_failure_on_project_run(message)
    finally:
        if current is None:
            del os.environ["MLFLOW_RUN_ID"]
        else:
            os.environ["MLFLOW_RUN_ID"] = current
    end_project_run_failed(run_id)


def step_command(doc: str, config_cls: type[StepConfig], run: Callable[[Any], Any]) -> click.Command:
    """The click command of one entry point: an option per config field; then the config built and
    validated, the tracking store configured, the step run, and the run ids it made printed.

    Args:
        doc: The entry point's docstring (its ``--help``: usage, what it reads and writes).
        config_cls: The step's config.
        run: The step: takes the config, returns run ids by name (or an object with ``run_ids``
            and a ``report`` to print after them).
    """

    @click.command(help=doc, cls=StepCommand)
    @config_options(config_cls)
    @run_cli
    def main(**options: Any) -> None:
        from know_thyself import tracking

        cfg = config_cls.from_options(options)
        tracking.configure_tracking()
        tracking.project_run_id()  # a leftover $MLFLOW_RUN_ID naming a finished run: refused, untouched
        result = run(cfg)
        if isinstance(result, dict):
            echo_ids(result)
        else:
            echo_ids(result.run_ids)
            if is_main_process():
                click.echo(result.report)

    return main


def is_main_process() -> bool:
    """Whether this is the main (or only) process of a job started with ``accelerate launch``/torchrun."""
    from know_thyself.tracking import is_main_process as main_process

    return main_process()


def echo_ids(ids: dict[str, str]) -> None:
    """Print step -> run id lines, for chaining steps by hand (main process only)."""
    from know_thyself.tracking import is_main_process

    if not is_main_process():
        return
    for step, run_id in ids.items():
        click.echo(f"{step}: {run_id}")
    sys.stdout.flush()
