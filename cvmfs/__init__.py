"""CVMFS client configuration: settings with defaults, templates and bundled public keys.

:mod:`daaas.cvmfs.settings` holds the validated client settings a site configures;
:mod:`daaas.cvmfs.render` turns them and a list of repositories into the files a CVMFS client reads
(``/etc/cvmfs/default.local``, ``/etc/cvmfs/config.d/<repo>.conf``, public keys under
``/etc/cvmfs/keys/<domain>/``).
"""

from daaas.cvmfs.render import client_files
from daaas.cvmfs.settings import CvmfsClientSettings, repository_domain, validate_repository_name

__all__ = ["CvmfsClientSettings", "client_files", "repository_domain", "validate_repository_name"]
