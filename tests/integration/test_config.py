"""Configuration: layers, unknown and ill-typed keys, masking, `daaas config show`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from daaas.portal import create_app
from daaas.portal.cli import main
from daaas.portal.config import ConfigError, load_settings, parse_group_map, parse_partitions


def test_defaults_are_the_embedded_mode() -> None:
    settings = load_settings(environ={})
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.identity_backend == "local"


def test_file_then_environment_then_override(tmp_path: Path) -> None:
    config = tmp_path / "daaas.toml"
    config.write_text('port = 9000\nhost = "127.0.0.2"\nlog_level = "DEBUG"\n')
    environ = {"DAAAS_CONFIG": str(config), "DAAAS_PORT": "9100"}
    settings = load_settings({"log_level": "ERROR"}, environ=environ)
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.2", 9100, "ERROR")


def test_unknown_key_in_file_names_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "daaas.toml"
    config.write_text("prot = 9000\n")
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"DAAAS_CONFIG": str(config)})
    assert "'prot'" in str(error.value) and str(config) in str(error.value)


def test_ill_typed_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(environ={"DAAAS_PORT": "eighty"})
    assert "DAAAS_PORT" in str(error.value) and "'port'" in str(error.value)


def test_unknown_environment_variable_is_named() -> None:
    with pytest.raises(ConfigError, match="DAAAS_DATABSE_URL"):
        load_settings(environ={"DAAAS_DATABSE_URL": "sqlite://"})


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "broken.toml"
    config.write_text("port = \n")
    with pytest.raises(ConfigError, match=r"broken\.toml"):
        load_settings(environ={"DAAAS_CONFIG": str(config)})


def test_create_app_refuses_unknown_key() -> None:
    with pytest.raises(ConfigError, match="'colour'"):
        create_app({"colour": "blue"})


def test_serve_refuses_unknown_key_in_file(tmp_path: Path) -> None:
    config = tmp_path / "daaas.toml"
    config.write_text(f'var_dir = "{tmp_path}"\nsecert_key = "x"\n')
    result = CliRunner().invoke(main, ["serve"], env={"DAAAS_CONFIG": str(config)})
    assert result.exit_code != 0
    assert "secert_key" in result.output and str(config) in result.output


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = {"DAAAS_SECRET_KEY": "very-secret-value",
           "DAAAS_DATABASE_URL": "postgresql+psycopg://portal:hunter2secret@db.example:5432/daaas",
           "DAAAS_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert "very-secret-value" not in result.output and "hunter2secret" not in result.output
    assert shown["secret_key"] == "***"
    assert shown["database_url"] == "postgresql+psycopg://***@db.example:5432/daaas"
    assert shown["var_dir"] == str(tmp_path)


def test_keystone_group_map_is_parsed_and_a_bad_rule_is_named() -> None:
    settings = load_settings(environ={
        "DAAAS_KEYSTONE_GROUP_MAP": "mx-*:member = mx-users, daaas={project}-{role}s"})
    assert parse_group_map(settings.keystone_group_map) == {"mx-*:member": "mx-users",
                                                            "daaas": "{project}-{role}s"}
    for rule, problem in (("mx-users", "is not 'project=group'"), (":member=x", "is not"),
                          ("mx={visit}", "only {project} and {role}"), ("mx=", "empty group")):
        with pytest.raises(ConfigError, match="DAAAS_KEYSTONE_GROUP_MAP") as error:
            load_settings(environ={"DAAAS_KEYSTONE_GROUP_MAP": rule})
        assert problem in str(error.value), (rule, str(error.value))


def test_hpc_settings_are_checked_without_the_hpc_package() -> None:
    assert parse_partitions(" debug, long ") == ("debug", "long")
    with pytest.raises(ConfigError, match=r"'hpc_partitions'.*'de bug' is not a partition"):
        load_settings({"hpc_partitions": "de bug"}, environ={})
    with pytest.raises(ConfigError, match=r"'hpc_work_dir'.*only placeholder"):
        load_settings({"hpc_work_dir": "/scratch/{group}"}, environ={})


def test_every_secret_setting_is_masked_whole(tmp_path: Path) -> None:
    """A setting named like a secret (``*secret*``, ``*password*``; not a ``*_file`` naming
    where one is kept) is shown as ``***`` whatever its value, so a new one cannot be
    printed by `daaas config show` by forgetting it in SECRET_KEYS."""
    import re

    from daaas.portal.config import Settings

    names = [name for name, field in Settings.model_fields.items()
             if field.annotation is str and re.search(r"secret|passw", name)
             and not name.endswith("_file")]
    assert "secret_key" in names
    settings = Settings.model_validate({"var_dir": str(tmp_path),
                                        **{name: "plain-s3cret-value" for name in names}})
    shown = settings.masked()
    assert {name: shown[name] for name in names} == {name: "***" for name in names}
    assert "plain-s3cret-value" not in json.dumps(shown)
