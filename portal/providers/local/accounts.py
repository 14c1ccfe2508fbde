"""Whose account a local desktop runs under: the portal user's own POSIX account.

When the portal runs as root, every portal user gets a system account on this host, made on
their first launch with the uid/gid the portal gave them (``useradd``: no home made by it, a
locked password, ``/usr/sbin/nologin`` as login shell, and the comment :data:`MARK`, so
nobody can log in to it from outside). Every program of the session is then started through
``setpriv`` as that uid/gid with the account's supplementary groups only, every capability
dropped (inheritable, ambient and bounding sets) and ``no_new_privs`` set, so no setuid program
inside the desktop gives anything back.

When the portal does not run as root it cannot switch users. Then desktops start only in the
explicit single-user mode (``local_single_user_mode``), under the portal's own account, and the
portal says so at start and on the admin page; without it a launch is refused with a message
that says what to do.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from daaas.portal.providers.errors import LaunchFailed

#: The comment of every account the portal made: an existing account is used for a desktop
#: only when it carries it, so a desktop never runs as a host's own person or service.
MARK = "daaas portal user"
NOLOGIN = "/usr/sbin/nologin"
POSIX_NAME = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
SESSION_SHELL = "/bin/bash"


@dataclass(frozen=True)
class SessionAccount:
    """The POSIX account a session's programs run as; ``switch`` is False in single-user mode
    (the programs keep the portal's own account)."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    switch: bool

    def command(self, argv: list[str]) -> list[str]:
        """Return ``argv`` prefixed so it runs as this account with no privileges left.

        In single-user mode ``argv`` is returned unchanged. Raises nothing.
        """
        if not self.switch:
            return argv
        groups = ",".join(str(gid) for gid in self.groups) or str(self.gid)
        return [setpriv(), f"--reuid={self.uid}", f"--regid={self.gid}", f"--groups={groups}",
                "--inh-caps=-all", "--ambient-caps=-all", "--bounding-set=-all",
                "--no-new-privs", "--", *argv]


def can_switch_users() -> bool:
    """Return True when this process can start programs as other users (it runs as root)."""
    return os.geteuid() == 0


def isolation_notice(single_user_mode: bool) -> str | None:
    """Return what the portal tells its administrators (at start, on the admin page) when
    local desktops cannot run under each user's own account; None when they do (root).
    Raises nothing."""
    if can_switch_users():
        return None
    account = pwd.getpwuid(os.getuid()).pw_name
    if single_user_mode:
        return (f"Local desktops run in single-user mode: every desktop runs as the portal's "
                f"own account ({account}), so desktops are not isolated from the portal or "
                "from each other. Use it only on a one-person workstation; run the portal as "
                "root to give every user their own account.")
    return (f"Local desktops are refused: the portal runs as {account}, not root, so it cannot "
            "start desktops under each user's own account. Run it as root, or set "
            "local_single_user_mode = true on a one-person workstation.")


def session_account(username: str, uid: int, gid: int, *,
                    single_user_mode: bool) -> SessionAccount:
    """Return the account a desktop of portal user ``username`` (``uid``/``gid``) runs as.

    As root: that user's system account, made now if missing. Otherwise, with
    ``single_user_mode``: the portal's own account. Raises LaunchFailed when the portal cannot
    switch users and single-user mode is off, when the uid or gid belongs to an account or
    group the portal did not make, or when useradd/groupadd fail.
    """
    if can_switch_users():
        return ensure_account(username, uid, gid)
    if single_user_mode:
        own = pwd.getpwuid(os.getuid())
        return SessionAccount(own.pw_name, own.pw_uid, own.pw_gid,
                              tuple(os.getgroups()), switch=False)
    raise LaunchFailed(
        "Desktops cannot be started on this server: the portal does not run as root, so it "
        "cannot start your desktop under your own account. Ask the facility's administrator.",
        f"local launch for {username} refused: the portal runs as uid {os.getuid()}, not root, "
        "and local_single_user_mode is off. Run the portal as root, or set "
        "local_single_user_mode = true on a one-person workstation (desktops then run as the "
        "portal's own account, not isolated).")


def check_reachable(folder: Path) -> None:
    """Check that other accounts may pass through every folder above ``folder`` (a session's
    home, a user's storage): desktops run as their users' accounts and reach their homes
    there. Returns None; raises LaunchFailed naming the first folder that shuts them out."""
    for parent in folder.resolve().parents:
        if not os.stat(parent).st_mode & 0o001:
            raise LaunchFailed(
                "Desktops cannot be started on this server; ask the facility's administrator.",
                f"{parent} (above {folder}) does not let other accounts pass through (no o+x):"
                " each desktop runs as its user's own account and must reach its home and "
                "storage under var_dir. Put var_dir somewhere others can pass through (e.g. "
                f"/var/lib/daaas) or run `chmod o+x {parent}`.")


def ensure_account(username: str, uid: int, gid: int) -> SessionAccount:
    """Return the system account with ``uid``, creating it (and group ``gid``) if missing.

    The account's name is the portal username when it is a valid POSIX name not taken by
    another uid, else ``daaas-<uid>``. Raises LaunchFailed when ``uid`` is an account the
    portal did not make (see :data:`MARK`), or when useradd/groupadd fail.
    """
    existing = _by_uid(uid)
    if existing is None:
        name = _free_name(username, uid)
        _ensure_group(name, gid)
        _run(["useradd", "--uid", str(uid), "--gid", str(gid), "--no-create-home",
              "--home-dir", "/nonexistent", "--shell", NOLOGIN, "--comment", MARK,
              "--no-user-group", name], uid)
        existing = pwd.getpwuid(uid)
    elif existing.pw_gecos != MARK:
        raise LaunchFailed(
            "Your desktop cannot be started: your account's number is taken on this server. "
            "Ask the facility's administrator.",
            f"uid {uid} of portal user {username} belongs to the host account "
            f"{existing.pw_name!r}, not made by the portal (comment {MARK!r}); choose "
            "first_uid above the host's accounts")
    groups = tuple(sorted(set(os.getgrouplist(existing.pw_name, existing.pw_gid))))
    return SessionAccount(existing.pw_name, uid, existing.pw_gid, groups, switch=True)


def setpriv() -> str:
    """Return the path of util-linux's setpriv. Raises LaunchFailed if it is missing."""
    found = shutil.which("setpriv")
    if found is None:
        raise LaunchFailed("The desktop could not be started on this host.",
                           "setpriv (Debian package util-linux) is not installed")
    return found


def _by_uid(uid: int) -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        return None


def _free_name(username: str, uid: int) -> str:
    if POSIX_NAME.match(username):
        try:
            pwd.getpwnam(username)
        except KeyError:
            return username
    return f"daaas-{uid}"


def _ensure_group(name: str, gid: int) -> None:
    try:
        grp.getgrgid(gid)
    except KeyError:
        taken = name in {group.gr_name for group in grp.getgrall()}
        _run(["groupadd", "--gid", str(gid), f"daaas-{gid}" if taken else name], gid)


def _run(argv: list[str], number: int) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise LaunchFailed("Your account could not be set up on this server.",
                           f"{argv[0]} for id {number} exited {done.returncode}: "
                           f"{done.stderr.strip()[-300:]}")
