"""Choose the experiment backend from the settings."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from daaas.portal.config import Settings
from daaas.portal.experiments.backends import EmbeddedExperiments, ExperimentBackend


def experiment_backend(settings: Settings,
                       session_factory: sessionmaker[Session]) -> ExperimentBackend:
    """Return the backend ``experiments_backend`` names: the embedded ICAT-core tables, or a
    real ICAT server. Raises ConfigError for an ICAT without URL or usable credentials file."""
    if settings.experiments_backend == "icat":
        from daaas.portal.experiments.icat import IcatExperiments

        return IcatExperiments.from_settings(settings)
    return EmbeddedExperiments(session_factory)
