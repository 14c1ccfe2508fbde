"""The OpenStack provider: each machine is a Nova server of a cloud named in clouds.yaml.

- ``provider``: :class:`OpenStackProvider`, the Provider the portal calls (launch, poll, …);
- ``servers``: what it reads about servers: status, the address to connect to, free GPUs;
- ``secgroups``: the per-machine security group letting VNC in from the desktop proxy only;
- ``cloud``: what every OpenStack backend of the portal shares, the Manila storage backend
  too: the tags and metadata marking the portal's resources, and the one translation of
  openstacksdk/keystoneauth exceptions into typed provider errors.
"""

from daaas.portal.providers.openstack.provider import OpenStackProvider

__all__ = ["OpenStackProvider"]
