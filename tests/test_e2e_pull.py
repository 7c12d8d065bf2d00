"""Dockerfiles FROM public images: a base image the engine lacks is pulled from its registry
when the admin's patterns admit it, through the operator's mirror for Docker Hub's images. Debian's
docker-registry on loopback stands in for Docker Hub (the mirror); the test pushes a unique
image into it. One platform for the module, with a short build timeout (the grace before a
pulled image may be collected)."""
from __future__ import annotations

import secrets
import subprocess
import time
from pathlib import Path

import pytest

from .conftest import free_port, httpd_app, make_app_repo, run, start_platform, stop_platform, unique_app, wait_until
from .test_e2e_access import new_user
from .test_e2e_buildpacks import push, wait_body

pytestmark = pytest.mark.e2e
BUILD_TIMEOUT = 20


@pytest.fixture(scope="module")
def hub(tmp_path_factory, busybox_base):
    """A registry on 127.0.0.1 holding `library/<name>:1` and `someorg/<name>:1`, unique images
    built on the busybox base (a file of random bytes: a layer the engine has nowhere else)."""
    root = tmp_path_factory.mktemp("hub")
    port = free_port()
    (root / "config.yml").write_text(f"version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
                                     f"    rootdirectory: {root / 'data'}\nhttp:\n  addr: 127.0.0.1:{port}\n")
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(root / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = f"dytest-{secrets.token_hex(4)}"
    try:
        wait_until(lambda: run(["curl", "-fsS", f"http://127.0.0.1:{port}/v2/"], check=False).returncode == 0,
                   10, "the registry")
        (root / "ctx").mkdir()
        (root / "ctx" / "stamp").write_bytes(secrets.token_bytes(4096))
        (root / "ctx" / "Dockerfile").write_text(f"FROM {busybox_base}\nCOPY stamp /stamp\n")
        pushed = [f"127.0.0.1:{port}/library/{name}:1", f"127.0.0.1:{port}/someorg/{name}:1"]
        run(["docker", "build", "-q", "-t", pushed[0], "-t", pushed[1], str(root / "ctx")])
        for ref in pushed:
            run(["docker", "push", "-q", ref])
        run(["docker", "rmi", *pushed])    # the engine no longer has it: a build must pull it
        yield {"mirror": f"127.0.0.1:{port}", "name": name}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        run(["docker", "rmi", "-f", f"{name}:1", f"someorg/{name}:1"], check=False)


@pytest.fixture(scope="module")
def pp(tmp_path_factory, hub):
    # The operator's list also admits names like the platform's own app images (`dyt<hex>/<app>`,
    # the test platforms' namespaces), a mistake an app's build must survive.
    p = start_platform(tmp_path_factory.mktemp("pull-platform"), DOCKYARD_REGISTRY_MIRROR=hub["mirror"],
                       DOCKYARD_BUILD_TIMEOUT=str(BUILD_TIMEOUT), DOCKYARD_PULL_ALLOW="docker.io/library/*,docker.io/dyt*/*")
    try:
        yield p
    finally:
        stop_platform(p)


def _app(p, tmp_path: Path, base: str, text: str) -> tuple[str, Path]:
    app = unique_app("pull")
    p.cli("apps:create", app)
    files = {"Dockerfile": f"FROM {base}\nRUN mkdir -p /www && echo {text} > /www/index.html\n"
                           'CMD ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /www"]\n'}
    return app, make_app_repo(tmp_path / app, files, p)


def _engine_has(ref: str) -> bool:
    return run(["docker", "image", "inspect", ref], check=False).returncode == 0


def test_from_an_admitted_image_is_pulled_through_the_mirror_shared_and_collected(pp, hub, tmp_path):
    base = f"{hub['name']}:1"                      # docker.io/library/<name>:1, admitted by default
    assert not _engine_has(base)
    first, repo = _app(pp, tmp_path, base, "pulled-one")
    out = push(pp, first, repo).stderr
    pulled_at = time.monotonic()
    assert f"-----> Pulling the base image {base}" in out
    assert f"Pulling {base} from {hub['mirror']}" in out and f"Pulled {base}" in out
    assert wait_body(pp, first, "pulled-one")
    assert _engine_has(base)

    # a second app builds on the same copy: nothing is pulled again
    second, repo2 = _app(pp, tmp_path, base, "pulled-two")
    out = push(pp, second, repo2).stderr
    assert "Pulling" not in out
    assert wait_body(pp, second, "pulled-two")

    # collected only once no image builds on it (and the grace a running build has is over)
    time.sleep(max(0.0, BUILD_TIMEOUT + 1 - (time.monotonic() - pulled_at)))
    pp.cli("apps:destroy", "-a", first, "--confirm", first)
    assert _engine_has(base), "the second app's image still builds on it"
    pp.cli("apps:destroy", "-a", second, "--confirm", second)
    assert not _engine_has(base)


def test_from_an_image_no_pattern_admits_is_refused(pp, hub, tmp_path):
    base = f"someorg/{hub['name']}:1"              # docker.io/someorg/...: in the mirror, not admitted
    app, repo = _app(pp, tmp_path, base, "never")
    proc = push(pp, app, repo, check=False)
    assert proc.returncode != 0
    # even an admin's build (the test's user) pulls only what a pattern admits
    assert f"builds FROM {base}, which is not in this machine's Docker engine, and no pull pattern admits it " \
           "(DOCKYARD_PULL_ALLOW" in proc.stderr
    assert "Pulling" not in proc.stderr
    assert not _engine_has(base)


def test_a_pattern_never_admits_another_tenants_app_image(pp, tmp_path):
    """victor's release image is `<platform>/<app>:vN`, which the operator's `docker.io/dyt*/*`
    matches: mallory's Dockerfile FROM it is still refused, as for any image of another tenant."""
    victor, mallory = new_user(pp, tmp_path, "victor"), new_user(pp, tmp_path, "mallory")
    victim = unique_app("victim")
    victor.cli("apps:create", victim)
    repo = make_app_repo(tmp_path / "victim", {**httpd_app("victor's secret page"), "secret.txt": "s3cret\n"}, pp)
    assert victor.git("push", f"{pp.api}/{victim}.git", "HEAD:main", cwd=repo).returncode == 0
    image = victor.api("GET", f"/apps/{victim}/releases").json()[-1]["image"]
    assert image.startswith(f"{pp.name}/{victim}:")
    thief = unique_app("thief")
    mallory.cli("apps:create", thief)
    repo = make_app_repo(tmp_path / "thief", {"Dockerfile": f"FROM {image}\nRUN cat /www/index.html\n"}, pp)
    proc = mallory.git("push", f"{pp.api}/{thief}.git", "HEAD:main", cwd=repo, check=False)
    assert proc.returncode != 0 and "which this build may not use" in proc.stderr, proc.stderr
    assert "secret page" not in proc.stderr and "Pulling" not in proc.stderr
