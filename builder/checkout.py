"""What a commit's tree checks out to, computed from the tree objects before anything is
written: a tree may name the same subtree or blob many times, so a push of a few hundred KB
(one 64 MiB blob named 8 times per tree, 6 trees deep) checks out to terabytes. Each distinct
tree's total is computed once and reused wherever it is named (so the work is bounded by the
objects pushed, not by what they expand to), and the check stops at the first limit passed."""
from __future__ import annotations

import stat
from dulwich.objects import Tree

from .errors import BuildError, CheckoutTooBig
from .job import CheckoutLimits

GITLINK = 0o160000


def tree_totals(object_store, tree_sha: bytes) -> tuple[int, int]:
    """(bytes, files) the tree checks out to: regular files and symlinks (a symlink's size is
    its target's length); submodules are not fetched, so they count for nothing."""
    totals: dict[bytes, tuple[int, int]] = {}
    blob_sizes: dict[bytes, int] = {}
    stack = [tree_sha]
    while stack:   # iterative post-order: a deep tree needs no deep recursion
        sha = stack[-1]
        if sha in totals:
            stack.pop()
            continue
        tree = object_store[sha] if sha in object_store else None
        if not isinstance(tree, Tree):
            raise BuildError(f"The commit's tree is incomplete or malformed ({sha.decode()[:12]} is not a tree "
                             "in the push): push the branch again from a healthy clone.")
        entries = list(tree.items())
        pending = [e.sha for e in entries if stat.S_ISDIR(e.mode) and e.sha not in totals]
        if pending:
            stack.extend(pending)
            continue
        size = files = 0
        for e in entries:
            if stat.S_ISDIR(e.mode):
                sub = totals[e.sha]
                size, files = size + sub[0], files + sub[1]
            elif e.mode != GITLINK:
                if e.sha not in blob_sizes:
                    blob_sizes[e.sha] = len(object_store.get_raw(e.sha)[1])
                size, files = size + blob_sizes[e.sha], files + 1
        totals[sha] = (size, files)
        stack.pop()
    return totals[tree_sha]


def check_tree(object_store, tree_sha: bytes, limits: CheckoutLimits) -> tuple[int, int]:
    """(bytes, files) of the checkout, or CheckoutTooBig naming the setting to raise."""
    size, files = tree_totals(object_store, tree_sha)
    if size > limits.max_bytes:
        raise CheckoutTooBig(f"The pushed tree checks out to {_mb(size)} MB, more than the {limits.max_bytes >> 20} MB "
                             "allowed (DOCKYARD_MAX_CHECKOUT_MB): commit less (or fewer copies of the same "
                             "files) and push again.")
    if files > limits.max_files:
        raise CheckoutTooBig(f"The pushed tree checks out to {files} files, more than the {limits.max_files} allowed "
                             "(DOCKYARD_MAX_CHECKOUT_FILES): commit fewer files and push again.")
    return size, files


def _mb(n: int) -> str:
    return f"{n / (1 << 20):,.0f}" if n < 1 << 60 else f"{n / (1 << 20):.3g}"
