"""Inheritance: how a child entry (``extends: <parent>``) is merged onto its resolved parent.

The raw mappings are merged first and the result is validated as a whole, so a child may leave
out required fields its parent provides. The rules:

- ``name``, ``abstract``, ``extends`` and ``remove_applications`` are never inherited: a child
  of an abstract base is launchable unless it says ``abstract: true`` itself.
- Scalars (title, icon, gpu, ...) and lists not named below: the child's value replaces the
  parent's.
- Mappings (``flavors``, ``limits``, ``access``) are merged key by key, recursively; a list
  inside a mapping (``flavors.allowed``, ``access.groups``) is replaced, not extended.
- ``image`` is replaced whole when the child gives one (a child ``image: {tag: x}`` must not
  keep the parent's ``name``).
- ``applications``: the parent's, minus those named in the child's ``remove_applications``,
  followed by the child's; a child application with the same ``name`` as an inherited one
  replaces it in place (same position in the menu).
- ``cvmfs_repositories``: the parent's followed by the child's new ones (ordered union).

The merge never fails on badly typed input (the per-file check reports those); it returns the
problems only merging can find (removing an application that is not inherited).
"""

from __future__ import annotations

from typing import Any

from daaas.catalogue.checks import Issue

NOT_INHERITED = frozenset({"name", "abstract", "extends", "remove_applications"})
REPLACED_WHOLE = frozenset({"image"})
MERGED_MAPPINGS = frozenset({"flavors", "limits", "access"})


def may_inherit(loc: tuple[int | str, ...]) -> bool:
    """Return True if a field missing at ``loc`` in a child file may come from its parent."""
    return len(loc) == 1 or (loc[0] in MERGED_MAPPINGS and all(isinstance(k, str) for k in loc))


def merge(parent: dict[str, Any], child: dict[str, Any]) -> tuple[dict[str, Any], list[Issue]]:
    """Return the child merged onto its resolved parent, and the merge's own problems."""
    merged = {key: value for key, value in parent.items() if key not in NOT_INHERITED}
    apps, issues = _remove_apps(parent.get("applications"), child.get("remove_applications"))
    merged["applications"] = apps
    for key, value in child.items():
        if key == "applications":
            merged[key] = _merge_apps(merged[key], value)
        elif key == "cvmfs_repositories":
            merged[key] = _union(merged.get(key), value)
        elif key in REPLACED_WHOLE or key == "remove_applications":
            merged[key] = value
        else:
            merged[key] = merge_values(merged.get(key), value)
    merged.pop("remove_applications", None)
    return merged, issues


def merge_values(parent: Any, child: Any) -> Any:
    """Return ``child`` merged onto ``parent``: mappings key by key, anything else replaced."""
    if not (isinstance(parent, dict) and isinstance(child, dict)):
        return child
    merged = dict(parent)
    for key, value in child.items():
        merged[key] = merge_values(parent.get(key), value)
    return merged


def _app_name(app: Any) -> Any:
    return app.get("name") if isinstance(app, dict) else None


def _remove_apps(inherited: Any, remove: Any) -> tuple[list[Any], list[Issue]]:
    apps = list(inherited) if isinstance(inherited, list) else []
    if not isinstance(remove, list):
        return apps, []
    names = [_app_name(app) for app in apps]
    issues = [
        ("remove_applications", f"expected the name of an inherited application "
         f"({', '.join(map(str, names)) or 'none inherited'}) (got {name!r})")
        for name in remove
        if name not in names
    ]  # fmt: skip
    return [app for app in apps if _app_name(app) not in remove], issues


def _merge_apps(inherited: list[Any], own: Any) -> Any:
    if not isinstance(own, list):
        return own
    merged = list(inherited)
    positions = {_app_name(app): i for i, app in enumerate(merged) if _app_name(app)}
    for app in own:
        name = _app_name(app)
        if isinstance(name, str) and name in positions:
            merged[positions[name]] = app
        else:
            merged.append(app)
    return merged


def _union(inherited: Any, own: Any) -> Any:
    if not (isinstance(inherited, list) and isinstance(own, list)):
        return own
    return inherited + [repo for repo in own if repo not in inherited]
