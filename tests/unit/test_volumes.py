"""Finding the data volume from fake /dev/disk listings, as they look on Nitro, Xen and containers."""

from __future__ import annotations

import pytest

from capillary.release.volumes import VolumeError, ebs_by_id_name, ebs_volume_mappings, find_data_volume

NITRO_BY_ID = [
    "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaaa",
    "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0aaaaaaaaaaaaaaaa-part1",
    "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbbb",
    "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbbb_1",
    "/dev/disk/by-id/nvme-nvme.1d0f-766f6c3062626262-416d617a6f6e20456c617374696320426c6f636b2053746f7265-00000001",
]


def test_ebs_volume_is_found_by_id_whatever_its_nvme_name() -> None:
    dev = find_data_volume(NITRO_BY_ID, volume_id="vol-0bbbbbbbbbbbbbbbb")
    assert dev == "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbbb"


def test_only_a_namespace_link_is_accepted_but_never_a_partition() -> None:
    only_ns = [
        "nvme-Amazon_Elastic_Block_Store_vol0cccccccccccccccc_1",
        "nvme-Amazon_Elastic_Block_Store_vol0cccccccccccccccc-part1",
    ]
    assert find_data_volume(only_ns, volume_id="vol-0cccccccccccccccc") == (
        "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0cccccccccccccccc_1"
    )
    assert find_data_volume(only_ns[1:], volume_id="vol-0cccccccccccccccc") == ""


def test_a_label_from_an_earlier_run_or_a_snapshot_is_found() -> None:
    assert find_data_volume([], label="capillary-data", by_label=["/dev/disk/by-label/capillary-data"]) == (
        "/dev/disk/by-label/capillary-data"
    )


def test_explicit_device_only_if_it_exists_and_nothing_in_a_container() -> None:
    assert (
        find_data_volume([], device="/dev/xvdf", existing_devices=["/dev/xvda", "/dev/xvdf"]) == "/dev/xvdf"
    )
    assert find_data_volume([], device="/dev/xvdf", existing_devices=["/dev/xvda"]) == ""
    assert find_data_volume([], volume_id="vol-0aaaaaaaaaaaaaaaa", label="capillary-data") == ""


def test_volume_ids_are_validated() -> None:
    assert ebs_by_id_name("vol-0123abcd") == "nvme-Amazon_Elastic_Block_Store_vol0123abcd"
    with pytest.raises(VolumeError, match="data_volume_ebs_volume_id 'disk1'"):
        ebs_by_id_name("disk1")


# One instance as amazon.aws.ec2_instance_info returns it (snake_case), trimmed to what matters:
# a Packer build instance with its root volume and the data volume attached as /dev/sdf.
BUILD_INSTANCE = {
    "instance_id": "i-0123456789abcdef0",
    "root_device_name": "/dev/xvda",
    "block_device_mappings": [
        {"device_name": "/dev/xvda", "ebs": {"volume_id": "vol-0aaaaaaaaaaaaaaaa", "status": "attached"}},
        {"device_name": "/dev/sdf", "ebs": {"volume_id": "vol-0bbbbbbbbbbbbbbbb", "status": "attached"}},
    ],
}


def test_the_volume_at_each_device_name_of_a_build_instance() -> None:
    # GIVEN the description of a build instance WHEN its mappings are read
    mappings = ebs_volume_mappings(BUILD_INSTANCE)
    # THEN the data volume is the one at /dev/sdf, and the root volume is not mistaken for it
    assert mappings == {"/dev/xvda": "vol-0aaaaaaaaaaaaaaaa", "/dev/sdf": "vol-0bbbbbbbbbbbbbbbb"}
    # and the id it gives is one data_volume can find under /dev/disk/by-id
    by_id = [f"/dev/disk/by-id/{ebs_by_id_name(v)}" for v in mappings.values()]
    assert find_data_volume(by_id, volume_id=mappings["/dev/sdf"]) == (
        "/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol0bbbbbbbbbbbbbbbb"
    )


def test_names_get_dev_and_mappings_without_an_ebs_volume_are_left_out() -> None:
    instance = {
        "block_device_mappings": [
            {"device_name": "sdf", "ebs": {"volume_id": "vol-0bbbbbbbbbbbbbbbb"}},
            {"device_name": "/dev/sdb", "virtual_name": "ephemeral0"},
            {"device_name": "/dev/sdg", "ebs": {}},
            "not a mapping",
        ]
    }
    assert ebs_volume_mappings(instance) == {"/dev/sdf": "vol-0bbbbbbbbbbbbbbbb"}


def test_an_instance_without_mappings_has_none() -> None:
    assert ebs_volume_mappings({}) == {}
    assert ebs_volume_mappings({"block_device_mappings": None}) == {}
