"""One way to build a backend from settings, for every seam.

A seam (compute provider, identity, storage, experiments, HPC) has one :class:`Registry`. The
registry maps a short name from the settings (``provider = "openstack"``) to a backend class,
given as a ``"module:Class"`` string and imported only when chosen, so a feature module is never
imported by the layer below it and an unused backend's dependencies are never loaded. A setting
may also name any ``module:Class`` directly (a facility's own backend).

Every backend class builds itself with a ``from_settings(settings)`` classmethod; the registry
never knows a backend's options. Test doubles are registered from the tests
(:meth:`Registry.register`), never here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

from daaas.portal.errors import PortalError

if TYPE_CHECKING:
    from daaas.portal.config import Settings


class BackendUnavailable(PortalError):
    """The configured backend cannot be found, imported or built; the message names it."""

    status_code = 503
    code = "backend_unavailable"


class FromSettings(Protocol):
    """What every backend class offers: build an instance from the portal's settings."""

    @classmethod
    def from_settings(cls, settings: Settings) -> object:
        """Return a ready backend; raises ValueError or TypeError for unusable settings."""
        ...


B = TypeVar("B")


class Registry(Generic[B]):
    """The backends of one seam, by name; builds the one the settings choose."""

    def __init__(self, seam: str, setting: str, base: type, builtins: dict[str, str]) -> None:
        """``seam`` names the seam in messages, ``setting`` is the Settings field holding the
        chosen name, ``base`` the class every backend must subclass, ``builtins`` maps names to
        ``"module:Class"`` paths."""
        self.seam = seam
        self.setting = setting
        self.base = base
        self._paths = dict(builtins)
        self._classes: dict[str, type[B]] = {}

    def names(self) -> list[str]:
        """Return every registered name, sorted."""
        return sorted(set(self._paths) | set(self._classes))

    def register(self, name: str, cls: type[B]) -> None:
        """Make ``cls`` available as ``name`` (tests and plugins); replaces an earlier one."""
        self._classes[name] = cls

    def unregister(self, name: str) -> None:
        """Forget a class added with :meth:`register`; does nothing for an unknown name."""
        self._classes.pop(name, None)

    @contextmanager
    def registered(self, name: str, cls: type[B]) -> Iterator[None]:
        """Register ``cls`` as ``name`` for the duration of a ``with`` block."""
        self.register(name, cls)
        try:
            yield
        finally:
            self.unregister(name)

    def resolve(self, name: str) -> type[B]:
        """Return the class for a registered name or a ``module:Class`` path.

        Raises BackendUnavailable for an unknown name, a path that does not import, or a class
        that is not a subclass of the seam's base class.
        """
        if name in self._classes:
            return self._classes[name]
        path = self._paths.get(name, name if ":" in name else None)
        if path is None:
            raise BackendUnavailable(
                f"Unknown {self.seam} {name!r} in the setting {self.setting!r}; choose one of: "
                f"{', '.join(self.names())}, or module:Class.")
        module_name, _, class_name = path.partition(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError) as exc:
            raise BackendUnavailable(
                f"The {self.seam} {name!r} cannot be imported: {exc}.") from exc
        if not (isinstance(cls, type) and issubclass(cls, self.base)):
            raise BackendUnavailable(f"The {self.seam} {name!r} is not a subclass of "
                                     f"{self.base.__module__}.{self.base.__qualname__}.")
        return cast("type[B]", cls)

    def build(self, settings: Settings, name: str | None = None) -> B:
        """Return the backend the settings choose (or ``name``), built by its from_settings.

        Raises BackendUnavailable when it cannot be resolved or its settings are unusable.
        """
        chosen = name if name is not None else str(getattr(settings, self.setting))
        cls = self.resolve(chosen)
        try:
            backend = cast(FromSettings, cls).from_settings(settings)
        except (TypeError, ValueError) as exc:
            raise BackendUnavailable(
                f"The {self.seam} {chosen!r} cannot be configured: {exc}") from exc
        return cast(B, backend)
