"""`heroku.yml` (the Heroku container manifest), parsed with PyYAML. Pure: no I/O.

    build:
      docker:
        web: Dockerfile            # process -> Dockerfile (path relative to the repo root)
        worker: Dockerfile
    release:
      image: web
      command: ["./migrate.sh"]
    run:
      web: gunicorn app:app        # a string, or {command: [...], image: web}
      worker:
        command: ["python", "worker.py"]
        image: worker

Dockyard builds ONE image per app, so every `build.docker` entry must name the same Dockerfile.
Instead of `docker`, `build.languages` (`[go]`, `[heroku/python, nodejs]`) builds with those
buildpacks, in order; `run` then names commands over the Procfile's.
Errors name the bad key and its line."""
from __future__ import annotations

import posixpath
import shlex
from dataclasses import dataclass, field

import yaml

from core.names import PROCESS_TYPE_RE

from .errors import BuildError

TOP_KEYS = ("setup", "build", "release", "run")


class ManifestError(BuildError):
    code = "invalid_heroku_yml"


@dataclass(frozen=True)
class Manifest:
    dockerfile: str                                     # "" when built with buildpacks (languages)
    process_types: dict = field(default_factory=dict)   # type -> command ("" = the image's CMD)
    languages: tuple[str, ...] = ()                     # build.languages: the buildpacks to run


def _where(node: yaml.Node) -> str:
    return f"line {node.start_mark.line + 1}"


def _mapping(node: yaml.Node, key: str) -> list[tuple[yaml.Node, yaml.Node]]:
    if not isinstance(node, yaml.MappingNode):
        raise ManifestError(f"heroku.yml: `{key}` ({_where(node)}) must be a mapping.")
    return node.value


def _command(node: yaml.Node, key: str) -> str:
    """A command: a string, or a list of strings (exec form, joined with shell quoting)."""
    if isinstance(node, yaml.ScalarNode) and isinstance(node.value, str) and node.value.strip():
        return node.value.strip()
    if isinstance(node, yaml.SequenceNode) and node.value and all(
            isinstance(n, yaml.ScalarNode) for n in node.value):
        return shlex.join(str(n.value) for n in node.value)
    raise ManifestError(f"heroku.yml: `{key}` ({_where(node)}) must be a command: a string or a list of strings.")


def _image_and_command(node: yaml.Node, key: str, images: set[str]) -> str:
    if isinstance(node, yaml.MappingNode):
        command = None
        for k, v in node.value:
            if k.value == "command":
                command = _command(v, f"{key}.command")
            elif k.value == "image":
                if not isinstance(v, yaml.ScalarNode) or v.value not in images:
                    known = ", ".join(sorted(images)) or "none"
                    raise ManifestError(f"heroku.yml: `{key}.image` ({_where(v)}) must name a process under "
                                        f"build.docker ({known}).")
            else:
                raise ManifestError(f"heroku.yml: unknown key `{key}.{k.value}` ({_where(k)}): "
                                    "use `command` and `image`.")
        if command is None:
            raise ManifestError(f"heroku.yml: `{key}` ({_where(node)}) has no `command`.")
        return command
    return _command(node, key)


def parse_heroku_yml(text: str) -> Manifest:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or "invalid YAML"
        raise ManifestError(f"heroku.yml is not valid YAML{where} ({problem}): fix it and push again.") from None
    if root is None:
        raise ManifestError("heroku.yml is empty: it needs at least `build: {docker: {web: Dockerfile}}`.")
    seen: dict[str, yaml.Node] = {}
    for k, v in _mapping(root, "(top level)"):
        if not isinstance(k, yaml.ScalarNode) or k.value not in TOP_KEYS:
            raise ManifestError(f"heroku.yml: unknown top-level key `{getattr(k, 'value', '?')}` ({_where(k)}): "
                                f"the keys are {', '.join(TOP_KEYS)}.")
        seen[k.value] = v
    if "build" not in seen:
        raise ManifestError("heroku.yml has no `build` section: add `build: {docker: {web: Dockerfile}}`.")

    dockerfiles: dict[str, tuple[str, yaml.Node]] = {}
    languages: list[str] = []
    for k, v in _mapping(seen["build"], "build"):
        if k.value == "languages":
            if not isinstance(v, yaml.SequenceNode) or not v.value or not all(
                    isinstance(n, yaml.ScalarNode) and str(n.value).strip() for n in v.value):
                raise ManifestError(f"heroku.yml: `build.languages` ({_where(v)}) must be a list of buildpacks, "
                                    "e.g. [go] or [heroku/python, nodejs].")
            languages = [str(n.value).strip() for n in v.value]
        elif k.value == "docker":
            for pk, pv in _mapping(v, "build.docker"):
                if not PROCESS_TYPE_RE.fullmatch(str(pk.value)):
                    raise ManifestError(f"heroku.yml: process type `build.docker.{str(pk.value)[:40]}` ({_where(pk)}) "
                                        "must be 1-30 characters from a-z, 0-9, '_' and '-'.")
                if not isinstance(pv, yaml.ScalarNode) or not str(pv.value).strip():
                    raise ManifestError(f"heroku.yml: `build.docker.{pk.value}` ({_where(pv)}) must be a Dockerfile path.")
                path = posixpath.normpath(str(pv.value).strip())
                if path.startswith(("/", "..")):
                    raise ManifestError(f"heroku.yml: `build.docker.{pk.value}` ({_where(pv)}) must be a path inside "
                                        "the repository, e.g. Dockerfile.")
                dockerfiles[pk.value] = (path, pv)
        elif k.value == "config":
            raise ManifestError(f"heroku.yml: `build.config` ({_where(k)}) (build arguments) is not supported: "
                                "set config vars with `dockyard config:set` and read them at run time.")
        else:
            raise ManifestError(f"heroku.yml: unknown key `build.{k.value}` ({_where(k)}): use `build.docker` "
                                "or `build.languages`.")
    if languages and dockerfiles:
        raise ManifestError("heroku.yml: `build` has both `docker` and `languages`: keep one (a Dockerfile, or "
                            "the buildpacks to build with).")
    if languages:
        return Manifest(dockerfile="", process_types=_run_types(seen, set()), languages=tuple(languages))
    if not dockerfiles:
        raise ManifestError("heroku.yml: `build.docker` names no Dockerfile: add e.g. `web: Dockerfile`.")
    paths = {p for p, _ in dockerfiles.values()}
    if len(paths) > 1:
        first = sorted(dockerfiles.items())[0]
        other = next((k, v) for k, v in sorted(dockerfiles.items()) if v[0] != first[1][0])
        raise ManifestError(
            f"heroku.yml: `build.docker.{other[0]}` ({_where(other[1][1])}) names {other[1][0]}, but "
            f"`build.docker.{first[0]}` names {first[1][0]}: Dockyard builds one image per app, so point every "
            "process at the same Dockerfile and give each its command under `run`.")

    types = {**{p: "" for p in dockerfiles}, **_run_types(seen, set(dockerfiles))}
    return Manifest(dockerfile=paths.pop(), process_types=types)


def _run_types(seen: dict[str, yaml.Node], images: set[str]) -> dict[str, str]:
    """`run` and `release`: process type -> command."""
    types: dict[str, str] = {}
    if "run" in seen:
        for k, v in _mapping(seen["run"], "run"):
            if not PROCESS_TYPE_RE.fullmatch(str(k.value)):
                raise ManifestError(f"heroku.yml: process type `run.{str(k.value)[:40]}` ({_where(k)}) must be "
                                    "1-30 characters from a-z, 0-9, '_' and '-'.")
            types[k.value] = _image_and_command(v, f"run.{k.value}", images)
    if "release" in seen:
        types["release"] = _image_and_command(seen["release"], "release", images)
    return types
