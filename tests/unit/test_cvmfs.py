"""CVMFS: the registry as data, and the client configuration checked against golden files.

The golden files under tests/golden/cvmfs/ were reviewed against the CVMFS documentation
(cvmfs.readthedocs.io, "Client Configuration": the layout of /etc/cvmfs with *.local files
for local settings, default.local, domain.d/<domain>.local, config.d/<repository>.local;
CVMFS_HTTP_PROXY groups separated by ';' for fail-over and proxies within a group by '|' for
load balancing, DIRECT last; CVMFS_SERVER_URL a ';'-separated list with @fqrn@;
CVMFS_KEYS_DIR per domain; CVMFS_QUOTA_LIMIT in MB). Regenerate with
DAAAS_TEST_UPDATE_GOLDEN=1 only after reviewing the difference against those documents.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from daaas.cvmfs import CvmfsClientSettings, client_files
from daaas.cvmfs.registry import RegistryError, load_registry
from tests.support.paths import ROOT

GOLDEN = ROOT / "tests" / "golden" / "cvmfs"
PEM = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAexample\n" \
      "-----END PUBLIC KEY-----"


def two_domain_settings() -> CvmfsClientSettings:
    return CvmfsClientSettings(
        http_proxy="http://squid1.site.example:3128|http://squid2.site.example:3128;"
                   "http://squid-backup.site.example:3128;DIRECT",
        quota_limit_mb=20000,
        server_urls={
            "cern.ch": ("http://cvmfs-stratum-one.cern.ch/cvmfs/@fqrn@",
                        "http://cvmfs-s1fnal.opensciencegrid.org/cvmfs/@fqrn@"),
            "stfc.ac.uk": ("http://cvmfs-s1.gridpp.rl.ac.uk/cvmfs/@fqrn@",),
            "ccp4.stfc.ac.uk": ("http://ccp4-s1.stfc.ac.uk/cvmfs/@fqrn@",),
        },
        public_keys={"cern.ch": {"cern.ch.pub": PEM}, "stfc.ac.uk": {"stfc.ac.uk.pub": PEM}},
    )


def test_two_repositories_in_two_domains_with_failover_proxies_match_golden_files() -> None:
    files = dict(client_files(two_domain_settings(), ["sft.cern.ch", "ccp4.stfc.ac.uk"]))
    expected_paths = {
        "/etc/cvmfs/default.local",
        "/etc/cvmfs/domain.d/cern.ch.local",
        "/etc/cvmfs/domain.d/stfc.ac.uk.local",
        "/etc/cvmfs/config.d/ccp4.stfc.ac.uk.local",
        "/etc/cvmfs/keys/cern.ch/cern.ch.pub",
        "/etc/cvmfs/keys/stfc.ac.uk/stfc.ac.uk.pub",
    }
    assert set(files) == expected_paths
    for path, content in files.items():
        golden = GOLDEN / path.removeprefix("/etc/cvmfs/").replace("/", "__")
        if os.environ.get("DAAAS_TEST_UPDATE_GOLDEN"):
            golden.write_text(content)
        assert content == golden.read_text(), f"{path} differs from {golden}"


def test_shipped_registry_covers_the_demo_catalogue() -> None:
    from daaas.catalogue import load_catalogue
    from daaas.portal.config import DEFAULT_CATALOGUE_DIR

    registry = load_registry()
    catalogue = load_catalogue(Path(DEFAULT_CATALOGUE_DIR), repositories=registry.repositories)
    assert catalogue.problems == []
    assert registry.repositories["sft.cern.ch"].server_urls[0].endswith("/cvmfs/@fqrn@")


def test_catalogue_entry_with_unknown_repository_is_invalid(tmp_path: Path) -> None:
    from daaas.catalogue import load_catalogue

    source = (ROOT / "catalogue" / "environments" / "base-desktop.yaml").read_text()
    (tmp_path / "base-desktop.yaml").write_text(source.replace(
        "  - desktop.daaas.ac.uk\n", "  - desktop.daaas.ac.uk\n  - secret.unknown.org\n"))
    catalogue = load_catalogue(tmp_path, repositories=load_registry().repositories)
    problems = [str(p) for p in catalogue.problems]
    assert len(problems) == 1 and "cvmfs_repositories[secret.unknown.org]" in problems[0]
    assert "registry" in problems[0]


def test_broken_registry_names_file_and_field(tmp_path: Path) -> None:
    path = tmp_path / "registry.yaml"
    path.write_text("domains: {}\nrepositories:\n  - name: Not A Name\n")
    with pytest.raises(RegistryError, match=r"registry\.yaml: field 'repositories\[0\]\.name'"):
        load_registry(path)
    path.write_text("domains: {}\nrepositories:\n  - name: a.example.org\n")
    with pytest.raises(RegistryError, match="server_urls and public_keys"):
        load_registry(path)
