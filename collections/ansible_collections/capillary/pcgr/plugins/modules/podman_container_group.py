#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the Capillary project
# SPDX-License-Identifier: Apache-2.0

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: podman_container_group
version_added: 0.2.0
short_description: Size a group of identical podman containers so that concurrent runs agree
description:
  - The local stand-in for an Auto Scaling group (M(capillary.pcgr.autoscaling_group_capacity)) - a
    group of containers named O(name_prefix) plus a slot number from 1 to O(max_size), started from
    one image with the same options, sized to what the work needs.
  - Counting and starting happen under an exclusive lock (C(flock) on O(lock_file)), so any number of
    runs on one machine at once end with the same containers - never more than O(max_size), and
    (unless O(scale_in)) never fewer than there were. A slot's name is taken while its container
    exists, running or not, so a container on its way out is not counted and not doubled.
  - With O(fence), a take-down wins over every run that started before it - O(state=absent) writes a
    new token into the O(fence.path) file and removes every container of the group, under the lock;
    O(state=present) starts nothing once the token is no longer O(fence.token).
  - Runs C(podman) on the machine the module runs on (the controller, for the local platform).
author:
  - Capillary maintainers (@capillary-pcgr)
options:
  name_prefix:
    description: Containers are named this prefix and a slot number (C(capillary-demo-worker-1)).
    type: str
    required: true
  state:
    description: V(present) sizes the group; V(absent) removes every container of it.
    type: str
    choices: [present, absent]
    default: present
  desired:
    description: How many containers the work needs (O(state=present)); at most O(max_size) run.
    type: int
    default: 0
  max_size:
    description: The cap, and the highest slot number (O(state=present)).
    type: int
    default: 0
  scale_in:
    description:
      - Remove the live containers beyond O(desired), highest slot first, and start none (instead of
        starting up to O(desired) and never removing any).
    type: bool
    default: false
  image:
    description: The image containers start from (needed to start one).
    type: str
  labels:
    description: Labels of every container started.
    type: dict
    default: {}
  volumes:
    description: Volumes (C(source:destination[:options])) of every container started.
    type: list
    elements: str
    default: []
  network:
    description: The network mode.
    type: str
    default: host
  systemd:
    description: podman's C(--systemd) mode (V(always) boots systemd as PID 1).
    type: str
    default: always
  cap_add:
    description: Capabilities added to every container.
    type: list
    elements: str
    default: []
  auto_remove:
    description: Remove a container when it exits (a worker that powers off is gone).
    type: bool
    default: true
  lock_file:
    description: The file locked around counting and starting; every run for the group must use the same.
    type: path
    required: true
  fence:
    description:
      - The take-down token in a file. O(state=present) - the token read when the run started (empty
        when there was none); O(state=absent) - the new token written.
    type: dict
    suboptions:
      path:
        description: The token file.
        type: path
        required: true
      token:
        description: The token.
        type: str
        default: ""
  executable:
    description: The podman executable.
    type: str
    default: podman
notes:
  - Supports check mode (nothing is started or removed; C(changed) says whether something would be).
"""

EXAMPLES = r"""
- name: Run the containers the queue needs, at most 4
  capillary.pcgr.podman_container_group:
    name_prefix: capillary-demo-worker-
    desired: 3
    max_size: 4
    image: localhost/capillary-worker:2.3.2
    cap_add: [SYS_ADMIN]
    labels:
      capillary:deployment: demo
    volumes:
      - /srv/capillary/demo/launch.env:/etc/capillary/launch.env:ro
    lock_file: /srv/capillary/demo/workers.lock
    fence:
      path: /srv/capillary/demo/down.token
      token: "{{ token_seen_at_start }}"

- name: Remove them all
  capillary.pcgr.podman_container_group:
    name_prefix: capillary-demo-worker-
    state: absent
    lock_file: /srv/capillary/demo/workers.lock
    fence:
      path: /srv/capillary/demo/down.token
      token: down-20250101T000000Z-1234
"""

RETURN = r"""
started:
  description: Containers this run started.
  returned: always
  type: list
  elements: str
  sample: [capillary-demo-worker-1]
removed:
  description: Containers this run removed.
  returned: always
  type: list
  elements: str
  sample: []
running:
  description: The group's live containers (running, or created and starting) when the run ended.
  returned: always
  type: list
  elements: str
  sample: [capillary-demo-worker-1, capillary-demo-worker-2]
superseded:
  description: A take-down ran after this run started (the fence token changed); nothing was started.
  returned: always
  type: bool
  sample: false
msg:
  description: What the run did.
  returned: always
  type: str
  sample: started 1, removed 0, 2 running
"""

import fcntl
import json
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.capillary.pcgr.plugins.module_utils.group_capacity import (
    CapacityError,
    target_capacity,
)

# States of a container that is capacity; an exited or stopping one still holds its name.
LIVE_STATES = ("running", "created", "configured", "initialized", "paused")

ARGUMENT_SPEC = dict(
    name_prefix=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    desired=dict(type="int", default=0),
    max_size=dict(type="int", default=0),
    scale_in=dict(type="bool", default=False),
    image=dict(type="str"),
    labels=dict(type="dict", default={}),
    volumes=dict(type="list", elements="str", default=[]),
    network=dict(type="str", default="host"),
    systemd=dict(type="str", default="always"),
    cap_add=dict(type="list", elements="str", default=[]),
    auto_remove=dict(type="bool", default=True),
    lock_file=dict(type="path", required=True),
    fence=dict(
        type="dict",
        options=dict(
            path=dict(type="path", required=True),
            token=dict(type="str", default="", no_log=False),  # a take-down marker, not a secret
        ),
    ),
    executable=dict(type="str", default="podman"),
)


def slot(prefix, name):
    """The slot number of `name` in the group, or None when it is not one of the group's names."""
    match = re.match("^%s([0-9]+)$" % re.escape(prefix), name)
    return int(match.group(1)) if match else None


def plan(prefix, containers, desired, max_size, scale_in=False):
    """(names to start, names to remove) for `containers` ({name: state} of the group).

    Starts go to the lowest free slots up to `max_size`; a scale-in starts none and removes the
    highest live slots beyond `desired`.
    """
    live = sorted(
        (n for n, state in containers.items() if state in LIVE_STATES), key=lambda n: slot(prefix, n)
    )
    goal = target_capacity(len(live), desired, max_size, scale_in)
    free = [prefix + str(i) for i in range(1, max_size + 1) if prefix + str(i) not in containers]
    start = [] if scale_in else free[: max(goal - len(live), 0)]
    remove = list(reversed(live))[: max(len(live) - goal, 0)]
    return start, remove


def run_argv(params, name):
    """`podman run` for one container of the group (argv, never a shell string)."""
    argv = [params["executable"], "run", "--detach", "--name", name, "--network", params["network"]]
    argv += ["--systemd", params["systemd"]]
    if params["auto_remove"]:
        argv.append("--rm")
    for cap in params["cap_add"]:
        argv += ["--cap-add", cap]
    for key, value in sorted(params["labels"].items()):
        argv += ["--label", "%s=%s" % (key, value)]
    for volume in params["volumes"]:
        argv += ["--volume", volume]
    return [*argv, params["image"]]


class ContainerGroup:
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.prefix = self.params["name_prefix"]

    def podman(self, *args, **kwargs):
        rc, out, err = self.module.run_command([self.params["executable"], *args])
        if rc != 0 and not kwargs.get("allow_fail"):
            self.module.fail_json(msg="podman %s failed: %s" % (" ".join(args[:2]), err.strip()), rc=rc)
        return rc, out, err

    def containers(self):
        """{name: state} of the group's containers, whatever their state."""
        _rc, out, _err = self.podman(
            "ps", "--all", "--format", "json", "--filter", "name=^%s[0-9]+$" % re.escape(self.prefix)
        )
        found = {}
        for entry in json.loads(out or "[]"):
            for name in entry.get("Names") or []:
                if slot(self.prefix, name) is not None:
                    found[name] = str(entry.get("State", "")).lower()
        return found

    def start(self, name):
        """Start one container; False when its name was taken meanwhile (then it is not ours to count)."""
        rc, _out, err = self.module.run_command(run_argv(self.params, name))
        if rc != 0:
            if "already in use" in err:
                return False
            self.module.fail_json(msg="podman run %s failed: %s" % (name, err.strip()), rc=rc)
        return True

    def remove(self, names):
        if names:
            self.podman("rm", "--force", "--time", "0", *names)


def read_token(path):
    try:
        with open(path) as fh:
            return fh.read().strip()
    except (IOError, OSError):
        return ""


def write_token(path, token):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(token + "\n")
    os.chmod(tmp, 0o600)
    os.rename(tmp, path)


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    group = ContainerGroup(module)
    result = dict(changed=False, started=[], removed=[], running=[], superseded=False)
    lock_dir = os.path.dirname(params["lock_file"])
    if lock_dir and not os.path.isdir(lock_dir):
        os.makedirs(lock_dir, 0o700)
    with open(params["lock_file"], "a") as lock:
        os.chmod(params["lock_file"], 0o600)
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        if params["state"] == "absent":
            if not params["fence"] or not params["fence"]["token"]:
                module.fail_json(msg="state=absent needs fence.token: a take-down writes a new token")
            names = sorted(group.containers(), key=lambda n: slot(group.prefix, n))
            # The token is bookkeeping, rewritten by every take-down: only removals are changes.
            result.update(changed=bool(names), removed=names)
            if not module.check_mode:
                write_token(params["fence"]["path"], params["fence"]["token"])
                group.remove(names)
            result["msg"] = "removed %d" % len(names)
            module.exit_json(**result)
        fence = params["fence"]
        if fence and read_token(fence["path"]) != fence["token"]:
            result.update(
                superseded=True,
                running=sorted(n for n, s in group.containers().items() if s in LIVE_STATES),
                msg="a take-down (down.yml) ran after this run started: it wins",
            )
            module.exit_json(**result)
        containers = group.containers()
        try:
            start, remove = plan(
                group.prefix, containers, params["desired"], params["max_size"], params["scale_in"]
            )
        except CapacityError as e:
            module.fail_json(msg="%s: %s" % (group.prefix, e))
        if start and not params["image"]:
            module.fail_json(msg="%s: image is needed to start %s" % (group.prefix, ", ".join(start)))
        result["changed"] = bool(start or remove)
        if not module.check_mode:
            result["started"] = [name for name in start if group.start(name)]
            group.remove(remove)
            result["removed"] = remove
            containers = group.containers()
        else:
            result.update(started=start, removed=remove)
        result["running"] = sorted(
            (n for n, s in containers.items() if s in LIVE_STATES), key=lambda n: slot(group.prefix, n)
        )
    result["msg"] = "started %d, removed %d, %d running" % (
        len(result["started"]),
        len(result["removed"]),
        len(result["running"]),
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
