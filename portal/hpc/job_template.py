"""Job templates: declarative YAML files (one per template) turned into batch scripts.

A template names the environments it is offered on, its parameters (each checked against a
pattern) and a Jinja2 script in which every ``{{ value }}`` is shell-quoted, so no parameter can
change the script's structure. A broken file is left out and logged; it never hides the others.
"""

from __future__ import annotations

import logging
import re
import shlex
from pathlib import Path
from typing import Any, Literal

import yaml
from jinja2 import Environment, StrictUndefined, TemplateError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daaas.portal.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)
_NAME = r"^[a-z][a-z0-9_-]{0,63}$"
_SCRIPTS = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True,
                       finalize=lambda value: shlex.quote(str(value)))


class Parameter(BaseModel):
    """One value the user fills in; ``default_from`` takes it from the session's experiment."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    label: str
    help: str = ""
    default: str = ""
    default_from: Literal["", "experiment_data_path"] = ""
    pattern: str = r"^[^\x00-\x1f\x7f]{1,500}$"

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        re.compile(value)
        return value


class JobTemplate(BaseModel):
    """A reusable job: a title, where it is offered, its parameters and its script."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=_NAME)
    title: str
    description: str = ""
    environments: tuple[str, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    time_limit_minutes: int | None = Field(None, ge=1)
    cpus: int = Field(1, ge=1, le=1024)
    script: str = Field(pattern=r"^#!")

    @field_validator("script")
    @classmethod
    def _parses(cls, value: str) -> str:
        _SCRIPTS.from_string(value)
        return value

    def offered_on(self, environment: str | None) -> bool:
        """Return True when the template is offered for jobs from ``environment`` (None: no
        machine). Raises nothing."""
        return not self.environments or environment in self.environments

    def defaults(self, experiment_data_path: str) -> dict[str, str]:
        """Return each parameter's starting value. Raises nothing."""
        return {p.name: experiment_data_path if p.default_from else p.default
                for p in self.parameters}

    def render(self, values: dict[str, str], context: dict[str, str]) -> str:
        """Return the script with the parameters (and ``context``) filled in, shell-quoted.

        Raises InvalidInput naming a parameter that is missing or does not fit its pattern.
        """
        checked = {}
        for p in self.parameters:
            value = str(values.get(p.name, "")).strip()
            if not re.fullmatch(p.pattern, value):
                raise InvalidInput(f"'{p.label}' ({p.name}) must match {p.pattern}"
                                   f"{': ' + p.help if p.help else ''}.")
            checked[p.name] = value
        try:
            return _SCRIPTS.from_string(self.script).render(**context, **checked)
        except TemplateError as exc:
            raise InvalidInput(f"The job template '{self.name}' cannot be filled in: {exc}. "
                               "Tell the facility's support.") from None


def load_templates(folder: str) -> dict[str, JobTemplate]:
    """Return the valid templates in ``folder`` by name; broken files are logged and skipped.

    Raises nothing (a missing folder means no templates).
    """
    found: dict[str, JobTemplate] = {}
    for path in sorted(Path(folder).glob("*.yaml")):
        try:
            template = JobTemplate.model_validate(_read(path))
        except (OSError, yaml.YAMLError, ValidationError, TemplateError) as exc:
            log.warning("job template %s left out: %s", path, exc)
            continue
        found.setdefault(template.name, template)
    return found


def _read(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def get_template(folder: str, name: str, environment: str | None) -> JobTemplate:
    """Return the template called ``name`` offered for ``environment``.

    Raises NotFound when there is none of that name for that environment.
    """
    template = load_templates(folder).get(name)
    if template is None or not template.offered_on(environment):
        raise NotFound(f"There is no job template '{name}' for these jobs. Choose one from the "
                       "Jobs page, or submit your own script.")
    return template
