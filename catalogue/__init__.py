"""The catalogue of analysis environments: one YAML file per environment, checked and resolved.

Typical use::

    from daaas.catalogue import load_catalogue

    cat = load_catalogue(Path("catalogue/environments"))
    for problem in cat.problems:        # never raises for a bad file: every problem is here
        log.warning("%s", problem)
    offered = cat.visible_to(user_groups, user_instruments)

See catalogue/README.md for the file format and the inheritance rules.
"""

from daaas.catalogue.collection import Catalogue
from daaas.catalogue.loader import DEFAULT_DIRECTORY, ICONS_DIRECTORY, load_catalogue
from daaas.catalogue.model import Access, Application, Environment, Flavors, Image, Limits
from daaas.catalogue.problems import CatalogueProblem

__all__ = [
    "DEFAULT_DIRECTORY",
    "ICONS_DIRECTORY",
    "Access",
    "Application",
    "Catalogue",
    "CatalogueProblem",
    "Environment",
    "Flavors",
    "Image",
    "Limits",
    "load_catalogue",
]
