"""A stand-in for the get-pip script that ansible-test bootstraps each sanity virtualenv with.

ansible-test downloads that script from ci-files.testing.ansible.com, which a machine behind a
package mirror cannot reach. This one does what it does, from pip's own wheel (fetched with
`pip download`, which the mirror serves) saved beside it: install pip into the new virtualenv.
ansible-test runs it with the arguments it gives get-pip (pip options and `pip==<version>`).
`make sanity` copies it to ~/.ansible/test/cache/get_pip_<version>.py only when that is missing.
"""

from __future__ import annotations

import sys
from pathlib import Path

GET_PIP_ONLY = ("--no-setuptools", "--no-wheel")  # get-pip options that pip install does not take


def main() -> int:
    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
    version = next((a.split("==", 1)[1] for a in args if a.startswith("pip==")), "")
    wheel = Path(__file__).resolve().with_name(f"pip-{version}-py3-none-any.whl")
    if not wheel.is_file():
        print(f"{wheel}: no pip {version or '(version not given)'} wheel beside this script", file=sys.stderr)
        return 1
    sys.path.insert(0, str(wheel))
    from pip._internal.cli.main import main as pip

    return int(pip(["install", "--no-index", "--find-links", str(wheel.parent), *args]))


if __name__ == "__main__":
    sys.exit(main())
