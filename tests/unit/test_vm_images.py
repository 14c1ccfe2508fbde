"""Image recipes: element chains mirror the catalogue's extends, one package list per element."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from daaas.catalogue.loader import DEFAULT_DIRECTORY, load_catalogue
from daaas.portal.cli import main
from daaas.vm_images.build import BuildError, hook_script, mmdebstrap_command, rootfs_plan
from daaas.vm_images.recipe import (
    ELEMENTS_DIR,
    RecipeError,
    element_chain,
    environment_chain,
    external_elements,
    load_elements,
    packages,
)
from tests.support.paths import ROOT
from tests.vm.harness import image_chain

CATALOGUE = load_catalogue(DEFAULT_DIRECTORY)
ELEMENTS = load_elements()
#: What IMAGE_REQUIREMENTS.md asks of a base desktop image (Debian names).
REQUIRED = ["cloud-init", "python3", "tigervnc-standalone-server", "tigervnc-tools", "xfce4",
            "xfce4-terminal", "dbus-x11", "xrdp", "xorgxrdp", "ssl-cert", "openssh-server",
            "nfs-common", "ceph-common", "autofs", "fuse3", "slurm-client", "xdg-utils"]


def names(chain: list[object]) -> list[str]:
    return [element.name for element in chain]  # type: ignore[attr-defined]


@pytest.mark.parametrize("environment", sorted({*CATALOGUE.environments, *CATALOGUE.abstract}))
def test_every_environment_has_an_element_mirroring_extends(environment: str) -> None:
    chain = environment_chain(CATALOGUE, environment, ELEMENTS)
    env = CATALOGUE.environments.get(environment) or CATALOGUE.abstract[environment]
    assert chain[-1].name == f"daaas-{environment}"
    if env.extends:
        assert f"daaas-{env.extends}" in chain[-1].deps
        parent = environment_chain(CATALOGUE, env.extends, ELEMENTS)
        assert names(chain)[:len(parent)] == names(parent)  # the parent's chain comes first


def test_chains_put_dependencies_first_and_name_dib_elements() -> None:
    assert names(environment_chain(CATALOGUE, "ccp4", ELEMENTS)) == [
        "daaas-vm-base", "daaas-vnc-desktop", "daaas-vm-access", "daaas-base-desktop",
        "daaas-ccp4"]
    assert names(environment_chain(CATALOGUE, "tomography-gpu", ELEMENTS)) == [
        "daaas-vm-base", "daaas-vnc-desktop", "daaas-vm-access", "daaas-base-desktop",
        "daaas-gpu", "daaas-tomography-gpu"]
    chain = environment_chain(CATALOGUE, "dawn", ELEMENTS)
    assert external_elements(chain) == ["vm", "debian-minimal", "cloud-init-datasources",
                                        "package-installs"]


def test_package_union_is_the_elements_lists_without_duplicates() -> None:
    base = packages(environment_chain(CATALOGUE, "base-desktop", ELEMENTS))
    ccp4 = packages(environment_chain(CATALOGUE, "ccp4", ELEMENTS))
    assert len(ccp4) == len(set(ccp4))
    assert ccp4[:len(base)] == base and "libglu1-mesa" in ccp4
    assert "firefox-esr" in packages(environment_chain(CATALOGUE, "jupyter-python", ELEMENTS))
    assert {"nvidia-driver", "virtualgl"} <= set(
        packages(environment_chain(CATALOGUE, "tomography-gpu", ELEMENTS)))
    assert "nvidia-driver" not in ccp4


def test_base_desktop_has_what_image_requirements_asks_for() -> None:
    requirements = (ROOT / "contextualisation" / "IMAGE_REQUIREMENTS.md").read_text()
    base = set(packages(environment_chain(CATALOGUE, "base-desktop", ELEMENTS)))
    for package in REQUIRED:
        assert package in requirements, package
        assert package in base, package


def test_cvmfs_comes_only_from_the_sites_source_when_asked() -> None:
    chain = environment_chain(CATALOGUE, "base-desktop", ELEMENTS)
    assert "cvmfs" not in packages(chain)
    assert {"cvmfs", "cvmfs-config-default"} <= set(packages(chain, {"DIB_DAAAS_CVMFS": "1"}))


def test_vm_test_image_is_the_light_desktop_with_the_ways_in_real_images_have() -> None:
    chain = image_chain()
    assert names(chain) == ["daaas-vm-base", "daaas-vnc-desktop", "daaas-vm-access"]
    light = packages(chain)
    assert {"cloud-init", "python3", "tigervnc-standalone-server", "xterm", "twm"} <= set(light)
    # what the tier checks comes from the element every desktop image has, not a test list
    access = set(packages(element_chain("daaas-vm-access", ELEMENTS)))
    assert {"xrdp", "python3-cryptography", "nfs-common", "openssh-server"} <= access
    base = names(environment_chain(CATALOGUE, "base-desktop", ELEMENTS))
    assert "daaas-vm-access" in base
    assert "xfce4" not in light and "xorgxrdp" not in light  # the light session needs neither
    hooks = hook_script(rootfs_plan(chain))
    assert "75-daaas-rdp-sign-in" in hooks and "85-daaas-no-boot-work" in hooks


def _element(root: Path, name: str, deps: str, packages_yaml: str) -> None:
    (root / name).mkdir(parents=True)
    (root / name / "element-deps").write_text(deps)
    (root / name / "package-installs.yaml").write_text(packages_yaml)


def test_broken_mirror_and_unset_when_variable_are_named(tmp_path: Path) -> None:
    _element(tmp_path, "daaas-base-desktop", "", "xterm:\n")
    _element(tmp_path, "daaas-ccp4", "daaas-vm-base\n", "coot:\n  when: DIB_NOT_SET = 1\n")
    elements = load_elements(tmp_path)
    with pytest.raises(RecipeError, match="must name daaas-base-desktop"):
        environment_chain(CATALOGUE, "ccp4", elements)
    with pytest.raises(RecipeError, match="no element 'daaas-vm-base'"):
        element_chain("daaas-ccp4", elements)
    (tmp_path / "daaas-ccp4" / "element-deps").write_text("daaas-base-desktop\n")
    chain = environment_chain(CATALOGUE, "ccp4", load_elements(tmp_path))
    with pytest.raises(RecipeError, match="DIB_NOT_SET, which is not set"):
        packages(chain)
    assert packages(chain, {"DIB_NOT_SET": "0"}) == ["xterm"]


def test_rootfs_path_refuses_what_needs_a_sites_package_source() -> None:
    with pytest.raises(BuildError, match="daaas-gpu"):
        rootfs_plan(environment_chain(CATALOGUE, "tomography-gpu", ELEMENTS))
    with pytest.raises(BuildError, match="DIB_DAAAS_CVMFS=1"):
        rootfs_plan(environment_chain(CATALOGUE, "ccp4", ELEMENTS), {"DIB_DAAAS_CVMFS": "1"})


def test_rootfs_hook_runs_the_elements_hooks_in_dib_order(tmp_path: Path) -> None:
    plan = rootfs_plan(environment_chain(CATALOGUE, "base-desktop", ELEMENTS),
                       kernel_modules="/lib/modules/6.1.0-99-cloud-amd64")
    script = hook_script(plan)
    install = [line for line in script.splitlines() if line.startswith('chroot "$1"')]
    ran = [line.rsplit("/", 1)[1] for line in install]
    phases = [line.rsplit("/", 2)[1] for line in install]
    split = phases.index("post-install.d")
    assert set(phases[:split]) == {"install.d"} and set(phases[split:]) == {"post-install.d"}
    assert ran[:split] == sorted(ran[:split]) and ran[split:] == sorted(ran[split:])
    assert "50-daaas-agent" in ran[0] and "60-daaas-light-session" in ran
    assert "50-daaas-agent" in script.split('chroot "$1"')[0]  # extra-data.d on the host first
    assert "cp -a /lib/modules/6.1.0-99-cloud-amd64" in script
    command = mmdebstrap_command(plan, tmp_path / "root", tmp_path / "hook.sh")
    assert f"--include={','.join(plan.packages)}" in command and "--variant=minbase" in command


def test_element_scripts_are_executable_bash() -> None:
    for script in ELEMENTS_DIR.glob("*/*.d/*"):
        if script.parent.name == "environment.d":
            continue
        assert script.stat().st_mode & 0o111, f"{script} is not executable"
        subprocess.run(["bash", "-n", str(script)], check=True)


def test_images_recipe_command_prints_chain_and_packages() -> None:
    result = CliRunner().invoke(main, ["images", "recipe", "mantid"])
    assert result.exit_code == 0, result.output
    assert "daaas-base-desktop daaas-mantid" in result.output
    assert "libxcb-xinerama0" in result.output
    missing = CliRunner().invoke(main, ["images", "recipe", "no-such-env"])
    assert missing.exit_code == 1 and "no valid environment 'no-such-env'" in missing.output
