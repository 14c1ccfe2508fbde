"""Checks across fields of a resolved environment: flavors and GPU policy, commands on CVMFS.

They run on the merged result of inheritance (a child may get its flavors from its parent and
its GPU policy from itself), so they are kept apart from the per-field types.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from daaas.catalogue.model import Environment

Issue = tuple[str, str]
"""A problem found by a check: (field path, message saying what was expected)."""


def consistency_issues(env: Environment) -> list[Issue]:
    """Return every problem between the fields of ``env``; an empty list if there is none."""
    return flavor_issues(env) + application_issues(env)


def flavor_issues(env: Environment) -> list[Issue]:
    """Return problems with the flavors: default allowed, GPU flavors matching ``gpu``."""
    flavors, gpu = env.flavors, env.gpu
    default, allowed, gpus = flavors.default, flavors.allowed, flavors.gpu
    stray = [name for name in gpus if name not in allowed]
    cpu = [name for name in allowed if name not in gpus and name != default]
    required = gpu == "required" and bool(gpus)
    checks = [
        (
            default not in allowed,
            "flavors.default",
            f"expected one of the allowed flavors ({', '.join(allowed)}) (got {default!r})",
        ),
        (bool(stray), "flavors.gpu", f"expected flavors also in flavors.allowed; add "
         f"{', '.join(stray)} there"),
        (gpu == "none" and bool(gpus), "flavors.gpu", "expected no GPU flavors because gpu is "
         "'none'; remove them or set gpu to 'optional'"),
        (gpu != "none" and not gpus, "flavors.gpu", "expected at least one GPU flavor because "
         f"gpu is {gpu!r}"),
        (required and default not in gpus, "flavors.default", "expected a GPU flavor because "
         f"gpu is 'required' ({', '.join(gpus)}) (got {default!r})"),
        (required and bool(cpu), "flavors.allowed", "expected only GPU flavors because gpu is "
         f"'required'; remove or add to flavors.gpu: {', '.join(cpu)}"),
    ]  # fmt: skip
    return [(field, message) for failed, field, message in checks if failed]


def application_issues(env: Environment) -> list[Issue]:
    """Return commands and icon files that are not in one of the environment's repositories."""
    repositories = ", ".join(env.cvmfs_repositories) or "none listed"
    return [
        (
            f"applications[{app.name}].{key}",
            f"expected a path in one of the cvmfs_repositories ({repositories}); add its "
            f"repository there (got {path!r})",
        )
        for app in env.applications
        for key, path in (("command", app.command), ("icon", app.icon))
        if path.startswith("/cvmfs/") and not env.provides(path)
    ]
