# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0
"""How PCGR is started on a worker, from `capillary.worker.engines.pcgr` (its one home)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: pcgr_command
short_description: The argv and environment that run PCGR the way the consumer's engine does
version_added: 0.1.0
description:
  - The consumer's C(pcgr) engine runs PCGR itself - C(<runtime> run) of the release's image with
    the worker layout's mounts, or the release's conda env with C(CONDA_PREFIX) set - and there is
    no wrapper on PATH. This filter gives the same argv for other arguments (the pcgr role's
    C(pcgr --version) smoke check), so an install is checked the way it will run.
  - Requires the C(capillary-pcgr) Python package on the controller (C(pip install capillary-pcgr)).
options:
  _input:
    description: The PCGR arguments, e.g. C([--version]).
    type: list
    elements: str
    required: true
  method:
    description: C(container) or C(conda).
    type: str
    required: true
  release:
    description: The PCGR release (the conda method's default env path derives from it).
    type: str
    required: true
  image:
    description: The image reference (container method).
    type: str
    default: ""
  runtime:
    description: The container runtime's path or name (container method).
    type: str
    default: podman
  user:
    description: uid:gid the container runs as (container method).
    type: str
    default: "65534:65534"
  conda_env:
    description: The C(pcgr) env's prefix (conda method); empty means the default layout's.
    type: str
    default: ""
  cache:
    description: The writable C(XDG_CACHE_HOME) (conda method; C(HOME) is its parent).
    type: str
    default: /var/tmp/.cache
  path:
    description: The C(PATH) the command starts from (the conda env's C(bin) goes first).
    type: str
    default: /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
"""

EXAMPLES = r"""
- name: Smoke-check PCGR the way the consumer runs it
  ansible.builtin.command:
    argv: "{{ __smoke.argv }}"
  environment: "{{ __smoke.environment }}"
  changed_when: false
  vars:
    __smoke: >-
      {{ ['--version'] | capillary.pcgr.pcgr_command(method='container', release='2.3.2',
           image='ghcr.io/sigven/pcgr:2.3.2', runtime='/usr/bin/podman') }}
"""

RETURN = r"""
_value:
  description:
    - C(argv) (list) and C(environment) (the variables the engine sets on top of the inherited
      environment; empty for the container method).
  type: dict
"""

from pathlib import Path

from ansible.errors import AnsibleFilterError
from ansible_collections.capillary.pcgr.plugins.module_utils.capillary_package import import_capillary


def pcgr_command(
    args,
    method,
    release,
    image="",
    runtime="podman",
    user="65534:65534",
    conda_env="",
    cache="/var/tmp/.cache",  # noqa: S108 - the smoke check's throwaway cache, on the target
    path="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
):
    engines = import_capillary("worker.engines", "capillary.pcgr.pcgr_command", AnsibleFilterError)
    pcgr = import_capillary("worker.engines.pcgr", "capillary.pcgr.pcgr_command", AnsibleFilterError)
    if method == "container" and not image:
        raise AnsibleFilterError("capillary.pcgr.pcgr_command: the container method needs an image")
    cfg = pcgr.PcgrConfig(
        release=str(release),
        method=str(method),
        conda_prefix=Path(conda_env) if conda_env else None,
        container_image=str(image),
        container_runtime=str(runtime),
    )
    base = {"PATH": str(path)}
    try:
        argv, env = pcgr.invocation(
            cfg, [str(a) for a in args], user=str(user), cache=Path(cache), environ=base
        )
    except engines.EngineSetupError as exc:
        raise AnsibleFilterError(f"capillary.pcgr.pcgr_command: {exc}") from exc
    return {"argv": argv, "environment": {} if method == "container" else env}


class FilterModule:
    def filters(self):
        return {"pcgr_command": pcgr_command}
