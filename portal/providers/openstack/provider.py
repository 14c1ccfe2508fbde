"""OpenStackProvider: each machine is a Nova server, configured by a named cloud in clouds.yaml.

The portal's servers carry the tag ``server_tag`` (default "daaas") and a per-machine tag, and
metadata with the machine id and owner, so a restarted worker finds what it created (``launch``
is idempotent) and an administrator can tell whose a server is. ``poll`` is ONE list call
filtered by the portal's tag. Credentials live in clouds.yaml (a password or, better, an
application credential), never in the portal's configuration.

With ``vnc_proxy_cidrs`` (the setting ``openstack_vnc_proxy_cidr``) every server gets a security
group of its own letting its VNC port in from those prefixes only (:mod:`.secgroups`): made
before the server, deleted after it, swept with the orphans at start-up.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any, Literal

import openstack
from openstack import exceptions as os_exc

from daaas.catalogue import Environment
from daaas.portal.providers.base import (
    Capacity,
    ConnectionTarget,
    LaunchSpec,
    Provider,
    ProviderState,
    ProviderStatus,
)
from daaas.portal.providers.errors import (
    CapacityExhausted,
    LaunchFailed,
    MachineGone,
    ProviderError,
    ProviderUnavailable,
)
from daaas.portal.providers.openstack import secgroups
from daaas.portal.providers.openstack.cloud import (
    GPU_KEY,
    MACHINE_KEY,
    NO_GPU,
    OWNER_KEY,
    machine_id_of,
    machine_tag,
    translated,
)
from daaas.portal.providers.openstack.servers import (
    address_for,
    flavor_wants_gpu,
    listed_servers,
    status_of,
    units,
)

if TYPE_CHECKING:
    from daaas.portal.config import Settings

AccessMode = Literal["direct", "floating", "proxy"]
SHELVED = ("SHELVED", "SHELVED_OFFLOADED")
#: The Glance property naming the modes the image's bootstrap agent speaks ("session,pool")
AGENT_MODES_PROPERTY = "daaas_agent_modes"
VNC_PORT, RDP_PORT, SSH_PORT = 5901, 3389, 22
NO_CLOUD = "openstack_cloud must name a cloud in clouds.yaml"


class OpenStackProvider(Provider):
    """Nova servers in the project of the clouds.yaml entry ``cloud``."""

    name = "openstack"
    uses_cloud_init = True
    supports_stop = True  # shelve and unshelve

    def __init__(self, cloud: str, network: str = "auto", security_groups: Sequence[str] = (),
                 access_mode: AccessMode = "direct", floating_network: str = "",
                 key_name: str = "", gpu_resource_class: str = "VGPU",
                 gpu_static_free: int = -1, server_tag: str = "daaas",
                 delete_timeout: float = 120.0, vnc_proxy_cidrs: Sequence[str] = ()) -> None:
        if not cloud:
            raise ValueError(NO_CLOUD)
        if access_mode not in ("direct", "floating", "proxy"):
            raise ValueError(f"access mode must be direct, floating or proxy (got {access_mode!r})")
        self.cloud, self.network, self.access_mode = cloud, network, access_mode
        self.security_groups = [g for g in security_groups if g]
        self.floating_network, self.key_name = floating_network, key_name
        self.gpu_resource_class, self.gpu_static_free = gpu_resource_class, gpu_static_free
        self.server_tag, self.delete_timeout = server_tag, delete_timeout
        self.vnc_proxy_cidrs = [] if network == "none" else list(vnc_proxy_cidrs)
        self._conn: Any = None
        self._lock = threading.Lock()
        #: The agent modes each environment's image says it speaks (pool_unavailable_reason)
        self._agent_modes: dict[str, str] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenStackProvider:
        """Return the provider of the ``openstack_*`` settings.

        Raises ValueError when openstack_cloud is empty, the access mode is unknown, or
        openstack_vnc_proxy_cidr is empty (with a network) or no address prefix.
        """
        if not settings.openstack_cloud:
            raise ValueError(NO_CLOUD)
        groups = [g.strip() for g in settings.openstack_security_groups.split(",") if g.strip()]
        cidrs = secgroups.parse_cidrs(settings.openstack_vnc_proxy_cidr,
                                      settings.openstack_network)
        return cls(cloud=settings.openstack_cloud, network=settings.openstack_network,
                   security_groups=groups,
                   access_mode=settings.openstack_access_mode,
                   floating_network=settings.openstack_floating_network,
                   key_name=settings.openstack_key_name,
                   gpu_resource_class=settings.openstack_gpu_resource_class,
                   gpu_static_free=settings.openstack_gpu_static_free,
                   server_tag=settings.openstack_server_tag, vnc_proxy_cidrs=cidrs)

    @property
    def connection(self) -> Any:
        """Return the openstacksdk Connection (made on first use). Raises ProviderUnavailable."""
        with self._lock:
            if self._conn is None:
                try:
                    self._conn = openstack.connect(cloud=self.cloud, app_name="daaas")
                except (os_exc.SDKException, KeyError) as error:
                    raise ProviderUnavailable(
                        "The portal's cloud is not configured correctly; tell the portal "
                        "administrators.", f"openstack: cloud {self.cloud!r}: {error}") from None
            return self._conn

    def launch(self, spec: LaunchSpec) -> None:
        """Create the server for ``spec.machine_id`` unless one carrying its tag exists.

        With proxy prefixes, its VNC security group is made first and attached; when Nova
        refuses the server the group is deleted again (after an unanswered request it is kept
        for the retry, and ``delete`` removes it). Returns once Nova accepted the request.
        Raises CapacityExhausted (no GPU free, quota), LaunchFailed (image or flavor missing,
        user_data refused) or ProviderUnavailable (cloud unreachable, credentials refused).
        """
        encoded = base64.b64encode(spec.user_data).decode() if spec.user_data else None
        with translated(f"launch {spec.machine_id}", [encoded]):
            if self._servers(spec.machine_id):
                return
            flavor = self._flavor(spec)
            gpu = self._is_gpu(spec, flavor)
            if gpu and self.capacity().gpus_free == 0:
                raise CapacityExhausted(NO_GPU, f"openstack: launch {spec.machine_id}: "
                                                "no free GPU units")
            image, networks = self._image(spec), self._networks()
            group = secgroups.ensure(self.connection.network, self.server_tag, spec.machine_id,
                                     self.vnc_proxy_cidrs, VNC_PORT) \
                if self.vnc_proxy_cidrs else None
            try:
                self.connection.compute.create_server(
                    name=f"daaas-{spec.machine_id}", image_id=image, flavor_id=flavor.id,
                    networks=networks, user_data=encoded, tags=self._tags(spec.machine_id),
                    metadata={MACHINE_KEY: spec.machine_id, OWNER_KEY: spec.username,
                              GPU_KEY: "1" if gpu else "0"},
                    **self._optional_args(group))
            except os_exc.HttpException as error:
                if group is not None and error.status_code is not None \
                        and error.status_code < 500:
                    secgroups.discard(self.connection.network, group)
                raise

    @property
    def supports_pools(self) -> bool:
        """Return True: a warm pool's server boots with pool-mode user-data (no user) and its
        agent waits for a claim (contextualisation/BOOTSTRAP_PROTOCOL.md, "Pool mode"). An
        environment whose image does not say its agent speaks it is left out of the pools
        (:meth:`pool_unavailable_reason`). Raises nothing."""
        return True

    def pool_unavailable_reason(self, environment: Environment) -> str | None:
        """Return why ``environment`` cannot have a warm pool here: its Glance image does not
        carry the property ``daaas_agent_modes`` with ``pool`` (set by `daaas images upload`
        for images whose agent waits for claims), or cannot be found; None when it can. One
        Glance read per image, remembered. Raises nothing."""
        key = environment.image.name or f"tag:{environment.image.tag}"
        if key not in self._agent_modes:
            try:
                with translated(f"image of {environment.name}"):
                    found = self._image_record(environment)
                modes = str((getattr(found, "properties", None) or {}).get(
                    AGENT_MODES_PROPERTY, "")) if found is not None else ""
            except ProviderError as exc:
                return f"its image cannot be read: {exc.log_message}"
            self._agent_modes[key] = modes
        if "pool" not in self._agent_modes[key].split(","):
            return (f"the image of {environment.name} does not say its agent waits for claims "
                    f"(Glance property {AGENT_MODES_PROPERTY})")
        return None

    def personalise(self, spec: LaunchSpec) -> None:
        """Hand the claimed server to ``spec``'s user: its ``owner`` metadata becomes theirs
        (administrators see whose it is); nothing is sent into the server. Once this returns
        the worker records the hand-over, and the portal's exchange answers the agent's claim
        request with the user's session. Raises MachineGone if no server carries the
        machine's tag, ProviderUnavailable."""
        with translated(f"personalise {spec.machine_id}"):
            server = self._server(spec.machine_id)
            self.connection.compute.set_server_metadata(server, **{OWNER_KEY: spec.username})

    def poll(self, machine_ids: Collection[str]) -> dict[str, ProviderStatus]:
        """Return every asked id's status from ONE server listing (a request per 1,000
        servers, read as JSON: :func:`servers.listed_servers`); GONE for missing ids.

        Raises ProviderUnavailable when the cloud cannot be asked.
        """
        wanted = set(machine_ids)
        if not wanted:
            return {}
        found: dict[str, ProviderStatus] = {}
        with translated("poll servers"):
            for server in listed_servers(self.connection.compute, self.server_tag):
                machine_id = machine_id_of(server)
                if machine_id in wanted and machine_id not in found:
                    found[machine_id] = status_of(server)
        return {mid: found.get(mid) or ProviderStatus(ProviderState.GONE) for mid in wanted}

    def delete(self, machine_id: str) -> None:
        """Delete the machine's servers (and the floating IPs and VNC security group the portal
        made for it); gone is success.

        Never touches volumes or shares. Returns once Nova no longer lists the servers and the
        group is deleted. Raises ProviderUnavailable, or ProviderError if a server is still
        there after the timeout or Neutron refuses to delete the group (retried next call).
        """
        with translated(f"delete {machine_id}"):
            servers = self._servers(machine_id)
            compute = self.connection.compute
            for server in servers:
                if self.access_mode == "floating":
                    self._release_floating_ips(machine_id)
                compute.delete_server(server, ignore_missing=True)
            for server in servers:
                try:
                    compute.wait_for_delete(server, interval=1, wait=self.delete_timeout)
                except os_exc.ResourceTimeout:
                    raise ProviderError(f"The machine {machine_id} could not be removed from "
                                        "the cloud; an administrator has to delete it.",
                                        f"openstack: server {server.id} still exists after "
                                        f"{self.delete_timeout}s") from None
            if self.vnc_proxy_cidrs:
                secgroups.delete(self.connection.network, self.server_tag, machine_id)

    def adopt_or_cleanup(self, known_ids: Collection[str]) -> set[str]:
        """Keep the servers the portal knows and delete every other one (see Provider), then
        delete the VNC security groups of machines the portal does not know (left by a crash
        between making a group and its server, or a delete cut short).

        Returns the adopted ids. Raises ProviderUnavailable, ProviderError.
        """
        adopted = super().adopt_or_cleanup(known_ids)
        if self.vnc_proxy_cidrs:
            known = set(known_ids)
            with translated("sweep VNC security groups"):
                network = self.connection.network
                for machine_id, group in list(secgroups.portal_groups(network, self.server_tag)):
                    if machine_id not in known:
                        network.delete_security_group(group, ignore_missing=True)
        return adopted

    def stop(self, machine_id: str) -> None:
        """Shelve the machine's server: Nova snapshots its disk and offloads it from the host,
        freeing the host's CPU, memory and GPU (the disk is kept, as an image).

        Returns once Nova accepted the request (poll says STOPPED when shelved); a shut-off
        server is shelved too. Already shelved, or busy with another task, is success (the
        reconciler asks again).
        Raises MachineGone if no server carries the machine's tag, ProviderUnavailable.
        """
        with translated(f"stop {machine_id}"):
            server = self._server(machine_id)
            if server.status in SHELVED or getattr(server, "task_state", None):
                return
            self.connection.compute.shelve_server(server)

    def start(self, spec: LaunchSpec) -> None:
        """Unshelve the machine's server (or start it if shut off); running is success.

        Returns once Nova accepted the request. Raises CapacityExhausted (the server stays
        stopped) when it needs a GPU and none is free, MachineGone if no server carries the
        machine's tag, ProviderUnavailable.
        """
        with translated(f"start {spec.machine_id}"):
            server = self._server(spec.machine_id)
            if getattr(server, "task_state", None):
                return  # Nova is busy with it (e.g. still unshelving): ask again later
            if server.status in SHELVED:
                gpu = (server.metadata or {}).get(GPU_KEY) == "1"
                if gpu and server.status == "SHELVED_OFFLOADED" \
                        and self.capacity().gpus_free == 0:
                    raise CapacityExhausted(NO_GPU, f"openstack: start {spec.machine_id}: "
                                                    "no free GPU units")
                self.connection.compute.unshelve_server(server)
            elif server.status == "SHUTOFF":
                self.connection.compute.start_server(server)

    def list_machine_ids(self) -> set[str]:
        """Return the machine ids of every server carrying the portal's tag.

        Raises ProviderUnavailable when the cloud cannot be asked.
        """
        with translated("list servers"):
            servers = self.connection.compute.servers(details=True, tags=self.server_tag)
            return {mid for s in servers if (mid := machine_id_of(s)) and s.status != "DELETED"}

    def capacity(self) -> Capacity:
        """Return free GPU units (Placement, else the static figure), all GPU units
        (Placement only) and free instance quota.

        ``gpus_free`` is None when neither Placement nor a static figure can tell,
        ``gpus_total`` when Placement cannot. Raises
        ProviderUnavailable when the cloud cannot be asked.
        """
        with translated("read capacity"):
            counted = units(self.connection, self.gpu_resource_class)
            limits = self.connection.compute.get_limits().absolute
        gpus, gpus_total = counted if counted is not None else (None, None)
        if gpus is None:
            gpus = self.gpu_static_free if self.gpu_static_free >= 0 else None
        total = int(limits.instances)
        used = int(limits.instances_used)
        if total < 0:
            return Capacity(gpus_free=gpus, sessions_free=1_000_000, sessions_total=1_000_000,
                            gpus_total=gpus_total)
        return Capacity(gpus_free=gpus, sessions_free=max(0, total - used), sessions_total=total,
                        gpus_total=gpus_total)

    def connection_target(self, machine_id: str) -> ConnectionTarget:
        """Return the address the access proxies use for this machine, per ``access_mode``.

        Raises MachineGone if no server carries the machine's tag, ProviderError if it has no
        usable address yet, ProviderUnavailable if the cloud cannot be asked.
        """
        with translated(f"address of {machine_id}"):
            host = address_for(self.connection, self._server(machine_id), self.access_mode,
                               self.network, self.floating_network)
        return ConnectionTarget(host=host, vnc_port=VNC_PORT, rdp_port=RDP_PORT,
                                ssh_port=SSH_PORT)

    # -- internals ---------------------------------------------------------------------------

    def _tags(self, machine_id: str) -> list[str]:
        return [self.server_tag, machine_tag(machine_id)]

    def _servers(self, machine_id: str) -> list[Any]:
        tags = ",".join(self._tags(machine_id))
        return [s for s in self.connection.compute.servers(details=True, tags=tags)
                if s.status != "DELETED" and machine_id_of(s) == machine_id]

    def _server(self, machine_id: str) -> Any:
        servers = self._servers(machine_id)
        if not servers:
            raise MachineGone("This machine no longer exists at the cloud.",
                              f"openstack: no server tagged {machine_tag(machine_id)}")
        return servers[0]

    def _flavor(self, spec: LaunchSpec) -> Any:
        name = spec.flavor or spec.environment.flavors.default
        flavor = self.connection.compute.find_flavor(name, get_extra_specs=True)
        if flavor is None:
            raise LaunchFailed(f"The machine size (flavor) {name!r} of the "
                               f"{spec.environment.title} environment does not exist at the "
                               "cloud; tell the portal administrators.",
                               f"openstack: flavor {name!r} not found")
        return flavor

    def _is_gpu(self, spec: LaunchSpec, flavor: Any) -> bool:
        return flavor.name in spec.environment.flavors.gpu or flavor_wants_gpu(
            flavor.extra_specs, self.gpu_resource_class)

    def _image_record(self, environment: Environment) -> Any:
        image = environment.image
        glance = self.connection.image
        if image.name:
            return glance.find_image(image.name, ignore_missing=True)
        return next(iter(glance.images(tag=[image.tag], status="active",
                                       sort="created_at:desc", limit=1)), None)

    def _image(self, spec: LaunchSpec) -> str:
        image = spec.environment.image
        found = self._image_record(spec.environment)
        if found is None:
            raise LaunchFailed(f"The system image of the {spec.environment.title} "
                               "environment is not available at the cloud; tell the portal "
                               "administrators.",
                               f"openstack: image {image.name or image.tag!r} not found")
        return str(found.id)

    def _networks(self) -> Any:
        if self.network in ("auto", "none"):
            return self.network
        net = self.connection.network.find_network(self.network, ignore_missing=True)
        if net is None:
            raise LaunchFailed("The portal's cloud network is missing; tell the portal "
                               "administrators.", f"openstack: network {self.network!r} not found")
        return [{"uuid": net.id}]

    def _optional_args(self, vnc_group: Any = None) -> dict[str, Any]:
        args: dict[str, Any] = {}
        groups = [{"name": g} for g in self.security_groups]
        if vnc_group is not None:  # by id: Neutron does not keep names unique
            groups.append({"name": vnc_group.id})
        if groups:
            args["security_groups"] = groups
        if self.key_name:
            args["key_name"] = self.key_name
        return args

    def _release_floating_ips(self, machine_id: str) -> None:
        network = self.connection.network
        for ip in network.ips(description=f"daaas machine {machine_id}"):
            network.delete_ip(ip, ignore_missing=True)

