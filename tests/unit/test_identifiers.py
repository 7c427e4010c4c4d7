"""Identifiers stay unique when read in blocks: across many calls, threads and a fork."""

from __future__ import annotations

import os
import threading

from sipharness.sip.identifiers import new_branch, new_call_id, new_tag, random_below, random_hex


def test_identifiers_have_their_sizes_and_never_repeat() -> None:
    branches = {new_branch() for _ in range(20_000)}  # several 4 KiB blocks
    assert len(branches) == 20_000
    assert all(b.startswith("z9hG4bK") and len(b) == 7 + 16 for b in branches)
    assert len(new_tag()) == 12 and new_call_id("h.example").endswith("@h.example")
    assert len(random_hex(32)) == 64  # more than a slot: read directly
    assert all(0 <= random_below(10) < 10 for _ in range(100))


def test_threads_never_get_the_same_identifier() -> None:
    found: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_branch() for _ in range(5_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in found]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [b for out in found for b in out]
    assert len(set(everything)) == len(everything) == 20_000


def test_a_forked_child_does_not_repeat_its_parent() -> None:
    new_branch()  # the parent has a block in use
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: send its next identifiers and leave at once
        os.close(read)
        os.write(write, " ".join(new_branch() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split())
    os.waitpid(pid, 0)
    parent = {new_branch() for _ in range(100)}
    assert len(child) == 100 and not child & parent
