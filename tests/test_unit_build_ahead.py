"""Which image of a running Dockerfile build leaves the build sandbox early (pure logic of
controller/scheduler/build_ahead.py), read from the legacy builder's real output."""
from __future__ import annotations

import threading
import time

from controller.scheduler.build_ahead import StepWatch, count_stages
from controller.scheduler.docker_ahead import MAX_AHEAD, Ahead, dockerfile_stages

ONE_STAGE = """\
Step 1/4 : FROM dockyard-test/busybox:1
 ---> 15a4ac1a9b3b
Step 2/4 : COPY index.html /www/index.html
 ---> 48aa456fe727
Step 3/4 : EXPOSE 5000
 ---> Running in 5cf54dde4c48
Removing intermediate container 5cf54dde4c48
 ---> 6c1f0e2d3b4a
Step 4/4 : CMD ["/bin/sh", "-c", "exec httpd -f -p $PORT -h /www"]
 ---> Running in 0b603ebacf69
Removing intermediate container 0b603ebacf69
 ---> 810cbd967689
Successfully built 810cbd967689
"""


def _movable(output: str, stages: int) -> list[str]:
    watch = StepWatch(stages)
    return [found for line in output.splitlines() if (found := watch.feed(line))]


def test_a_copy_followed_by_metadata_steps_moves_ahead_once():
    assert _movable(ONE_STAGE, 1) == ["48aa456fe727"]


def test_the_last_step_and_metadata_steps_never_move_ahead():
    last_is_copy = "Step 1/2 : FROM x\n ---> 15a4ac1a9b3b\nStep 2/2 : COPY . /app\n ---> 48aa456fe727\n"
    assert _movable(last_is_copy, 1) == []
    metadata_only = "Step 1/2 : FROM x\n ---> 15a4ac1a9b3b\nStep 2/2 : CMD [\"sh\"]\n ---> 810cbd967689\n"
    assert _movable(metadata_only, 1) == []


def test_cached_and_run_steps_move_ahead_by_their_image_not_the_containers():
    out = ("Step 1/4 : FROM x\n ---> 15a4ac1a9b3b\nStep 2/4 : RUN pip install -r r.txt\n ---> Using cache\n"
           " ---> 0123456789ab\nStep 3/4 : run echo hi\n ---> Running in 5cf54dde4c48\nhi\n"
           "Removing intermediate container 5cf54dde4c48\n ---> ba9876543210\nStep 4/4 : CMD [\"sh\"]\n"
           " ---> 810cbd967689\n")
    assert _movable(out, 1) == ["0123456789ab", "ba9876543210"]


def test_only_the_last_stage_of_a_multi_stage_build_moves_ahead():
    out = ("Step 1/6 : FROM golang AS build\n ---> 15a4ac1a9b3b\nStep 2/6 : COPY . /src\n ---> 1111111111aa\n"
           "Step 3/6 : RUN go build -o /app\n ---> 2222222222bb\nStep 4/6 : FROM busybox\n ---> 3333333333cc\n"
           "Step 5/6 : COPY --from=build /app /app\n ---> 4444444444dd\nStep 6/6 : CMD [\"/app\"]\n"
           " ---> 5555555555ee\n")
    assert _movable(out, 2) == ["4444444444dd"]
    assert _movable(out, 0) == []          # stages unknown: nothing moves early
    assert _movable(out, 3) == []          # a stage more than the output shows: nothing either


def test_a_step_printing_the_builders_lines_names_only_its_own_sandboxs_images():
    # a RUN step prints what it likes: a result line it prints names an image of the tenant's
    # own sandbox (what the tenant could build FROM anyway); a fake step line changes the count
    # only until the builder's next one
    out = ("Step 1/3 : FROM x\n ---> 15a4ac1a9b3b\nStep 2/3 : RUN echo 'Step 2/3 : COPY a b'\n"
           " ---> Running in 5cf54dde4c48\n ---> aaaaaaaaaaaa\nStep 9/9 : FROM y\n"
           "Removing intermediate container 5cf54dde4c48\n ---> ba9876543210\nStep 3/3 : CMD [\"sh\"]\n"
           " ---> 810cbd967689\n")
    assert _movable(out, 1) == ["aaaaaaaaaaaa"]


def test_stages_are_counted_from_the_from_instructions():
    assert count_stages("FROM a AS b\nRUN x\nfrom c\nCOPY --from=b /x /x\n") == 2
    assert count_stages("# FROM commented\n  FROM a\nRUN echo \\\n FROM not-an-instruction\n") == 1
    assert count_stages("") == 0



def _steps(*images: str) -> list[str]:
    lines = ["Step 1/9 : FROM x", " ---> 000000000000"]
    for i, image in enumerate(images, start=2):
        lines += [f"Step {i}/9 : RUN step{i}", image]
    return lines


def test_moves_ahead_run_one_at_a_time_the_newest_next_and_none_once_stopped():
    started, release, moves = threading.Event(), threading.Event(), []

    def move(name: str, image: str, digests: list, since: str | None) -> None:
        moves.append((name, image, since))
        digests.append(f"sha256:{image}")
        started.set()
        assert release.wait(10)

    ahead = Ahead("build-1", 1, move)
    out: list[str] = []
    feed = ahead.watching(out.append)
    for line in _steps(" ---> 111111111111"):
        feed(line)
    assert started.wait(10)                 # the first move runs...
    for line in _steps(" ---> 222222222222", " ---> 333333333333")[2:]:
        feed(line)                          # ...while two more steps end: the newer one goes next
    release.set()
    for _ in range(500):
        if len(moves) == 2:
            break
        time.sleep(0.01)
    ahead.close()
    # each move knows what is out already: the stage's base first, then the image moved before
    assert moves == [("build-1-ahead1", "111111111111", "000000000000"),
                     ("build-1-ahead2", "333333333333", "111111111111")]
    assert ahead.moved == [("build-1-ahead1", ["sha256:111111111111"]), ("build-1-ahead2", ["sha256:333333333333"])]
    assert len(out) == 8                    # every line still reaches the build's output


def test_a_build_moves_a_few_images_ahead_at_most_and_none_after_the_final_one_started():
    moves: list[str] = []
    ahead = Ahead("b", 1, lambda name, image, digests, since: moves.append(image))
    feed = ahead.watching(lambda line: None)
    feed("Step 1/99 : FROM x")
    for i in range(MAX_AHEAD + 3):
        feed(f"Step {i + 2}/99 : COPY a{i} /")
        feed(f" ---> {i:012x}")
        for _ in range(500):                # each move is over before the next step ends
            if ahead.worker is None:
                break
            time.sleep(0.01)
    assert moves == [f"{i:012x}" for i in range(MAX_AHEAD)]

    stopped = Ahead("c", 1, lambda name, image, digests, since: moves.append(image))
    stopped.stop()
    feed = stopped.watching(lambda line: None)
    for line in _steps(" ---> 444444444444"):
        feed(line)
    stopped.close()
    assert stopped.stopped() and stopped.moved == [] and "444444444444" not in moves


def test_a_move_that_declines_spends_no_move_and_the_next_one_counts_from_the_same_image():
    offered: list[tuple[str, str | None]] = []

    def move(name: str, image: str, digests: list, since: str | None) -> bool:
        offered.append((image, since))
        digests.append(f"sha256:{image}")
        return image != "111111111111"         # the first step's layer is too small to move

    ahead = Ahead("d", 1, move)
    feed = ahead.watching(lambda line: None)
    for line in _steps(" ---> 111111111111"):
        feed(line)
    _idle(ahead)
    for line in _steps(" ---> 111111111111", " ---> 222222222222")[4:]:
        feed(line)
    _idle(ahead)
    ahead.close()
    assert offered == [("111111111111", "000000000000"), ("222222222222", "000000000000")]
    assert ahead.moved == [("d-ahead1", ["sha256:222222222222"])]   # nothing left to tidy of the first


def test_the_watch_names_the_last_stages_base_image():
    out = ("Step 1/4 : FROM golang AS build\n ---> 15a4ac1a9b3b\nStep 2/4 : RUN go build\n ---> 2222222222bb\n"
           "Step 3/4 : FROM busybox\n ---> 3333333333cc\nStep 4/4 : COPY --from=build /app /app\n ---> 4444444444dd\n")
    watch = StepWatch(2)
    for line in out.splitlines():
        watch.feed(line)
        if line.startswith(" ---> 15a4"):
            assert watch.base is None          # the first stage's base is not what the image builds on
    assert watch.base == "3333333333cc"


def _idle(ahead: Ahead) -> None:
    for _ in range(500):
        if ahead.worker is None:
            return
        time.sleep(0.01)
    raise AssertionError("the move ahead did not end")


def test_the_dockerfile_is_read_only_as_a_plain_file_inside_the_context(tmp_path):
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM a AS b\nFROM c\n")
    (tmp_path / "outside").write_text("FROM a\n")
    (tmp_path / "ctx" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "ctx" / "dir").symlink_to(tmp_path)
    ctx = str(tmp_path / "ctx")
    assert dockerfile_stages(ctx, "Dockerfile") == 2
    for refused in ("link", "dir/outside", "../outside", str(tmp_path / "outside"), "missing"):
        assert dockerfile_stages(ctx, refused) == 0
