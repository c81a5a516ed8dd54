"""Is the consumer inside its systemd unit's filesystem sandbox? Checked from inside the service.

systemd builds the unit's sandbox (`ProtectSystem=strict`, `ProtectHome=yes`, `PrivateTmp=yes`)
as a mount namespace. Where it cannot - a container without CAP_SYS_ADMIN - it starts the
service without it and says nothing, while `systemd-analyze security` still scores the unit as
if it were there. So the unit sets `require_sandbox` and the daemon looks for itself before it
takes a message: the filesystem holding /usr must be mounted read-only for it, and /home must be
inaccessible. Anything else and it refuses to start (EXIT_CONFIG: systemd does not restart it).
"""

from __future__ import annotations

from pathlib import Path

MOUNTINFO = Path("/proc/self/mountinfo")


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_options(mountinfo: str, path: str) -> list[str] | None:
    """The per-mount options of the mount `path` is on (the last, i.e. topmost, of the longest
    mount point above it), or None when no mount covers it."""
    best: tuple[int, list[str]] | None = None
    for line in mountinfo.splitlines():
        fields = line.split()
        if len(fields) < 6:
            continue
        point = _unescape(fields[4])
        covers = path == point or point == "/" or path.startswith(point.rstrip("/") + "/")
        if covers and (best is None or len(point) >= best[0]):
            best = (len(point), fields[5].split(","))
    return None if best is None else best[1]


def problems(mountinfo: str | None = None, home: Path = Path("/home")) -> list[str]:
    """What says the sandbox is not in effect for this process; empty when it is."""
    found: list[str] = []
    text = MOUNTINFO.read_text() if mountinfo is None else mountinfo
    options = mount_options(text, "/usr")
    if options is None or "ro" not in options:
        found.append("/usr is not on a read-only mount (ProtectSystem=strict is not in effect)")
    if home.is_dir():
        try:
            next(home.iterdir(), None)
        except PermissionError:
            pass
        else:
            found.append(f"{home} can be listed (ProtectHome=yes is not in effect)")
    return found
