"""What one application instance holds: settings, database, catalogue, identity, provider."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from daaas.catalogue import Catalogue
from daaas.portal.auth.backends import IdentityBackend
from daaas.portal.config import Settings
from daaas.portal.experiments.backends import ExperimentBackend
from daaas.portal.providers import Provider

EXTENSION_KEY = "daaas"


@dataclass
class Runtime:
    """Long-lived objects built once by create_app and shared by every request."""

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    catalogue: Catalogue
    identity: IdentityBackend
    provider: Provider
    experiments: ExperimentBackend


def runtime(app: Flask | None = None) -> Runtime:
    """Return the Runtime of ``app`` (default: the current application)."""
    target = app if app is not None else current_app
    value: Runtime = target.extensions[EXTENSION_KEY]
    return value
