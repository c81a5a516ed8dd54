"""The consumer tells, from inside, whether its unit's sandbox is in effect."""

from __future__ import annotations

from pathlib import Path

from capillary.worker.sandbox import mount_options, problems

# /proc/self/mountinfo of a service under ProtectSystem=strict, ProtectHome=yes, PrivateTmp=yes
# (trimmed), and of the same service where systemd could not build the namespace.
SANDBOXED = """\
1134 1133 0:50 / / ro,relatime master:1 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
1135 1134 0:52 / /dev rw,nosuid - tmpfs tmpfs rw
1140 1134 0:50 /srv/capillary /srv/capillary rw,relatime master:1 - overlay overlay rw
1141 1134 0:58 / /home ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=000
1142 1134 0:58 / /root ro,nosuid,nodev,noexec - tmpfs tmpfs ro,mode=000
1143 1134 0:59 /systemd-private-1/tmp /tmp rw,nosuid,nodev - tmpfs tmpfs rw
"""
UNSANDBOXED = """\
900 899 0:50 / / rw,relatime - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
901 900 0:52 / /dev rw,nosuid - tmpfs tmpfs rw
"""


def test_the_mount_covering_a_path_is_the_topmost_of_the_longest_mount_point() -> None:
    assert mount_options(SANDBOXED, "/usr") == ["ro", "relatime"]
    assert mount_options(SANDBOXED, "/srv/capillary/work") == ["rw", "relatime"]
    # A later mount over the same point wins, as the kernel stacks them.
    stacked = UNSANDBOXED + "950 900 0:60 / / ro - overlay overlay ro\n"
    assert mount_options(stacked, "/usr") == ["ro"]
    # Paths with spaces are octal-escaped in mountinfo.
    assert mount_options("1 0 0:1 / /a\\040b ro - tmpfs t ro\n", "/a b/c") == ["ro"]
    assert mount_options("", "/usr") is None


def test_a_read_only_system_and_an_inaccessible_home_pass(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0)
    try:
        # Root reads a mode-000 directory anyway; then only the mount check can speak.
        expected = [f"{home} can be listed (ProtectHome=yes is not in effect)"] if _can_list(home) else []
        assert problems(SANDBOXED, home=home) == expected
    finally:
        home.chmod(0o755)


def test_a_writable_system_and_a_visible_home_are_both_named(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    assert problems(UNSANDBOXED, home=home) == [
        "/usr is not on a read-only mount (ProtectSystem=strict is not in effect)",
        f"{home} can be listed (ProtectHome=yes is not in effect)",
    ]


def test_this_test_process_is_not_sandboxed() -> None:
    # The check reads this process's own mount table: pytest runs with /usr writable or not, but
    # never with the unit's whole sandbox.
    assert problems() != []


def _can_list(path: Path) -> bool:
    try:
        next(path.iterdir(), None)
    except PermissionError:
        return False
    return True
