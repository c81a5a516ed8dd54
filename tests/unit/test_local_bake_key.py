"""capillary.local.bake: the build key `make demo` compares with the image's label, and the record
of the images it saw pass the smoke test.

The key must be bake.yml's to the byte (roles/bake/tasks/build.yml: `to_json(sort_keys=true) |
hash('sha256')`, first 12 characters, over the commit, the provisioning extra vars but the
catalogue's path, the catalogue's content as the `file` lookup reads it, the Packer variables):
the test computes it with Ansible's own filters.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from ansible.plugins.filter.core import get_hash, to_json

from capillary.local.bake import LocalImage, build_key, record_smoke_tested, smoke_tested


def test_the_key_is_what_bake_yml_computes_with_ansible_filters(tmp_path: Path) -> None:
    # GIVEN a catalogue with a trailing newline, and provisioning vars naming it
    catalogue = tmp_path / "catalogue.yml"
    catalogue.write_text("releases:\n  - version: 2.3.2\n    url: http://127.0.0.1:47207/x\n\n")
    provision = {
        "capillary_provision_roles": ["data_volume", "pcgr_refdata", "pcgr_consumer"],
        "data_volume_device": "",
        "pcgr_refdata_catalogue": str(catalogue),
        "pcgr_refdata_assemblies": ["grch38"],
    }
    packer = {"local_network": "host"}
    # WHEN the key is worked out here and the way the role does it
    ours = build_key("81a0bafc1c7d-dirty-0123456789ab", provision, packer)
    inputs = {
        "commit": "81a0bafc1c7d-dirty-0123456789ab",
        "provision": {k: v for k, v in provision.items() if k != "pcgr_refdata_catalogue"},
        "catalogue": catalogue.read_text().rstrip(),  # lookup('ansible.builtin.file') strips the end
        "packer": packer,
    }
    theirs = get_hash(to_json(inputs, sort_keys=True), "sha256")[:12]
    # THEN they agree, and each input moves the key
    assert ours == theirs
    assert build_key("81a0bafc1c7d", provision, packer) != ours
    assert build_key("81a0bafc1c7d-dirty-0123456789ab", provision, {"local_network": "bridge"}) != ours
    catalogue.write_text("releases: []\n")
    assert build_key("81a0bafc1c7d-dirty-0123456789ab", provision, packer) != ours


def test_only_an_image_recorded_as_smoke_tested_with_its_key_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CAPILLARY_CACHE", str(tmp_path / "cache"))
    tested = LocalImage("sha256:aaa", "b07be096b616")
    # GIVEN nothing recorded THEN no image counts as smoke-tested
    assert not smoke_tested(tested)
    # WHEN one image is recorded THEN it counts, and neither another image with the same label
    # nor the same image with another key does
    record_smoke_tested(tested)
    record_smoke_tested(LocalImage("sha256:bbb", "000000000000"))
    assert smoke_tested(tested)
    assert not smoke_tested(LocalImage("sha256:ccc", "b07be096b616"))
    assert not smoke_tested(LocalImage("sha256:aaa", "111111111111"))
    # AND a damaged record counts for nothing rather than failing the run
    (tmp_path / "cache" / "smoke-tested-images.json").write_text("{not json")
    assert not smoke_tested(tested)
