"""CVMFS client configuration: settings with defaults, templates and bundled public keys.

:mod:`cvmfs.settings` holds the validated client settings a site configures;
:mod:`cvmfs.render` turns them and a list of repositories into the files a CVMFS client reads
(``/etc/cvmfs/default.local``, ``/etc/cvmfs/config.d/<repo>.conf``, public keys under
``/etc/cvmfs/keys/<domain>/``).
"""

from cvmfs.render import client_files
from cvmfs.settings import CvmfsClientSettings, repository_domain, validate_repository_name

__all__ = ["CvmfsClientSettings", "client_files", "repository_domain", "validate_repository_name"]
