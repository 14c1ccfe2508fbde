"""daaas: Data-Analysis-as-a-Service for research facilities.

One import namespace for the whole project. The subpackages are the checkout's top-level
folders (``portal/``, ``catalogue/``, ``contextualisation/``, ``cvmfs/``, ``vm_images/``),
reached through the symbolic links in this folder; the wheel installs them as real folders
under ``daaas/``, so nothing generic lands at the top level of ``site-packages``.
"""

from importlib.resources import files
from pathlib import Path


def package_path(package: str, *parts: str) -> Path:
    """Return the real filesystem path of a data file or folder shipped inside ``package``.

    ``package`` is a dotted name such as ``"daaas.cvmfs"``; the answer points into the
    installed package (or the checkout), found through :mod:`importlib.resources`, never by
    ``__file__`` arithmetic. Raises FileNotFoundError when the package is not on a filesystem
    (a zipped install), because templates, migrations and the guest agent need real files.
    """
    root = files(package)
    if not isinstance(root, Path):
        raise FileNotFoundError(f"{package} is not installed as files on disk; "
                                "install the daaas wheel unzipped (pip does so)")
    return root.joinpath(*parts)
