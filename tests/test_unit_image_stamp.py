"""Stamping the platform's labels on a sandbox-built image's config (pure logic of
controller/scheduler/image_stamp.py)."""
from __future__ import annotations

import json

import pytest

from controller.scheduler import image_stamp as stamp

CONFIG = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Cmd": ["sh"], "Labels": {"dockyard.app": "victim", "maintainer": "me",
                                                          "dockyard.addon": "victims-db", "dockyard.standby": "x"}},
                     "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "a" * 64, "sha256:" + "b" * 64]},
                     "history": [{"created_by": "COPY"}]}).encode()
MANIFEST = json.dumps({"schemaVersion": 2, "mediaType": stamp.MANIFEST_V2,
                       "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                                  "size": len(CONFIG), "digest": stamp.digest(CONFIG)},
                       "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                                   "size": 10, "digest": "sha256:" + "c" * 64}]}).encode()
OURS = {"dockyard.instance": "dy", "dockyard.app": "shop", "dockyard.build": "b1"}


def test_the_platforms_labels_replace_the_dockerfiles_and_keep_the_rest():
    doc = json.loads(stamp.labelled_config(CONFIG, OURS))
    # a tenant's dockyard.app is overridden; its other dockyard.* labels (an add-on's, a standby's) are gone
    assert doc["config"]["Labels"] == {**OURS, "maintainer": "me"}
    before = json.loads(CONFIG)
    assert doc["rootfs"] == before["rootfs"] and doc["history"] == before["history"]
    assert doc["config"]["Cmd"] == ["sh"]


def test_an_image_without_labels_or_config_gets_ours():
    for inner in (None, {}, {"Labels": None}):
        config = json.dumps({"rootfs": {"type": "layers", "diff_ids": []}, "config": inner}).encode()
        assert json.loads(stamp.labelled_config(config, OURS))["config"]["Labels"] == OURS


def test_the_new_manifest_names_the_new_config_and_the_same_layers():
    config = stamp.labelled_config(CONFIG, OURS)
    assert stamp.config_digest(MANIFEST) == stamp.digest(CONFIG)
    manifest = stamp.with_config(MANIFEST, config)
    doc = json.loads(manifest)
    assert stamp.config_digest(manifest) == stamp.digest(config) != stamp.digest(CONFIG)
    assert doc["config"]["size"] == len(config) and doc["config"]["mediaType"].endswith("image.v1+json")
    assert doc["layers"] == json.loads(MANIFEST)["layers"] and doc["mediaType"] == stamp.MANIFEST_V2


@pytest.mark.parametrize("bad", [b"", b"[]", b"not json", json.dumps({"schemaVersion": 1}).encode(),
                                 json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                                             "config": {}, "layers": []}).encode(),
                                 json.dumps({"schemaVersion": 2, "mediaType": stamp.MANIFEST_V2,
                                             "config": {"digest": "md5:x"}, "layers": []}).encode()])
def test_what_is_not_a_schema_2_manifest_is_refused(bad):
    with pytest.raises(stamp.NotAnImage):
        stamp.config_digest(bad)


@pytest.mark.parametrize("bad", [b"", b"[]", b"{}", json.dumps({"rootfs": {}, "config": []}).encode(),
                                 json.dumps({"rootfs": {}, "config": {"Labels": ["x"]}}).encode()])
def test_what_is_not_an_image_config_is_refused(bad):
    with pytest.raises(stamp.NotAnImage):
        stamp.labelled_config(bad, OURS)
