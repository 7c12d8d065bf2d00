"""The platform's labels, stamped on an image as it leaves a build sandbox (pure: no I/O;
docker_sandbox.py fetches and stores the documents).

An image's labels live in its config, a blob the registry's manifest names by digest, and the
image's id is that config's digest. The platform sets its labels there, on the way from the
sandbox's registry to the host's engine, instead of appending a `LABEL` line to the tenant's
Dockerfile: the sandbox's legacy builder creates and commits a container for every metadata step
(a few tenths of a second per redeploy), while a new config is one small blob and a manifest.
The platform's labels replace any of the same name the Dockerfile set, and every other
`dockyard.*` label the Dockerfile set is dropped: containers inherit their image's labels, and the
scheduler finds add-ons, one-offs and standbys by such labels, so a tenant's image must not carry
one (it could pose as another tenant's add-on in the scheduler's listings). The layers are untouched (the engine checks them against the config's `diff_ids` as it pulls)."""
from __future__ import annotations

import hashlib
import json

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
PLATFORM_PREFIX = "dockyard."   # the namespace of the scheduler's labels (labels.py)
MAX_DOCUMENT = 8 << 20   # bytes of a manifest or config read from a sandbox (labels and env are small)


class NotAnImage(ValueError):
    """A document that is not a Docker image manifest (schema 2) or image config."""


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def config_digest(manifest: bytes) -> str:
    """The digest of the config blob a schema 2 manifest names."""
    config = _manifest(manifest)["config"]
    found = config.get("digest")
    if not isinstance(found, str) or not found.startswith("sha256:"):
        raise NotAnImage("the manifest names no sha256 config")
    return found


def labelled_config(config: bytes, labels: dict[str, str]) -> bytes:
    """The image config with `labels` set in its `config.Labels` (replacing any of the same name)
    and no other label in the platform's `dockyard.` namespace."""
    try:
        doc = json.loads(config)
    except ValueError:
        raise NotAnImage("the image config is not JSON") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("rootfs"), dict):
        raise NotAnImage("the image config has no rootfs")
    inner = {} if doc.get("config") is None else doc["config"]
    if not isinstance(inner, dict) or not isinstance(inner.get("Labels") or {}, dict):
        raise NotAnImage("the image config's config is not an object")
    theirs = {k: v for k, v in (inner.get("Labels") or {}).items() if not str(k).startswith(PLATFORM_PREFIX)}
    doc["config"] = {**inner, "Labels": {**theirs, **labels}}
    return json.dumps(doc, separators=(",", ":")).encode()


def with_config(manifest: bytes, config: bytes) -> bytes:
    """The manifest naming `config` (its digest and size) instead of its own config blob."""
    doc = _manifest(manifest)
    doc["config"] = {**doc["config"], "digest": digest(config), "size": len(config)}
    return json.dumps(doc, indent=3).encode()


def _manifest(manifest: bytes) -> dict:
    try:
        doc = json.loads(manifest)
    except ValueError:
        raise NotAnImage("the manifest is not JSON") from None
    if not (isinstance(doc, dict) and doc.get("schemaVersion") == 2 and doc.get("mediaType") == MANIFEST_V2
            and isinstance(doc.get("config"), dict) and isinstance(doc.get("layers"), list)):
        raise NotAnImage("not a schema 2 image manifest")
    return doc
