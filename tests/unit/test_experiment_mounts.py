"""Experiment data mounts for cloud VMs, from the datasets' locations and the export rule."""

from __future__ import annotations

from daaas.contextualisation import Mount
from daaas.portal.config import Settings
from daaas.portal.machines.mounts import (
    ExportRule,
    exchange_mounts,
    experiment_mounts,
    export_rule,
)

RULE = ExportRule("nfs", "/archive/{instrument}/{cycle}",
                  "nfs.facility.example:/exports/{instrument}/{cycle}", ("vers=4.2", "sec=sys"))


def experiment(*locations: str, **extra: object) -> dict[str, object]:
    return {"id": 7, "visit_id": "RB1234", "facility": "ISIS", "instruments": ["MARI"],
            "data_path": "/archive/MARI/cycle_23_1/RB1234", "data_locations": list(locations),
            **extra}


def test_datasets_of_one_cycle_are_one_read_only_mount_at_their_common_folder() -> None:
    mounts = experiment_mounts(RULE, experiment("/archive/MARI/cycle_23_1/RB1234/run1",
                                                "/archive/MARI/cycle_23_1/RB1234/run2/"),
                               "/home/alice")
    assert mounts == (Mount(kind="nfs", read_only=True, purpose="experiment",
                            source="nfs.facility.example:/exports/MARI/cycle_23_1/RB1234",
                            target="/home/alice/experiment-RB1234",
                            options=("vers=4.2", "sec=sys"), label="experiment RB1234"),)
    assert "ro" in mounts[0].fstab_options.split(",")


def test_datasets_of_two_cycles_get_one_mount_each_named_by_the_cycle() -> None:
    mounts = experiment_mounts(RULE, experiment("/archive/MARI/cycle_23_1/RB1234",
                                                "/archive/MARI/cycle_23_2/RB1234/a"),
                               "/home/alice")
    assert [(m.source, m.target) for m in mounts] == [
        ("nfs.facility.example:/exports/MARI/cycle_23_1/RB1234",
         "/home/alice/experiment-RB1234-MARI-cycle_23_1"),
        ("nfs.facility.example:/exports/MARI/cycle_23_2/RB1234/a",
         "/home/alice/experiment-RB1234-MARI-cycle_23_2")]
    assert all(m.read_only for m in mounts)


def test_locations_outside_the_exports_or_unmountable_are_left_out() -> None:
    mounts = experiment_mounts(RULE, experiment("/scratch/RB1234", "/archive/MARI",
                                                "/archive/MARI/cycle 23/RB1234"), "/home/alice")
    assert mounts == ()


def test_without_dataset_locations_the_data_path_is_used() -> None:
    mounts = experiment_mounts(RULE, experiment(), "/home/bob")
    assert [m.source for m in mounts] == ["nfs.facility.example:/exports/MARI/cycle_23_1/RB1234"]


def test_the_export_may_use_the_experiments_own_fields_and_cephfs() -> None:
    rule = ExportRule("cephfs", "/ceph/{facility}/{year}",
                      "mon1,mon2:/volumes/{facility}/{year}/{visit_id}", ("name=data",))
    [mount] = experiment_mounts(rule, experiment("/ceph/ISIS/2026"), "/home/alice")
    assert mount.source == "mon1,mon2:/volumes/ISIS/2026/RB1234" and mount.kind == "cephfs"
    assert exchange_mounts([mount]) == [{
        "fstype": "ceph", "source": "mon1,mon2:/volumes/ISIS/2026/RB1234",
        "folder": "experiment-RB1234", "options": "ro,name=data",
        "label": "experiment RB1234"}]


def test_no_rule_or_no_experiment_means_no_mounts() -> None:
    assert experiment_mounts(None, experiment("/archive/MARI/c/RB1"), "/home/a") == ()
    assert experiment_mounts(RULE, None, "/home/a") == ()


def test_the_rule_comes_from_the_settings_only_when_complete() -> None:
    assert export_rule(Settings()) is None
    assert export_rule(Settings(experiment_export="nfs",
                                experiment_export_location="/archive/{instrument}")) is None
    rule = export_rule(Settings(experiment_export="nfs", experiment_export_location="/a/{x}",
                                experiment_export_source="s:/e/{x}",
                                experiment_export_options="vers=4.2, ro_cache=1 ,"))
    assert rule == ExportRule("nfs", "/a/{x}", "s:/e/{x}", ("vers=4.2", "ro_cache=1"))
