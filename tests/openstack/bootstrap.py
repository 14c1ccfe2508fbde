"""Populate the test OpenStack through openstacksdk in one process (not dozens of CLI calls).

Run with the services' venv python by .ci/openstack.sh; idempotent:

    bootstrap.py --base DIR catalog       service users, services and endpoints in Keystone
    bootstrap.py --base DIR wait-compute  until nova-compute and nova-scheduler are up
    bootstrap.py --base DIR resources     projects, users, application credential, flavors,
                                          image, quotas, then DIR/clouds.yaml (mode 600)

Test-only credentials: everything here is a throw-away cloud on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import openstack
import yaml

AUTH_URL = "http://127.0.0.1:5000/v3"
ADMIN = {"auth_url": AUTH_URL, "username": "admin", "password": "secret", "project_name": "admin",
         "user_domain_name": "Default", "project_domain_name": "Default"}
SERVICE_PASSWORD = "secret"
PORTAL_PASSWORD = "daaas-test-pw"
ENDPOINTS = {"glance": ("image", "http://127.0.0.1:9292"),
             "placement": ("placement", "http://127.0.0.1:8778"),
             "nova": ("compute", "http://127.0.0.1:8774/v2.1"),
             "neutron": ("network", "http://127.0.0.1:9696")}
FLAVORS = {"m1.small": dict(ram=512, vcpus=1, disk=1),
           "g1.vgpu": dict(ram=1024, vcpus=2, disk=1),
           "x1.huge": dict(ram=200000, vcpus=2, disk=1),  # more RAM than the 128 GiB fake host
           # the shipped catalogue's flavors, tiny (the host is fake), so its entries launch
           **{name: dict(ram=512, vcpus=1, disk=1) for name in (
               "m1.medium", "m1.large", "m1.xlarge", "m1.2xlarge",
               "g1.l40s-1", "g1.a100-1", "g1.a100-2")}}
VGPUS = {"g1.vgpu": 1, "g1.l40s-1": 1, "g1.a100-1": 1, "g1.a100-2": 2}
CATALOGUE = os.path.join(os.path.dirname(__file__), "..", "..", "catalogue", "environments")


def images() -> dict[str, list[str]]:
    """Return {image name: tags}: the test image plus one per catalogue entry's image."""
    found = {"daaas-tiny": ["daaas-desktop"]}
    for name in sorted(os.listdir(CATALOGUE)):
        if name.endswith(".yaml"):
            with open(os.path.join(CATALOGUE, name)) as entry:
                image = (yaml.safe_load(entry) or {}).get("image") or {}
            if image.get("name"):
                found.setdefault(image["name"], [])
            elif image.get("tag"):
                found.setdefault(f"test-{image['tag']}", [image["tag"]])
    return found


def admin() -> openstack.connection.Connection:
    return openstack.connect(auth_type="password", auth=ADMIN, region_name="RegionOne",
                             identity_interface="public")


def ensure(find, create, name, **kw):
    found = find(name)
    return found if found is not None else create(name=name, **kw)


def project(idp, name):
    return ensure(idp.find_project, idp.create_project, name, domain_id="default")


def user(idp, name, password, project_obj):
    found = idp.find_user(name, domain_id="default")
    if found is None:
        return idp.create_user(name=name, password=password, domain_id="default",
                               default_project_id=project_obj.id)
    return found


def grant(idp, project_obj, user_obj, role_name):
    role = ensure(idp.find_role, idp.create_role, role_name)
    idp.assign_project_role_to_user(project_obj, user_obj, role)


def catalog(conn) -> None:
    idp = conn.identity
    service_project = project(idp, "service")
    kinds = {s.type for s in idp.services()}
    for name, (kind, url) in ENDPOINTS.items():
        grant(idp, service_project, user(idp, name, SERVICE_PASSWORD, service_project), "admin")
        if kind not in kinds:
            service = idp.create_service(name=name, type=kind)
            for interface in ("public", "internal", "admin"):
                idp.create_endpoint(service_id=service.id, interface=interface, url=url,
                                    region_id="RegionOne")
    grant(idp, service_project, idp.find_user("nova", domain_id="default"), "service")
    print("catalog ready")


def wait_compute(conn) -> None:
    """Return once nova-compute and nova-scheduler both report "up" (a scheduler that died at
    start leaves every server in ERROR with MessagingTimeout)."""
    while True:
        try:
            up = {s.binary for s in conn.compute.services() if s.state == "up"}
            if {"nova-compute", "nova-scheduler"} <= up:
                print("nova-compute and nova-scheduler up")
                return
        except Exception as error:  # any failure here means "not yet"; say which
            print("waiting for nova-compute:", type(error).__name__, error, file=sys.stderr)
        time.sleep(2)


def resources(conn, base: str) -> None:
    idp = conn.identity
    daaas = project(idp, "daaas")
    portal = user(idp, "daaas", PORTAL_PASSWORD, daaas)
    for role in ("member", "admin"):  # admin: Placement reads for the GPU capacity figure
        grant(idp, daaas, portal, role)
    ensure(idp.find_role, idp.create_role, "daaas-admin")  # mapped to portal admin at sign-in
    limited = project(idp, "daaas-quota")
    limited_user = user(idp, "daaas-quota", PORTAL_PASSWORD, limited)
    grant(idp, limited, limited_user, "member")
    conn.set_compute_quotas(daaas.id, instances=-1, cores=-1, ram=-1)
    conn.set_compute_quotas(limited.id, cores=1, instances=5)
    for name, size in FLAVORS.items():
        flavor = conn.compute.find_flavor(name)
        if flavor is not None and (flavor.ram, flavor.vcpus, flavor.disk) != (
                size["ram"], size["vcpus"], size["disk"]):  # a cloud made by an older bootstrap
            conn.compute.delete_flavor(flavor)
            flavor = None
        flavor = flavor or conn.compute.create_flavor(name=name, **size)
        if name in VGPUS:
            conn.compute.create_flavor_extra_specs(flavor, {"resources:VGPU": str(VGPUS[name])})
    for name, tags in images().items():
        if conn.image.find_image(name) is None:
            conn.image.create_image(name=name, data=b"\0" * 65536, disk_format="raw",
                                    container_format="bare", visibility="public", wait=True,
                                    tags=tags)
    wait_for_vgpu_inventory(conn)
    write_clouds(base, app_credential(daaas))
    print("resources ready")


def wait_for_vgpu_inventory(conn) -> None:
    while True:
        for rp in conn.placement.resource_providers():
            inventory = {i.resource_class for i in conn.placement.resource_provider_inventories(rp)}
            if "VGPU" in inventory:
                return
        time.sleep(2)


def app_credential(daaas) -> dict[str, str]:
    conn = openstack.connect(auth_type="password", region_name="RegionOne", auth={
        **ADMIN, "username": "daaas", "password": PORTAL_PASSWORD, "project_name": "daaas"})
    me = conn.current_user_id
    for old in conn.identity.application_credentials(user=me):
        if old.name == "daaas-portal":
            conn.identity.delete_application_credential(me, old)
    cred = conn.identity.create_application_credential(me, "daaas-portal",
                                                       description="daaas test portal")
    return {"application_credential_id": cred.id, "application_credential_secret": cred.secret}


def write_clouds(base: str, cred: dict[str, str]) -> None:
    common = {"region_name": "RegionOne", "identity_api_version": 3, "interface": "public"}
    clouds = {"clouds": {
        "daaas": {**common, "auth_type": "v3applicationcredential",
                  "auth": {"auth_url": AUTH_URL, **cred}},
        "daaas-quota": {**common, "auth_type": "password", "auth": {
            **ADMIN, "username": "daaas-quota", "password": PORTAL_PASSWORD,
            "project_name": "daaas-quota"}},
        "daaas-admin": {**common, "auth_type": "password", "auth": ADMIN},
        "daaas-unreachable": {**common, "auth_type": "password", "auth": {
            **ADMIN, "auth_url": "http://127.0.0.1:9/v3"}},  # nothing listens on port 9
    }}
    path = os.path.join(base, "clouds.yaml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        yaml.safe_dump(clouds, out)
    print("wrote", path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("step", choices=["catalog", "wait-compute", "resources"])
    args = parser.parse_args()
    conn = admin()
    {"catalog": lambda: catalog(conn), "wait-compute": lambda: wait_compute(conn),
     "resources": lambda: resources(conn, args.base)}[args.step]()


if __name__ == "__main__":
    main()
