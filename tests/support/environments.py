"""Typed catalogue environments for tests: a shipped entry, changed as a test needs.

Launch specs and machine rows carry a :class:`daaas.catalogue.Environment`, never a dict, so a
test that needs "an environment with a GPU" or "with these applications" starts from a shipped
entry and changes those fields. The result is validated as a machine's stored snapshot is
(:meth:`Environment.from_snapshot`): each field must be valid, the checks across fields are
left out, so an application may use a repository the entry does not list.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from daaas.catalogue import DEFAULT_DIRECTORY, Environment, load_catalogue


@cache
def shipped(name: str = "base-desktop") -> Environment:
    """Return the shipped catalogue's environment called ``name``; KeyError if there is none."""
    return load_catalogue(DEFAULT_DIRECTORY).environments[name]


def make_environment(base: str = "base-desktop", **changes: Any) -> Environment:
    """Return the shipped environment ``base`` with ``changes`` (fields as in a catalogue file).

    Raises pydantic.ValidationError when a changed field is not valid.
    """
    return Environment.from_snapshot({**shipped(base).to_dict(), **changes})
