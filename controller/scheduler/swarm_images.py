"""Cluster backend: release images on the nodes are collected as on the platform host. Each
node's engine keeps every release image it pulled from the registry (tagged
`REGISTRY/INSTANCE/APP:vN`); when the platform collects an app's images, each ready node loses
the tags of that app's repository that no release still needs. A tag is removed without force,
so an image a task or one-off on the node still uses (its container, running or kept in
Swarm's task history) stays, and goes at a later collection."""
from __future__ import annotations

import docker
import docker.errors
import requests

from controller.scheduler.swarm_parse import node_address

NODE_TIMEOUT = 30   # seconds a node's engine has for each listing or removal


def node_removals(tags: list[str], registry: str, repo: str, keep: set[str]) -> list[str]:
    """Pure: the tags of one image on a node to remove: those in `registry/repo` whose name
    without the registry (the platform's name of the image) is not in `keep`."""
    prefix = f"{registry}/"
    return [t for t in tags if t.startswith(prefix) and t[len(prefix):].rpartition(":")[0] == repo
            and t[len(prefix):] not in keep]


def collect_on_nodes(swarm, repo: str, keep: set[str]) -> int:
    """Remove the tags of `repo` no release needs from every ready node; returns how many.
    A node that does not answer keeps its images until the next collection."""
    registry = swarm.cluster["registry"]
    removed = 0
    for node in swarm._nodes():
        address = node_address(node)
        if not address or (node.get("Status") or {}).get("State") != "ready":
            continue
        try:
            with docker.APIClient(base_url=f"tcp://{address}:2375", timeout=NODE_TIMEOUT) as api:
                for img in api.images(name=f"{registry}/{repo}"):
                    for tag in node_removals(img.get("RepoTags") or [], registry, repo, keep):
                        try:
                            api.remove_image(tag)
                            removed += 1
                        except docker.errors.APIError:
                            pass   # a container on the node still uses it: a later collection
        except (docker.errors.DockerException, requests.RequestException):
            continue
    return removed
