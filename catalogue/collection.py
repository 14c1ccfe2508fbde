"""The loaded catalogue: valid environments, abstract bases, and what is wrong with the rest."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from daaas.catalogue.model import Environment
from daaas.catalogue.problems import CatalogueProblem


@dataclass(frozen=True)
class Catalogue:
    """A catalogue folder as loaded by :func:`daaas.catalogue.load_catalogue`.

    ``environments`` holds the launchable entries and ``abstract`` the valid bases (both keyed by
    name, ordered by title); ``invalid`` maps each broken entry to its problems (an entry whose
    parent is invalid is invalid too); ``problems`` lists every problem, folder-level ones
    included.
    """

    directory: Path
    environments: dict[str, Environment] = field(default_factory=dict)
    abstract: dict[str, Environment] = field(default_factory=dict)
    invalid: dict[str, list[CatalogueProblem]] = field(default_factory=dict)
    problems: list[CatalogueProblem] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        directory: Path,
        valid: Iterable[Environment],
        invalid: dict[str, list[CatalogueProblem]],
        problems: list[CatalogueProblem],
    ) -> Catalogue:
        """Return a catalogue with ``valid`` split into launchable and abstract, by title."""
        ordered = sorted(valid, key=lambda env: (env.title.casefold(), env.name))
        return cls(
            directory=directory,
            environments={env.name: env for env in ordered if not env.abstract},
            abstract={env.name: env for env in ordered if env.abstract},
            invalid=invalid,
            problems=problems,
        )

    def visible_to(self, groups: Iterable[str], instruments: Iterable[str]) -> list[Environment]:
        """Return the launchable environments these groups or instruments may use, by title."""
        groups, instruments = set(groups), set(instruments)
        return [env for env in self.environments.values() if env.visible_to(groups, instruments)]
