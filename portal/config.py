"""One settings object for the whole portal.

Precedence, lowest first: the defaults below (the embedded mode), a TOML file named by the
``DAAAS_CONFIG`` environment variable, environment variables ``DAAAS_<KEY>`` (upper case), and
finally ``config_override`` passed to :func:`daaas.portal.app.create_app`. An unknown or ill-typed
key
stops start-up with a :class:`ConfigError` naming the key and where it came from.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from daaas import package_path

DEFAULT_CATALOGUE_DIR = str(package_path("daaas.catalogue", "environments"))
DEFAULT_JOB_TEMPLATES_DIR = str(package_path("daaas.portal", "hpc", "job_templates"))
#: Settings shown only as '***' by ``config show``; every other text is masked by
#: :func:`mask_secrets` (passwords in URLs and in secret-looking parameters).
SECRET_KEYS = {"secret_key", "oidc_client_secret", "smtp_password", "metrics_token"}
#: A URL up to white space or the next URL (``http://a|http://b``, CVMFS's proxy lists).
_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://(\S*?)(?=\s|[A-Za-z][A-Za-z0-9+.-]*://|$)")
_SECRET_PARAM_RE = re.compile(
    r"(?i)(?<![^?&;#])([^=&;#]*(?:passw|pwd|secret|token|key|credential|auth|sig)[^=&;#]*)"
    r"=([^&;#]*)")
ENV_PREFIX = "DAAAS_"
_PARTITION_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SOFTWARE_ROOT_RE = re.compile(r"^/[A-Za-z0-9._/+-]*$")
#: The flavours of the shipped catalogue, described as a typical OpenStack site has them.
DEFAULT_FLAVOR_SIZES = ("m1.medium: 2 cores, 8 GiB; m1.large: 4 cores, 16 GiB; "
                        "m1.xlarge: 8 cores, 32 GiB; m1.2xlarge: 16 cores, 64 GiB; "
                        "g1.l40s-1: 8 cores, 64 GiB, 1 NVIDIA L40S; "
                        "g1.a100-1: 8 cores, 64 GiB, 1 NVIDIA A100; "
                        "g1.a100-2: 16 cores, 128 GiB, 2 NVIDIA A100")
_CORES_RE = re.compile(r"^(\d+)\s+cores?$")
_MEMORY_RE = re.compile(r"^(\d+(?:\.\d+)?)\s+GiB$")
_GPUS_RE = re.compile(r"^(\d+)\s+(\S.*)$")
_FLAVOR_RE = re.compile(r"^[A-Za-z0-9_.:-]+$")


class ConfigError(Exception):
    """Configuration that cannot be used; the message names the key and its source."""


class Settings(BaseModel):
    """The effective configuration. Every field is documented in docs/admin.md."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    var_dir: str = Field("var", description="Folder for the embedded database, sessions, storage.")
    database_url: str = Field("", description="SQLAlchemy URL; empty: SQLite under var_dir.")
    secret_key: str = Field("", description="Signs session cookies; empty: generated in var_dir.")
    host: str = Field("127.0.0.1", description="Address the portal listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port the portal listens on.")
    public_url: str = Field("", description="URL users reach the portal at; empty: from host/port.")
    catalogue_dir: str = Field(DEFAULT_CATALOGUE_DIR, description="Folder of environment YAML.")
    cvmfs_registry: str = Field("", description="CVMFS registry YAML; empty: the shipped one.")
    cvmfs_http_proxy: str = Field("DIRECT", description="CVMFS_HTTP_PROXY for machines.")
    cvmfs_mount: Literal["autofs", "fstab"] = Field("autofs", description="How /cvmfs mounts.")
    cvmfs_quota_mb: int = Field(10000, ge=1000, description="CVMFS cache size on machines.")
    storage_quota_gb: int = Field(100, ge=1, description="Storage quota per user (GiB).")
    # My Data and WebDAV (portal/storage)
    webdav_enabled: bool = Field(True, description="Serve users' storage over WebDAV at /dav/.")
    # Persistent user storage backends
    storage_backend: str = Field(
        "local", description="User storage: local (folder here), nfs (NFS/CephFS export), "
        "manila (a share per user), or module:Class.")
    storage_export: str = Field("", description="nfs: machines' mount source with {username}.")
    local_storage_export: str = Field(
        "", description="local: how cloud VMs mount this host's export of var_dir/storage/"
        "<user>, ending in /{username}: 10.0.2.100:/storage/{username}; empty: not exported.")
    storage_fs_type: Literal["nfs", "ceph"] = Field("nfs", description="nfs: the export's kind.")
    storage_mount_options: str = Field("", description="Extra mount options, comma-separated.")
    storage_portal_root_template: str = Field(
        "", description="Where this host sees a user's storage, with {username}.")
    storage_ceph_client: str = Field("", description="nfs+ceph: cephx user machines mount as.")
    storage_ceph_key_file: str = Field("", description="nfs+ceph: file with that user's key.")
    storage_manila_cloud: str = Field("", description="clouds.yaml entry; empty: openstack_cloud.")
    storage_manila_protocol: Literal["CEPHFS", "NFS"] = Field(
        "CEPHFS", description="Protocol of the per-user Manila shares.")
    storage_manila_share_type: str = Field("", description="Manila share type; empty: default.")
    storage_manila_share_network: str = Field("", description="Share network id, if needed.")
    storage_manila_timeout_seconds: int = Field(300, ge=10, description="Wait for a new share.")
    bootstrap_token_ttl_minutes: int = Field(120, ge=5, description="VM bootstrap token life.")
    experiment_data_path_template: str = Field(
        "/data/{instrument}/{year}/{visit_id}",
        description="Where an experiment's data is when its datasets name no location.")
    experiment_export: Literal["", "nfs", "cephfs"] = Field(
        "", description="How cloud VMs mount experiment data: nfs, cephfs; empty: not at all.")
    experiment_export_location: str = Field(
        "", description="Template of the data folder an export covers: /archive/{instrument}/"
        "{cycle}; each {field} matches one folder of a dataset's location.")
    experiment_export_source: str = Field(
        "", description="Template of that export: nfs.example.org:/exports/{instrument}/{cycle}.")
    experiment_export_options: str = Field(
        "", description="Comma-separated mount options for experiment data: vers=4.2,sec=krb5.")
    # ICAT experiment catalogue
    experiments_backend: str = Field(
        "embedded", description="Experiment metadata: embedded tables, icat, or module:Class.")
    icat_url: str = Field("", description="ICAT server URL (without /icat) for the icat backend.")
    icat_credentials_file: str = Field("", description="TOML/JSON file (mode 600) with the "
                                       "ICAT reader account's plugin, username, password.")
    icat_user_prefix: str = Field("", description="Prefix of ICAT user names, e.g. 'ldap/'.")
    icat_timeout_seconds: float = Field(10.0, gt=0, description="ICAT request timeout.")
    icat_cache_seconds: float = Field(60.0, ge=0, description="Keep a user's ICAT answer.")
    icat_refresh_seconds: float = Field(300.0, ge=10, le=86400, description="How often the "
                                        "worker asks ICAT again for an active user's "
                                        "experiments.")
    icat_verify_tls: bool = Field(True, description="Check ICAT's TLS certificate.")
    identity_backend: str = Field(
        "local", description="Who checks passwords: local, keystone, or module:Class.")
    keystone_url: str = Field("", description="Keystone v3 URL for keystone sign-in.")
    keystone_user_domain: str = Field("Default", description="Keystone domain of users.")
    keystone_admin_role: str = Field("daaas-admin", description="Keystone role = portal admin.")
    keystone_group_map: str = Field(
        "", description="pattern=group, ...: 'project' or 'project:role' patterns to portal "
        "groups ({project}, {role} allowed); empty: project names are the groups.")
    keystone_cloud: str = Field("", description="clouds.yaml entry of the portal's Keystone "
                                "reader (role assignments); empty: the user's scoped tokens.")
    # OpenID Connect sign-in (identity_backend = "oidc", portal/auth/oidc.py)
    oidc_issuer: str = Field("", description="OpenID provider's issuer URL (its "
                             "/.well-known/openid-configuration is read).")
    oidc_client_id: str = Field("", description="The portal's client id at the provider.")
    oidc_client_secret: str = Field("", description="The client's secret (confidential "
                                    "client); shown as *** by `config show`, never logged.")
    oidc_scopes: str = Field("openid profile email", description="Scopes asked for, "
                             "space-separated (openid is always added).")
    oidc_provider_name: str = Field("your institution", description="Shown on the button: "
                                    "'Sign in with <name>'.")
    oidc_username_claim: str = Field("preferred_username", description="Claim naming the "
                                     "portal (POSIX) user name, taken at the first sign-in.")
    oidc_display_name_claim: str = Field("name", description="Claim with the display name.")
    oidc_email_claim: str = Field("email", description="Claim with the e-mail address.")
    oidc_groups_claim: str = Field("groups", description="Claim with the groups (a list); "
                                   "empty: none. Updated at every sign-in.")
    oidc_instruments_claim: str = Field("", description="Claim with the instruments (a list); "
                                        "empty: not mapped. Updated at every sign-in.")
    oidc_uid_claim: str = Field("", description="Claim with the POSIX uid; empty: allocated "
                                "from first_uid at the first sign-in and kept per subject.")
    oidc_gid_claim: str = Field("", description="Claim with the POSIX gid; empty: the uid.")
    oidc_admin_group: str = Field("", description="Members of this group (groups claim) are "
                                  "portal administrators; empty: none through OIDC.")
    oidc_local_sign_in: bool = Field(True, description="Also offer the local user-name and "
                                     "password form (break-glass administrators).")
    oidc_timeout_seconds: float = Field(10.0, gt=0, description="Requests to the provider.")
    session_cookie_secure: bool = Field(False, description="Cookie over HTTPS only (always "
                                        "when public_url is https).")
    session_lifetime_minutes: int = Field(480, ge=5, description="A sign-in ends this long "
                                          "after it began (absolute).")
    session_idle_minutes: int = Field(60, ge=1, description="A sign-in ends after this long "
                                      "without a request.")
    trusted_proxies: int = Field(0, ge=0, le=5, description="Reverse proxies in front whose "
                                 "X-Forwarded-For/-Proto/-Host/-Port are believed.")
    metrics_token: str = Field("", description="Bearer token Prometheus sends to /metrics; "
                               "empty: no token asked (then metrics_networks must be set).")
    metrics_networks: str = Field("", description="Comma-separated CIDRs allowed to read "
                                  "/metrics; empty: any (then metrics_token must be set). "
                                  "With neither, /metrics answers 404.")
    login_max_failures: int = Field(5, ge=1, description="Failed sign-ins per account and "
                                    "address before the backoff starts.")
    login_backoff_seconds: int = Field(30, ge=1, description="First wait after that; doubles "
                                       "with each further failure.")
    login_backoff_max_seconds: int = Field(900, ge=1, description="Longest backoff wait.")
    login_address_max_failures: int = Field(50, ge=1, description="Failed sign-ins from one "
                                            "address, all accounts, per window.")
    login_failure_window_seconds: int = Field(3600, ge=1, description="Failures older than "
                                              "this are forgotten.")
    api_token_lifetime_days: int = Field(90, ge=1, description="Default life of an API token.")
    api_token_max_lifetime_days: int = Field(365, ge=1, le=3650, description="Longest life "
                                             "a user may give an API token.")
    api_tokens_per_user: int = Field(20, ge=1, le=1000, description="API tokens one user may "
                                     "hold at once (expired ones do not count).")
    first_uid: int = Field(20000, ge=1000, description="First POSIX uid/gid for local accounts.")
    demo_data: bool = Field(True, description="Create demo users on an empty embedded start.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Logging threshold.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines: text, or one JSON object per line (timestamp, level, "
        "logger, message, request id, user, machine id) for ELK/Loki.")
    audit_retention_days: int = Field(
        365, ge=0, le=36500, description="`daaas audit prune` deletes audit events older than "
        "this; 0: keep them forever.")
    provider: str = Field("local", description="Compute provider: local (desktops on this host).")
    local_max_sessions: int = Field(8, ge=1, description="Local provider: desktops at once.")
    local_single_user_mode: bool = Field(
        False, description="Local provider, portal not running as root: run every desktop as "
        "the portal's own account (no isolation; a one-person workstation only). Off: such a "
        "portal refuses local launches.")
    local_software_dir: str = Field(
        "/var/lib/daaas/cvmfs", description="Local provider, portal running as root: where "
        "`daaas serve` builds the software source (cvmfs/local-source.yaml) it shows read-only "
        "at /cvmfs/<repository>; empty: build nothing.")
    software_roots: str = Field(
        "", description="Local provider: folders laid out like /cvmfs (<root>/<repository>/…), "
        "':'-separated, where a launcher's /cvmfs/<repository>/<path> is found when no "
        "/cvmfs/<repository> is on this host (a portal not running as root cannot mount one; "
        "it also searches local_software_dir, last).")
    max_machines_per_user: int = Field(3, ge=1, description="Machines one user may have.")
    quotas: str = Field("", description="Quotas of users and groups (admins edit them on "
                        "/admin/quotas too): 'group NAME: machines=6, vcpus=64, memory_gib=512, "
                        "storage_gib=500, gpu:NVIDIA A100=2; user NAME: ...'.")
    quota_policy: Literal["most_generous", "sum"] = Field(
        "most_generous", description="A user in several groups with quotas: the most generous "
        "group's quota applies, or the sum of them.")
    flavor_sizes: str = Field(DEFAULT_FLAVOR_SIZES, description="What each flavor is, shown "
                              "on the cards: 'name: N cores, M GiB[, K GPU model]; ...'.")
    warm_pools: str = Field(
        "", description="Warm pools: machines booted ahead of any user, claimed by a launch "
        "of the same environment and flavor: 'ENVIRONMENT/FLAVOR=N; ...' (FLAVOR omitted: "
        "the environment's default). Each pooled machine holds a session slot (a GPU for a "
        "GPU flavor) while it waits.")
    warm_pool_schedules: str = Field(
        "", description="Warm pools: sizes by day and time (in facility_timezone), in force "
        "instead of a pool's size during their hours: 'ENVIRONMENT[/FLAVOR]: DAYS HH:MM-HH:MM=N, "
        "...; ...' (DAYS: Mon-Fri, Sat,Sun, daily; an end at or before the start runs past "
        "midnight). Administrators may replace a pool's schedule (API).")
    facility_timezone: str = Field(
        "UTC", max_length=64, description="The facility's time zone (IANA name, e.g. "
        "Europe/London): warm pool schedules are read in it.")
    warm_pool_max_age_minutes: float = Field(
        240.0, gt=0, description="Warm pools: a pooled machine waiting longer is replaced.")
    warm_pool_free_sessions: int = Field(
        1, ge=0, description="Warm pools: the worker fills a pool only while more than this "
        "many session slots stay free for users' launches, and removes a pooled machine when "
        "a user's launch waits for capacity.")
    machine_ready_timeout_seconds: int = Field(600, ge=5, description="Give up on a launch.")
    reconcile_interval_seconds: float = Field(2.0, gt=0, description="Reconciler cycle pause.")
    embedded_worker: bool = Field(True, description="`daaas serve` runs the reconciler too.")
    websockify_port: int = Field(6080, ge=1, le=65535, description="Desktop proxy port.")
    websockify_url: str = Field("", description="Desktop proxy URL browsers use; empty: local.")
    start_websockify: bool = Field(True, description="`daaas serve` starts the desktop proxy.")
    novnc_dir: str = Field("/usr/share/novnc", description="Installed noVNC (Debian novnc).")
    access_token_ttl_seconds: int = Field(60, ge=5, le=600, description="Desktop token life.")
    sharing_owner_away: Literal["stay", "view_only", "disconnect"] = Field(
        "view_only", description="When a shared desktop's owner leaves: others stay, become "
        "view-only, or are disconnected (view-only links always end).")
    sharing_invite_hours: int = Field(48, ge=1, le=720, description="Invitation link life.")
    support_emergency_access: bool = Field(True, description="Administrators may open any "
                                           "desktop without the owner's acceptance (recorded "
                                           "and shown); false: they ask, the owner accepts.")
    rdp_gateway: str = Field("", description="RD Gateway host for .rdp files; empty: none.")
    rdp_sign_in_minutes: int = Field(5, ge=1, le=60, description="RDP sign-in secret life.")
    ssh_bastion: str = Field("", description="Jump host for ssh to VMs ([user@]host[:port]); "
                             "empty: VMs are reached directly.")
    openstack_cloud: str = Field("", description="clouds.yaml cloud name (openstack provider).")
    openstack_network: str = Field("auto", description="Network name/id, or auto or none.")
    openstack_security_groups: str = Field("", description="Comma-separated security groups.")
    openstack_access_mode: Literal["direct", "floating", "proxy"] = Field(
        "direct", description="How the access proxies reach a VM.")
    openstack_floating_network: str = Field("", description="External network for floating IPs.")
    openstack_key_name: str = Field("", description="Nova key pair for admin ssh; empty: none.")
    openstack_gpu_resource_class: str = Field("VGPU", description="Placement class of a GPU.")
    openstack_gpu_static_free: int = Field(-1, ge=-1, description="GPUs free if Placement "
                                           "is unreadable; -1: unknown.")
    openstack_server_tag: str = Field("daaas", description="Nova tag on the portal's servers.")
    openstack_vnc_proxy_cidr: str = Field("", description="Where the desktop proxy reaches VMs "
                                          "from (CIDRs); each VM's VNC group; none: no group.")
    # QEMU provider (real VMs on this host)
    qemu_image: str = Field("", description="Disk image every QEMU machine boots (qcow2/raw).")
    qemu_kernel: str = Field("", description="Kernel; empty: newest /boot/vmlinuz-*-cloud-amd64.")
    qemu_initrd: str = Field("", description="Initrd; empty: the kernel's initrd.img.")
    qemu_memory_mb: int = Field(2048, ge=256, description="Memory of each QEMU machine (MiB).")
    qemu_cpus: int = Field(2, ge=1, description="Virtual CPUs of each QEMU machine.")
    qemu_accel: Literal["auto", "tcg", "kvm"] = Field(
        "auto", description="QEMU accelerator; auto: KVM if a short boot probe works, else tcg.")
    qemu_guest_forwards: str = Field("", description="More guest-to-host forwards, "
                                     "'guest_ip:port=host:port, ...' (NFS, slurmrestd).")
    qemu_host_forwards: str = Field("", description="Guest services forwarded from the "
                                    "host's 127.0.0.1 when offered: ssh, rdp.")
    qemu_max_machines: int = Field(2, ge=1, description="QEMU machines at once.")

    # machine lifetimes and e-mail (the lifetime policy itself is per environment, in limits)
    expiry_warning_hours: str = Field("48, 2", description="Warn a machine's owner this many "
                                      "hours before it expires (comma-separated).")
    idle_stop: bool = Field(True, description="Stop ready machines without a desktop "
                            "connection for their environment's idle_timeout_minutes.")
    idle_warning_minutes: int = Field(30, ge=0, le=1440, description="E-mail the owner this "
                                      "long before an idle stop; 0: no warning.")
    idle_check_seconds: float = Field(60.0, ge=0.5, le=3600, description="How often the "
                                      "worker looks for idle machines to warn or stop.")
    home_grace_days: int = Field(14, ge=0, le=365, description="Keep the home folder of a "
                                 "local machine deleted by the lifetime policy this many days "
                                 "(an administrator can restore it meanwhile); 0: not kept.")
    keep_running_max_hours: int = Field(24, ge=0, le=720, description="Longest a user may "
                                        "keep a machine running without a connection "
                                        "(\"keep running until\"); 0: not offered.")
    vm_idle_cpu_percent: float = Field(5.0, ge=0, le=100, description="A VM's agent report "
                                       "with CPU use above this counts as activity.")
    smtp_host: str = Field("", description="SMTP server for e-mail; empty: messages are "
                           "written to the Maildir var_dir/mail instead.")
    smtp_port: int = Field(587, ge=1, le=65535, description="SMTP server port.")
    smtp_starttls: bool = Field(True, description="Use STARTTLS on the SMTP connection.")
    smtp_username: str = Field("", description="SMTP user name; empty: no authentication.")
    smtp_password: str = Field("", description="SMTP password.")
    smtp_ca_file: str = Field("", description="CA certificates (PEM) the SMTP server's "
                              "certificate is checked against; empty: the system's.")
    smtp_timeout_seconds: float = Field(20.0, gt=0, description="SMTP connection timeout.")
    mail_from: str = Field("daaas@localhost", max_length=200,
                           description="From address of the portal's e-mail.")

    hpc_backend: str = Field("slurm", description="Batch system: slurm, or module:Class.")
    hpc_slurmrestd_url: str = Field("", description="slurmrestd URL; empty: no HPC cluster.")
    hpc_machine_slurmrestd_url: str = Field("", description="slurmrestd URL as machines "
                                            "reach it; empty: hpc_slurmrestd_url.")
    hpc_api_version: Literal["v0.0.38"] = Field("v0.0.38", description="slurmrestd API path.")
    hpc_cluster: str = Field("hpc", description="HPC cluster name shown to users and machines.")
    hpc_jwt_key_file: str = Field("", description="Slurm's jwt_key; signs per-user tokens.")
    hpc_token_lifetime_seconds: int = Field(300, ge=30, le=3600, description="Portal JWT life.")
    hpc_machine_token_hours: int = Field(24, ge=0, le=720, description="Machine JWT life; 0: none.")
    hpc_timeout_seconds: float = Field(20.0, gt=0, description="slurmrestd request timeout.")
    hpc_observe_interval_seconds: float = Field(15.0, ge=1, le=3600, description="How often "
                                                "the worker lists users' Slurm jobs for the pages.")
    hpc_partitions: str = Field("", description="Partitions offered by default; empty: any.")
    hpc_work_dir: str = Field("/home/{username}", description="Where portal jobs run and write.")
    hpc_slurmctld_host: str = Field("", description="host[:port] for configless Slurm clients.")
    hpc_job_templates_dir: str = Field(DEFAULT_JOB_TEMPLATES_DIR, description="Job templates.")

    @field_validator("hpc_partitions")
    @classmethod
    def _hpc_partitions(cls, value: str) -> str:
        parse_partitions(value)
        return value

    @field_validator("expiry_warning_hours")
    @classmethod
    def _expiry_warning_hours(cls, value: str) -> str:
        parse_hours_list(value)
        return value

    @field_validator("flavor_sizes")
    @classmethod
    def _flavor_sizes(cls, value: str) -> str:
        parse_flavor_sizes(value)
        return value

    @field_validator("facility_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone this host knows (an IANA name "
                             "such as Europe/London, or UTC)") from None
        return value

    @field_validator("quotas")
    @classmethod
    def _quotas(cls, value: str) -> str:
        parse_quotas(value)
        return value

    @field_validator("software_roots")
    @classmethod
    def _software_roots(cls, value: str) -> str:
        parse_software_roots(value)
        return value

    @field_validator("hpc_work_dir")
    @classmethod
    def _hpc_work_dir(cls, value: str) -> str:
        rest = value.replace("{username}", "")
        if not value.startswith("/") or "{" in rest or "}" in rest:
            raise ValueError("must be an absolute path; {username} is the only placeholder")
        return value

    @field_validator("metrics_networks")
    @classmethod
    def _metrics_networks(cls, value: str) -> str:
        parse_networks(value)
        return value

    @field_validator("keystone_group_map")
    @classmethod
    def _keystone_group_map(cls, value: str) -> str:
        parse_group_map(value)
        return value

    @property
    def var_path(self) -> Path:
        """The var folder as an absolute path (not created)."""
        return Path(self.var_dir).resolve()

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to SQLite in var_dir."""
        return self.database_url or f"sqlite:///{self.var_path / 'daaas.sqlite'}"

    def masked(self) -> dict[str, Any]:
        """Return the settings as a dict with every secret replaced by '***': the values of
        :data:`SECRET_KEYS`, and in every other text the user-info of any URL in it
        (``scheme://***@host``) and the value of any secret-looking parameter
        (``?password=***``, ``token=***``). Raises nothing."""
        values = self.model_dump()
        for key, value in values.items():
            if isinstance(value, str) and value:
                values[key] = "***" if key in SECRET_KEYS else mask_secrets(value)
        return values


def parse_partitions(value: str) -> tuple[str, ...]:
    """Return the partitions of a comma-separated list such as ``"debug, long"``.

    Raises ValueError naming an entry that is not a partition name.
    """
    names = tuple(name.strip() for name in value.split(",") if name.strip())
    for name in names:
        if not _PARTITION_RE.match(name):
            raise ValueError(f"'{name}' is not a partition name (letters, digits, . _ -)")
    return names


def parse_hours_list(value: str) -> tuple[float, ...]:
    """Return the hours of a comma-separated list ('48, 2'), largest first; () when empty.

    Raises ValueError for a value that is not a positive number.
    """
    hours = []
    for part in (p.strip() for p in value.split(",")):
        if not part:
            continue
        try:
            number = float(part)
        except ValueError:
            raise ValueError(f"expected numbers of hours separated by commas, not {part!r}") \
                from None
        if not 0 < number <= 24 * 366:
            raise ValueError(f"expected hours above 0 and at most a year, not {part!r}")
        hours.append(number)
    return tuple(sorted(set(hours), reverse=True))


def parse_software_roots(value: str) -> tuple[Path, ...]:
    """Return the folders of a ``software_roots`` value (``/opt/sw:/srv/cvmfs-copy``), in order.

    Raises ValueError naming a root that is not an absolute path of plain characters (letters,
    digits, ``._/+-``, no ``..``), which a launcher's Exec line could not hold unquoted.
    """
    roots = []
    for part in (item.strip() for item in value.split(":")):
        if not part:
            continue
        if not _SOFTWARE_ROOT_RE.match(part) or ".." in part.split("/"):
            raise ValueError(f"software root {part!r} must be an absolute path of letters, "
                             "digits and ._/+- only")
        roots.append(Path(os.path.normpath(part)))
    return tuple(roots)


@dataclass(frozen=True)
class FlavorSize:
    """One flavour's cores, memory (GiB) and GPUs (how many, which model), as the site's
    ``flavor_sizes`` setting describes it."""

    name: str
    cores: int
    memory_gib: float
    gpus: int = 0
    gpu_model: str = ""

    @property
    def label(self) -> str:
        """Return "4 cores · 16 GiB" or "8 cores · 64 GiB · NVIDIA A100" (a count and a
        multiplication sign before the model for two GPUs or more). Raises nothing."""
        parts = [f"{self.cores} core{'s' if self.cores != 1 else ''}", f"{self.memory_gib:g} GiB"]
        if self.gpus:
            times = f"{self.gpus} \N{MULTIPLICATION SIGN} " if self.gpus > 1 else ""
            parts.append(times + self.gpu_model)
        return " · ".join(parts)


def parse_flavor_sizes(value: str) -> dict[str, FlavorSize]:
    """Return the flavours a ``flavor_sizes`` setting describes, by name.

    Entries are separated by ``;``, each ``name: N cores, M GiB`` or ``name: N cores, M GiB,
    K GPU model`` (``g1.a100-1: 8 cores, 64 GiB, 1 NVIDIA A100``). Raises ValueError naming the
    entry that does not fit.
    """
    sizes: dict[str, FlavorSize] = {}
    for entry in (part.strip() for part in value.split(";") if part.strip()):
        name, colon, rest = (text.strip() for text in entry.partition(":"))
        fields = [field.strip() for field in rest.split(",")]
        cores = _CORES_RE.match(fields[0])
        memory = _MEMORY_RE.match(fields[1]) if len(fields) > 1 else None
        gpus = _GPUS_RE.match(fields[2]) if len(fields) == 3 else None
        if not colon or not _FLAVOR_RE.match(name) or not cores or not memory \
                or len(fields) > 3 or (len(fields) == 3 and not gpus):
            raise ValueError(f"'{entry}' is not 'flavor: N cores, M GiB' or 'flavor: N cores, "
                             "M GiB, K GPU model' (e.g. 'g1.a100-1: 8 cores, 64 GiB, 1 NVIDIA "
                             "A100')")
        sizes[name] = FlavorSize(name, int(cores.group(1)), float(memory.group(1)),
                                 int(gpus.group(1)) if gpus else 0,
                                 gpus.group(2).strip() if gpus else "")
    return sizes


#: The limits a quota entry may set (besides ``gpu:<model>``).
QUOTA_KEYS = ("machines", "vcpus", "memory_gib", "storage_gib")
_QUOTA_NAME_RE = re.compile(r"^[A-Za-z0-9_.@+-]{1,100}$")


def parse_quotas(value: str) -> dict[tuple[str, str], dict[str, int]]:
    """Return the quotas a ``quotas`` setting gives, by (scope, name): each a dict of limits
    (:data:`QUOTA_KEYS` and ``gpu:<model>``, whole numbers from 0).

    Entries are separated by ``;``, each ``group NAME: key=N, ...`` or ``user NAME: ...``
    (``group beamline-i03: vcpus=64, gpu:NVIDIA A100=2``). Raises ValueError naming the entry
    or the limit that does not fit.
    """
    quotas: dict[tuple[str, str], dict[str, int]] = {}
    for entry in (part.strip() for part in value.split(";") if part.strip()):
        head, colon, rest = (text.strip() for text in entry.partition(":"))
        scope, _, name = head.partition(" ")
        if not colon or scope not in ("user", "group") or not _QUOTA_NAME_RE.match(name.strip()):
            raise ValueError(f"'{entry}' is not 'group NAME: key=N, ...' or 'user NAME: "
                             "key=N, ...'")
        quotas[(scope, name.strip())] = _quota_limits(entry, rest)
    return quotas


def _quota_limits(entry: str, text: str) -> dict[str, int]:
    limits: dict[str, int] = {}
    for part in (item.strip() for item in text.split(",") if item.strip()):
        key, equals, number = (item.strip() for item in part.rpartition("="))
        known = key in QUOTA_KEYS or (key.startswith("gpu:") and key[4:].strip())
        if not equals or not known or not number.isdigit() or len(number) > 7:
            raise ValueError(f"'{part}' in '{entry}' is not one of {', '.join(QUOTA_KEYS)} or "
                             "gpu:<model> with '=' and a whole number (e.g. 'gpu:NVIDIA A100=2')")
        limits["gpu:" + key[4:].strip() if key.startswith("gpu:") else key] = int(number)
    return limits


def parse_group_map(value: str) -> dict[str, str]:
    """Return the rules of ``keystone_group_map`` (``"daaas:member=scientists, mx-*=mx"``) as
    pattern → group.

    Raises ValueError naming a rule without ``=``, without a project pattern, or whose group
    is empty or uses a placeholder other than ``{project}`` and ``{role}``.
    """
    rules: dict[str, str] = {}
    for rule in (part.strip() for part in value.split(",") if part.strip()):
        pattern, has_group, group = (text.strip() for text in rule.partition("="))
        if not has_group or not pattern.partition(":")[0]:
            raise ValueError(f"'{rule}' is not 'project=group' or 'project:role=group'")
        try:
            named = group.format(project="p", role="r")
        except (KeyError, IndexError, ValueError):
            raise ValueError(f"the group '{group}' of '{pattern}' may use only {{project}} and "
                             "{role}") from None
        if not named:
            raise ValueError(f"'{pattern}' maps to an empty group name")
        rules[pattern] = group
    return rules


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Return the networks of a comma-separated CIDR list ("10.0.0.0/8, ::1/128"; a bare
    address is one host). Raises ValueError naming an entry that is not a network."""
    networks = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"'{entry}' is not a network (e.g. 10.0.0.0/8)") from None
    return tuple(networks)


def mask_secrets(text: str) -> str:
    """Return ``text`` with every URL in it masked: its user-info replaced by ``***``
    (``postgresql://***@db/daaas``) and the value of each secret-looking parameter of its
    query string (password, passwd, pwd, secret, token, key, credential, auth, sig…) by ``***``
    (``?sslpassword=***``). Text outside URLs is left as it is. Raises nothing."""
    return _URL_RE.sub(_mask_url, text)


def _mask_url(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    if "@" in rest:  # up to the last '@': a password may hold '?', '/', ',' or '|' too
        rest = "***@" + rest[rest.rindex("@") + 1:]
    head, mark, query = rest.partition("?")
    if not mark:
        head, mark, query = rest.partition("#")
    query = _SECRET_PARAM_RE.sub(lambda m: f"{m.group(1)}=***", query)
    return f"{scheme}://{head}{mark}{query}"


def load_settings(override: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Build the effective settings.

    Returns a frozen :class:`Settings`. Raises :class:`ConfigError` for an unreadable file, an
    unknown key or a value of the wrong type, naming the key and the file or variable.
    """
    environ = dict(os.environ) if environ is None else environ
    layers: list[tuple[str, dict[str, Any]]] = []
    config_file = environ.get("DAAAS_CONFIG")
    if config_file:
        layers.append((config_file, _read_file(Path(config_file))))
    layers.append(("environment", _from_environ(environ)))
    layers.append(("config_override", dict(override or {})))
    values: dict[str, Any] = {}
    for source, layer in layers:
        _check_layer(source, layer)
        values.update(layer)
    try:
        return Settings(**values)
    except ValidationError as exc:  # a layer passed alone but not together: name the key
        raise ConfigError(_describe(exc, "configuration")) from None


def _read_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"Configuration file {path} (named by DAAAS_CONFIG) does not exist.") \
            from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Configuration file {path} is not valid TOML: {exc}.") from None


def _from_environ(environ: dict[str, str]) -> dict[str, Any]:
    skip = {"DAAAS_CONFIG"} | {k for k in environ if k.startswith("DAAAS_TEST_")}
    return {
        key[len(ENV_PREFIX):].lower(): value
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX) and key not in skip
    }


def _check_layer(source: str, layer: dict[str, Any]) -> None:
    known = set(Settings.model_fields)
    for key in layer:
        if key not in known:
            where = f"environment variable {ENV_PREFIX}{key.upper()}" \
                if source == "environment" else source
            raise ConfigError(
                f"Unknown configuration key '{key}' in {where}. "
                f"Known keys: {', '.join(sorted(known))}."
            )
    try:
        Settings(**layer)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, source)) from None


def _describe(exc: ValidationError, source: str) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    where = f"environment variable {ENV_PREFIX}{key.upper()}" if source == "environment" else source
    return f"Configuration key '{key}' in {where}: {first['msg']} (got {first.get('input')!r})."


#: Modes of var_dir's folders: a user's desktop reaches its own folder inside ``sessions`` and
#: ``storage`` (0711: pass through, no listing); the rest is the portal's alone.
VAR_FOLDER_MODES = {"sessions": 0o711, "storage": 0o711, "log": 0o700, "experiments": 0o700}
#: var_dir's files, all private to the portal's user (0600).
VAR_FILE_PATTERNS = ("secret_key", "daaas.sqlite*", "websockify-*.source")


def secure_var_dir(settings: Settings) -> None:
    """Create var_dir and close it to everyone but the portal's user: var_dir 0711, the
    folders of :data:`VAR_FOLDER_MODES` as listed there, the secret key, the SQLite database
    (with its -wal/-shm files) and the proxy's source file 0600. Other entries are left as
    they are. Returns None; raises OSError."""
    var = settings.var_path
    var.mkdir(parents=True, exist_ok=True)
    var.chmod(0o711)
    for name, mode in VAR_FOLDER_MODES.items():
        folder = var / name
        if folder.is_dir() and not folder.is_symlink():
            folder.chmod(mode)
    for pattern in VAR_FILE_PATTERNS:
        for path in var.glob(pattern):
            if path.is_file() and not path.is_symlink():
                path.chmod(0o600)


def check_secret_key_private(settings: Settings) -> None:
    """Refuse a secret key file that anyone but its owner may read or write.

    Returns None when the key is configured directly or its file is 0600 (or missing: it is
    then created 0600). Raises ConfigError naming the file and the command that fixes it.
    """
    path = settings.var_path / "secret_key"
    if settings.secret_key or not path.exists():
        return
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ConfigError(f"The secret key file {path} is open to other users (mode "
                          f"{mode:o}): anyone who reads it can sign in as any user. Run "
                          f"`chmod 600 {path}`, then start the portal again; if others may "
                          "have read it, delete it instead (everyone will be signed out).")


def resolve_secret_key(settings: Settings) -> str:
    """Return the configured secret key, or the one kept in var_dir (created, mode 600)."""
    if settings.secret_key:
        return settings.secret_key
    path = settings.var_path / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(secrets.token_urlsafe(48))
    return path.read_text(encoding="utf-8").strip()
