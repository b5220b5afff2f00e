"""Session files on disk: only regular files, locks between writers, no unseen overwrites."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from loomtui.bench.synthetic import make_tree
from loomtui.core import session
from loomtui.core.errors import SessionError
from loomtui.core.node import Node
from loomtui.core.session import ConflictError
from loomtui.core.tree import Tree


def small() -> Tree:
    tree = Tree(Node("0", "root", "prompt"), created=1.0)
    tree.add_child("0", tree.new_node(" child", "typed"))
    return tree


def test_fifo_is_refused_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.json"
    os.mkfifo(fifo)
    with pytest.raises(SessionError, match="not a regular file"):
        session.load(fifo)


def test_link_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "zero.json"
    link.symlink_to("/dev/zero")
    with pytest.raises(SessionError, match="not a regular file"):
        session.load(link)


def test_directory_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="is a directory"):
        session.load(tmp_path)
    with pytest.raises(SessionError, match="no such file"):
        session.load(tmp_path / "nope.json")


def test_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.json"
    session.save(make_tree(200, seed=1), path)
    monkeypatch.setenv("LOOMTUI_MAX_SESSION_MB", "0.01")
    with pytest.raises(SessionError, match=r"over the limit of .* LOOMTUI_MAX_SESSION_MB"):
        session.load(path)
    monkeypatch.delenv("LOOMTUI_MAX_SESSION_MB")
    assert len(session.load(path)) == 200


def test_save_goes_through_a_symlink_to_its_target(tmp_path: Path) -> None:
    real = tmp_path / "real.json"
    link = tmp_path / "link.json"
    session.save(small(), real)
    link.symlink_to(real.name)
    tree = session.load(link)
    tree.set_note("0", "via the link")
    session.save(tree, link)
    assert link.is_symlink()
    assert session.load(real).node("0").note == "via the link"


def test_read_only_file_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "ro.json"
    session.save(small(), path)
    before = path.read_bytes()
    path.chmod(0o444)
    tree = session.load(path)
    tree.set_note("0", "changed")
    with pytest.raises(SessionError, match="read-only: save it as another file"):
        session.save(tree, path)
    assert path.read_bytes() == before


def test_stale_temp_files_of_killed_saves_are_removed(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    session.save(small(), path)
    stale = tmp_path / ".s.json.abc_1234.tmp"
    stale.write_bytes(b"half a session")
    other = tmp_path / ".other.json.x.tmp"
    other.write_bytes(b"not ours")
    longer = tmp_path / ".s.json.bak.json.abcd1234.tmp"  # a live save of "s.json.bak.json"
    longer.write_bytes(b"not ours either")
    session.save(small(), path)
    assert not stale.exists() and other.exists() and longer.exists()


def test_threads_of_one_process_exclude_each_other(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    session.save(small(), path)
    inside = threading.Event()
    release = threading.Event()
    order: list[str] = []

    def holder() -> None:
        with session.locked(path):
            inside.set()
            release.wait(5)
            order.append("holder")

    t = threading.Thread(target=holder)
    t.start()
    inside.wait(5)
    def wait_for_it() -> None:
        with session.locked(path):
            order.append("waiter")

    waiter = threading.Thread(target=wait_for_it)
    waiter.start()
    time.sleep(0.2)
    assert order == []  # the second thread waits
    release.set()
    t.join(5)
    waiter.join(5)
    assert order == ["holder", "waiter"]


def test_save_refuses_to_overwrite_a_file_changed_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    session.save(small(), path)
    tree, stamp = session.load_stamped(path)
    other = session.load(path)  # another program changes the file meanwhile
    other.set_note("0", "theirs")
    session.save(other, path)
    theirs = path.read_bytes()
    tree.set_note("0", "mine")
    with pytest.raises(ConflictError, match="changed by another program since it was opened"):
        session.save(tree, path, expect=stamp)
    assert path.read_bytes() == theirs
    path.unlink()
    with pytest.raises(ConflictError, match="was deleted"):
        session.save(tree, path, expect=stamp)
    # a save returns the stamp the next one expects
    new = session.save(tree, path, expect=None)
    tree.set_note("0", "again")
    session.save(tree, path, expect=new)
    assert session.load(path).node("0").note == "again"


def test_writers_wait_for_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    session.save(small(), path)
    order: list[str] = []
    holding = threading.Event()

    def first() -> None:
        with session.locked(path):
            holding.set()
            time.sleep(0.3)
            order.append("first done")

    t = threading.Thread(target=first)
    t.start()
    holding.wait(5)
    # the same process re-enters its own lock; another process would wait (see test_cli_edits)
    t.join()
    with session.locked(path):
        order.append("second")
    assert order == ["first done", "second"]


def test_save_accepts_an_empty_node_text_and_keeps_bytes(tmp_path: Path) -> None:
    tree = small()
    raw = "ح".encode()
    tree.add_child("0", tree.new_node("\ufffd", "picked", token_ids=[5], token_offsets=[0],
                                      token_bytes=[raw[:1]]))
    path = tmp_path / "s.json"
    session.save(tree, path)
    again = session.load(path)
    kid = next(n for n in again.nodes() if n.token_bytes)
    assert kid.token_bytes == [raw[:1]]
