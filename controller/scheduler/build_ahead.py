"""Which image of a running Dockerfile build may leave the build sandbox ahead of the build's end
(pure: no I/O; docker_sandbox.py reads the build's output and moves the image).

The sandbox's legacy builder prints `Step k/N : INSTRUCTION ...` as each step starts and
` ---> <image id>` once it has its image. In a build's last stage every step's image holds only
layers the final image will have too, so the image of a filesystem step (COPY, ADD, RUN) can
be pushed to the sandbox's registry and pulled by the host while the steps after it run (often
only metadata: CMD, EXPOSE, ENV, each of which the legacy builder commits as a container); the
final image's trip then finds its layers already moved. This only saves time: the final image
still takes the whole way out and is checked there, so a build this reading misjudges (a stage
miscounted) moves an image for nothing or nothing early."""
from __future__ import annotations

import re

FILESYSTEM_STEPS = frozenset({"COPY", "ADD", "RUN"})
_STEP = re.compile(r"^Step (\d+)/(\d+) : (\S+)")
_RESULT = re.compile(r"^ ---> ([0-9a-f]{12,64})$")
_FROM = re.compile(r"^\s*FROM\s", re.IGNORECASE)
_CONTINUED = re.compile(r"\\\s*$")


def count_stages(dockerfile: str) -> int:
    """The number of FROM instructions (stages) of a Dockerfile; a line that continues the one
    before it (after a backslash) or a comment is not an instruction."""
    stages, continued = 0, False
    for line in dockerfile.splitlines():
        if not continued and _FROM.match(line):
            stages += 1
        if not line.strip().startswith("#"):
            continued = bool(_CONTINUED.search(line))
    return stages


class StepWatch:
    """Reads a legacy build's output lines one by one (`feed`) and names the image each line
    makes movable ahead: that of a finished filesystem step of the last stage that is not the
    build's last step (the last step's image is the final image)."""

    def __init__(self, stages: int):
        self.stages = stages      # FROM instructions in the Dockerfile; 0: never move ahead
        self.froms = 0            # FROM steps started so far
        self.step = self.total = 0
        self.instruction = ""     # the running step's instruction, until its image is named
        self.base: str | None = None   # the last stage's FROM image, once named: what the host has

    def feed(self, line: str) -> str | None:
        m = _STEP.match(line)
        if m:
            self.step, self.total, self.instruction = int(m.group(1)), int(m.group(2)), m.group(3).upper()
            if self.instruction == "FROM":
                self.froms += 1
            return None
        m = _RESULT.match(line)
        if m is None:
            return None
        instruction, self.instruction = self.instruction, ""
        if instruction == "FROM" and self.froms == self.stages:
            self.base = m.group(1)
        if (instruction in FILESYSTEM_STEPS and self.step < self.total
                and self.stages > 0 and self.froms == self.stages):
            return m.group(1)
        return None
