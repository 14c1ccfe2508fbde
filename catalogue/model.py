"""The schema of a catalogue entry: frozen pydantic models, unknown fields rejected.

:class:`Environment` is a resolved entry (inheritance applied). :class:`EnvironmentFile` is what
one YAML file may contain: the same fields plus ``remove_applications``, which only makes sense
before inheritance is applied. Checks that involve several fields (flavors against the GPU
policy, commands against the repositories) are in :meth:`Environment.consistency_issues`, so the
loader can skip them for a child file on its own and run them on the merged result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from daaas.catalogue.checks import Issue, consistency_issues
from daaas.catalogue.fields import (
    AnyText,
    AppIcon,
    Category,
    CvmfsPath,
    Flag,
    GpuPolicy,
    IconFile,
    Name,
    PositiveInt,
    Protocol,
    Repository,
    Text,
    duplicates,
)

DEFER_CHECKS = {"defer_checks": True}
"""Validation context that leaves :meth:`Environment.consistency_issues` to the caller."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Image(_Model):
    """The Glance image to boot: by exact ``name``, or the newest image carrying ``tag``."""

    name: Text | None = None
    tag: Text | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.name is None) == (self.tag is None):
            raise ValueError("expected exactly one of 'name' (a Glance image) or 'tag'")
        return self


class Flavors(_Model):
    """Flavors a user may choose: ``allowed`` lists all of them, ``gpu`` those with a GPU."""

    default: Text
    allowed: tuple[Text, ...] = Field(min_length=1)
    gpu: tuple[Text, ...] = ()


class Application(_Model):
    """A desktop launcher for a program on CVMFS."""

    name: Text
    command: CvmfsPath
    arguments: tuple[Text, ...] = ()
    icon: AppIcon
    category: Category
    terminal: Flag = False
    description: AnyText = ""


class Access(_Model):
    """Who may launch the environment: members of any group or users of any instrument.

    Both lists empty means everyone.
    """

    groups: tuple[Text, ...] = ()
    instruments: tuple[Text, ...] = ()


#: How a machine's life is extended: at once (``auto``), once an administrator approves
#: (``approval``), or not at all (``none``).
Extension = Literal["auto", "approval", "none"]


class LifetimeOverride(_Model):
    """Lifetime rules for machines of one ``flavor`` and/or users of one ``group``: each value
    given replaces the environment's (entries that apply are applied in order, later ones win).
    """

    flavor: Text | None = None
    group: Text | None = None
    initial_lifetime_hours: PositiveInt | None = None
    extension_hours: PositiveInt | None = None
    max_lifetime_hours: PositiveInt | None = None
    extension: Extension | None = None

    @model_validator(mode="after")
    def _names_someone(self) -> Self:
        if self.flavor is None and self.group is None:
            raise ValueError("expected 'flavor', 'group' or both: whom the override is for")
        return self


class Limits(_Model):
    """How long a machine may live, and how long it may sit idle before it is stopped.

    A machine starts with ``initial_lifetime_hours`` (default: the maximum); its owner may
    extend it ``extension_hours`` at a time, at once or after an administrator's approval
    (``extension``), up to ``max_lifetime_hours`` after its launch in all.
    """

    max_lifetime_hours: PositiveInt
    idle_timeout_minutes: PositiveInt
    initial_lifetime_hours: PositiveInt | None = None
    extension_hours: PositiveInt = 24
    extension: Extension = "auto"
    lifetime_overrides: tuple[LifetimeOverride, ...] = ()


class Environment(_Model):
    """A resolved, valid catalogue entry; ``abstract`` ones are bases, never launched.

    Validating data into one (``model_validate``, :meth:`from_snapshot`) raises
    :class:`pydantic.ValidationError` on a wrong, missing or unknown field, or on a
    consistency problem unless the context is :data:`DEFER_CHECKS`.
    """

    name: Name
    title: Text
    description: Text
    icon: IconFile
    abstract: Flag = False
    extends: Name | None = None
    image: Image
    flavors: Flavors
    gpu: GpuPolicy = "none"
    cvmfs_repositories: tuple[Repository, ...] = ()
    applications: tuple[Application, ...] = ()
    protocols: tuple[Protocol, ...] = Field(min_length=1)
    access: Access = Access()
    limits: Limits
    hpc_partitions: tuple[Text, ...] = ()

    @field_validator("cvmfs_repositories", "protocols", "hpc_partitions")
    @classmethod
    def _unique(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        if repeated := duplicates(list(values)):
            raise ValueError(f"expected each entry once; listed twice: {', '.join(repeated)}")
        return values

    @field_validator("applications")
    @classmethod
    def _unique_apps(cls, apps: tuple[Application, ...]) -> tuple[Application, ...]:
        if repeated := duplicates([app.name for app in apps]):
            raise ValueError(f"expected unique application names; repeated: {', '.join(repeated)}")
        return apps

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Self:
        if info.context and info.context.get("defer_checks"):  # see DEFER_CHECKS
            return self
        if issues := self.consistency_issues():
            raise ValueError("; ".join(f"{field}: {message}" for field, message in issues))
        return self

    def consistency_issues(self) -> list[Issue]:
        """Return the problems between fields (flavors, GPU policy, commands); [] if none."""
        return consistency_issues(self)

    def provides(self, path: str) -> bool:
        """Return True if ``path`` lies in one of this environment's CVMFS repositories."""
        return any(path.startswith(f"/cvmfs/{repo}/") for repo in self.cvmfs_repositories)

    def visible_to(self, groups: Iterable[str], instruments: Iterable[str]) -> bool:
        """Return True if the access lists are empty or share a group or instrument.

        Names are compared exactly (case matters).
        """
        if not self.access.groups and not self.access.instruments:
            return True
        return bool(set(groups) & set(self.access.groups)) or bool(
            set(instruments) & set(self.access.instruments)
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the resolved environment as JSON-serialisable data (lists, not tuples)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_snapshot(cls, data: Mapping[str, Any]) -> Environment:
        """Return the environment recorded by :meth:`to_dict` (a machine's stored snapshot).

        Fields are validated as in a catalogue file; the checks between fields are not run
        again, so a machine launched under an older rule still loads. Raises
        pydantic.ValidationError for data that is not an environment.
        """
        return cls.model_validate(dict(data), context=DEFER_CHECKS)


class EnvironmentFile(Environment):
    """What one YAML file may hold: an environment plus inherited applications to drop."""

    remove_applications: tuple[Text, ...] = ()
