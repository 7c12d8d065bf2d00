"""What a commit's tree checks out to (builder/checkout.py), computed from the tree objects
of a real dulwich object store in memory: repeats of one blob or subtree count each time they
are named, the work stays bounded by the distinct objects, and nothing is written before the
limit is judged (export_commit refuses into an empty directory)."""
from __future__ import annotations

import time

import pytest
from dulwich.objects import Blob, Commit, Tree
from dulwich.object_store import MemoryObjectStore

from builder.build import export_commit
from builder.checkout import check_tree, tree_totals
from builder.errors import BuildError, CheckoutTooBig
from builder.job import CheckoutLimits


def _add(store, obj):
    store.add_object(obj)
    return obj.id


def bomb(store, blob: bytes, fan: int, levels: int) -> bytes:
    sha, mode = _add(store, Blob.from_string(blob)), 0o100644
    for _ in range(levels):
        tree = Tree()
        for i in range(fan):
            tree.add(f"e{i}".encode(), mode, sha)
        sha, mode = _add(store, tree), 0o040000
    return sha


def test_repeats_count_every_time_they_are_named():
    store = MemoryObjectStore()
    top = bomb(store, b"x" * 1000, 8, 3)
    assert tree_totals(store, top) == (8 ** 3 * 1000, 8 ** 3)


def test_a_deep_amplifying_tree_is_judged_quickly_without_recursion():
    store = MemoryObjectStore()
    top = bomb(store, bytes(1 << 20), 8, 12)            # 8**12 MiB: far beyond any disk
    started = time.monotonic()
    size, files = tree_totals(store, top)
    assert size == 8 ** 12 << 20 and files == 8 ** 12 and time.monotonic() - started < 1
    deep = bomb(store, b"y", 1, 5000)                  # 5,000 levels: no RecursionError
    assert tree_totals(store, deep) == (1, 1)


def test_symlinks_count_and_submodules_do_not():
    store = MemoryObjectStore()
    tree = Tree()
    tree.add(b"link", 0o120000, _add(store, Blob.from_string(b"target/path")))
    tree.add(b"sub", 0o160000, b"1" * 40)
    tree.add(b"file", 0o100755, _add(store, Blob.from_string(b"abc")))
    assert tree_totals(store, _add(store, tree)) == (len(b"target/path") + 3, 2)


def test_limits_name_their_setting():
    store = MemoryObjectStore()
    top = bomb(store, b"z" * 1024, 4, 3)               # 64 files, 64 KiB
    assert check_tree(store, top, CheckoutLimits(64 << 10, 64)) == (64 << 10, 64)
    with pytest.raises(CheckoutTooBig, match="DOCKYARD_MAX_CHECKOUT_MB"):
        check_tree(store, top, CheckoutLimits((64 << 10) - 1, 1000))
    with pytest.raises(CheckoutTooBig, match="DOCKYARD_MAX_CHECKOUT_FILES"):
        check_tree(store, top, CheckoutLimits(1 << 30, 63))


def test_a_missing_or_mistyped_tree_is_a_build_error():
    store = MemoryObjectStore()
    tree = Tree()
    tree.add(b"d", 0o040000, _add(store, Blob.from_string(b"not a tree")))
    with pytest.raises(BuildError, match="not a tree"):
        tree_totals(store, _add(store, tree))
    with pytest.raises(BuildError, match="not a tree"):
        tree_totals(store, b"2" * 40)


class _Repo:
    def __init__(self, store):
        self.object_store = store

    def __getitem__(self, sha):
        return self.object_store[sha]


def test_export_refuses_before_writing_anything(tmp_path):
    store = MemoryObjectStore()
    commit = Commit()
    commit.tree = bomb(store, bytes(4096), 8, 3)         # 2 MiB in 512 files
    commit.author = commit.committer = b"t <t@example.com>"
    commit.author_time = commit.commit_time = 0
    commit.author_timezone = commit.commit_timezone = 0
    commit.message = b"bomb"
    _add(store, commit)
    with pytest.raises(CheckoutTooBig):
        export_commit(_Repo(store), commit.id, tmp_path, CheckoutLimits(1 << 20, 10_000))
    assert list(tmp_path.iterdir()) == []
    assert export_commit(_Repo(store), commit.id, tmp_path, CheckoutLimits(4 << 20, 10_000)) == 512
