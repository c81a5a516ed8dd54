"""Find the data volume's block device whatever the kernel named it (one home for this logic).

On Nitro instances an EBS volume attached as /dev/sdf appears as /dev/nvme1n1 (or nvme2n1...,
in attach order, not stable across boots); its stable name is the udev link
/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol<id without the hyphen>. On Xen instances it
is /dev/xvdf. The data_volume role lists /dev/disk/by-id and /dev/disk/by-label on the target
and asks `find_data_volume` (through the `capillary.pcgr.data_volume_device` filter) which
device to use; nothing found means "no separate volume" (containers, local runs).

At bake time the volume id is not known in advance: Packer attaches the data volume at a device
name (/dev/sdf), and `ebs_volume_mappings` reads the id mapped there from the build instance's
description (the `capillary.pcgr.ebs_volume_mappings` filter, in the build_instance role:
roles/build_instance/tasks/data_volume.yml).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

EBS_PREFIX = "nvme-Amazon_Elastic_Block_Store_"
_VOLUME_ID = re.compile(r"^vol-?([0-9a-f]{8}|[0-9a-f]{17})$")


class VolumeError(ValueError):
    pass


def ebs_by_id_name(volume_id: str) -> str:
    """`vol-0123…` -> `nvme-Amazon_Elastic_Block_Store_vol0123…` (udev drops the hyphen)."""
    m = _VOLUME_ID.match(volume_id)
    if not m:
        raise VolumeError(f"data_volume_ebs_volume_id {volume_id!r}: expected vol-<8 or 17 hex digits>")
    return f"{EBS_PREFIX}vol{m.group(1)}"


def _basename(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def find_data_volume(
    by_id: Iterable[str] = (),
    *,
    volume_id: str = "",
    device: str = "",
    by_label: Iterable[str] = (),
    label: str = "",
    existing_devices: Iterable[str] = (),
) -> str:
    """The device path to format and mount, or "" when there is no data volume to manage.

    Order: the EBS volume id (by-id link, partitions and `-ns-N` namespace links ignored), then
    an existing filesystem label (a volume formatted by an earlier run or restored from a
    snapshot), then an explicit `device` if it exists. `by_id`/`by_label` are the entries of
    /dev/disk/by-id and /dev/disk/by-label (names or full paths).
    """
    ids = {_basename(p): p for p in by_id}
    if volume_id:
        want = ebs_by_id_name(volume_id)
        for name in sorted(ids):
            if name == want or (name.startswith(want + "_") and "-part" not in name):
                return f"/dev/disk/by-id/{name}"
        for name in sorted(ids):
            if name.startswith(want) and "-part" not in name:
                return f"/dev/disk/by-id/{name}"
    if label and label in {_basename(p) for p in by_label}:
        return f"/dev/disk/by-label/{label}"
    if device and device in set(existing_devices):
        return device
    return ""


def _strings(value: object) -> list[str]:
    return [str(x) for x in value] if isinstance(value, list | tuple) else []


def data_volume_device(facts: Mapping[str, object]) -> str:
    """Adapter for the filter: one dict with the keys of `find_data_volume`."""
    return find_data_volume(
        _strings(facts.get("by_id")),
        volume_id=str(facts.get("volume_id", "") or ""),
        device=str(facts.get("device", "") or ""),
        by_label=_strings(facts.get("by_label")),
        label=str(facts.get("label", "") or ""),
        existing_devices=_strings(facts.get("existing_devices")),
    )


def _device_path(name: str) -> str:
    return name if name.startswith("/dev/") else f"/dev/{name}"


def ebs_volume_mappings(instance: Mapping[str, object]) -> dict[str, str]:
    """Device name -> EBS volume id of an instance as `amazon.aws.ec2_instance_info` returns it
    (`block_device_mappings: [{device_name, ebs: {volume_id}}]`). Names are given a /dev/ prefix
    when they lack one; mappings without an EBS volume id are left out."""
    found: dict[str, str] = {}
    mappings = instance.get("block_device_mappings")
    for mapping in mappings if isinstance(mappings, list) else []:
        if not isinstance(mapping, Mapping):
            continue
        ebs = mapping.get("ebs")
        volume_id = ebs.get("volume_id") if isinstance(ebs, Mapping) else None
        name = mapping.get("device_name")
        if isinstance(name, str) and name and isinstance(volume_id, str) and volume_id:
            found[_device_path(name)] = volume_id
    return found
