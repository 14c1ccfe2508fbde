"""Bodies of the bootstrap exchange's routes of /api/v1 (see :mod:`daaas.portal.api.schema`).

Called by a machine's bootstrap agent, never by people: contextualisation/BOOTSTRAP_PROTOCOL.md.
"""

from __future__ import annotations

from pydantic import ConfigDict, Field

from daaas.portal.api.schema import Body, Reply
from daaas.portal.bootstrap.service import MAX_REASON, Status


class BootstrapRequest(Body):
    """The machine's single-use bootstrap token."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"token": "<the bootstrap token from user-data>"}]})

    token: str = Field(min_length=1, max_length=512,
                       description="The single-use token from user-data.")


class SecretFile(Reply):
    """A file the agent writes on the machine."""

    path: str
    content: str
    mode: str = Field("0600", pattern="^0?[0-7]{3}$", description="Octal; absent: 0600.")
    owner: str = Field("", description="user[:group] to own the file; absent: root.")


class DataMount(Reply):
    """A network file system the agent mounts read-only (experiment data)."""

    fstype: str = Field(description="nfs or ceph.")
    source: str = Field(description="server:/export/folder (nfs) or mon1,mon2:/path (ceph).")
    folder: str = Field(description="Mount point: this folder of the user's home.")
    options: str = Field(description="Mount options, 'ro' first.")
    label: str = ""


class RdpVerifier(Reply):
    """What the VM's RDP sign-in module checks tokens with (nothing secret)."""

    machine_id: str
    public_key: str = Field(description="The portal's Ed25519 public key (PEM).")
    nonce_dir: str = Field(description="Where the VM records the tokens it accepted.")


class MachineSecrets(Reply):
    """The exchange's answer: the passwords the machine's access services use, and files."""

    pooled: bool = Field(False, description="True for a warm pool's machine: the answer holds "
                         "only its report token; it reports 'pooled-ready' and asks for its "
                         "claim (POST .../claim).")
    vnc_password: str = Field("", description="When the machine runs VNC.")
    rdp_password: str = Field("", description="No longer sent: RDP signs in with one-time "
                              "tokens (rdp_sign_in).")
    report_token: str = Field(description="Bearer token for the status report.")
    files: list[SecretFile]
    mounts: list[DataMount] = Field(default_factory=list,
                                    description="Experiment data, mounted read-only.")
    rdp_sign_in: RdpVerifier | None = Field(
        None, description="When the machine offers RDP: for its sign-in module.")
    ssh_authorized_keys: str | None = Field(
        None, description="When the machine offers SSH: the user's authorized_keys file.")


class SessionUser(Reply):
    """The claimer's POSIX account, which the agent creates."""

    name: str
    uid: int
    gid: int
    home: str
    full_name: str = ""


class StorageMount(Reply):
    """The claimer's storage, mounted read-write by the agent."""

    fstype: str = Field(description="nfs or ceph.")
    source: str
    target: str
    options: str = Field(description="Mount options, 'rw' first.")


class ClaimServices(Reply):
    """The services started once the claimer's account exists (the VNC server, as them)."""

    enable: list[str]


class ClaimedSession(Reply):
    """Who the claimed machine is for and where their things go (BOOTSTRAP_PROTOCOL.md)."""

    user: SessionUser
    vnc_password_file: str | None
    authorized_keys_file: str | None
    rdp_sign_in_file: str | None
    vnc_users: str | None = Field(description="The VNC server's user map, with VNC.")
    storage_mounts: list[StorageMount]
    services: ClaimServices


class ClaimedMachine(MachineSecrets):
    """The answer to a claim request once the machine is its claimer's: the exchange's
    answer for them, and the session. Given once."""

    session: ClaimedSession


class ClaimRequest(Body):
    """A pooled machine's agent asks whether it was claimed (no fields)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{}]})


class StatusReport(Body):
    """A machine's report: ready, or failed with the reason."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "ready"}, {"status": "failed", "reason": "mount /home: no route to host"},
        {"status": "pooled-ready"}]})

    status: Status
    reason: str = Field("", max_length=100_000,
                        description="With 'failed': the step and thing that failed, one "
                                        f"line (the portal keeps {MAX_REASON} characters).")


class StatusAccepted(Reply):
    """The report was recorded (a repeat changes nothing)."""

    machine_id: str
    status: Status


REQUESTS = (BootstrapRequest, StatusReport, ClaimRequest)
REPLIES = (MachineSecrets, StatusAccepted, ClaimedMachine)
