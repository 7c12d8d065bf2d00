"""An add-on attached while one of the app's containers is being removed (a deploy's retired
instance, a replaced crash): the engine refuses to connect that one, and the attachment goes on
(seen failing `addons:create` with "is marked for removal"). The engine's API is a stub here: the
race lasts as long as a removal, too short to hit on purpose with the real engine."""
from __future__ import annotations

from types import SimpleNamespace

import docker.errors
import pytest

from controller.scheduler.docker_services import DockerServices
from core.errors import SchedulerError


class Api:
    def __init__(self, refusal: str):
        self.refusal, self.joined = refusal, []

    def inspect_network(self, net):
        return {"Name": net}

    def containers(self, all, filters):   # noqa: A002 - the docker SDK's name
        return [{"Id": "retiring", "Labels": {}}, {"Id": "serving", "Labels": {}}]

    def connect_container_to_network(self, container, net, aliases=None):
        if container == "retiring":
            raise docker.errors.APIError("conflict", explanation=self.refusal)
        self.joined.append((container, net))


def services(api: Api) -> DockerServices:
    backend = DockerServices(SimpleNamespace(name="dy"))
    backend._client = SimpleNamespace(api=api)    # what `client` hands out once the engine answered
    return backend


def test_a_container_being_removed_does_not_fail_the_attachment():
    api = Api("Container retiring is marked for removal and cannot be connected or disconnected to the network")
    services(api).connect_service("redis-keen-1", "shop")
    assert ("serving", "dy-addon-redis-keen-1-shop") in api.joined


def test_any_other_refusal_still_fails_it_with_the_engines_words():
    api = Api("network is full")
    with pytest.raises(SchedulerError, match="network is full"):
        services(api).connect_service("redis-keen-1", "shop")
