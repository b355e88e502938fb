"""The pieces of ``mianzhang jobs watch`` that need no server: the checkpoint file that makes
a second run resume, and SIGINT held back while an event is shown and saved."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from mianzhang.cli._jobs_watch import Checkpoint, interrupts_deferred


def test_a_checkpoint_keeps_the_last_id_until_cleared(tmp_path: Path) -> None:
    checkpoint = Checkpoint("job_0123456789abcdef", tmp_path / "cache")
    assert checkpoint.load() is None
    checkpoint.save("e1-3")
    checkpoint.save("e1-4")
    assert Checkpoint("job_0123456789abcdef", tmp_path / "cache").load() == "e1-4"
    assert Checkpoint("job_fedcba9876543210", tmp_path / "cache").load() is None
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["job_0123456789abcdef"]
    checkpoint.clear()
    checkpoint.clear()  # idempotent
    assert checkpoint.load() is None


def test_a_job_id_that_is_not_a_plain_name_gets_no_file(tmp_path: Path) -> None:
    checkpoint = Checkpoint("../escape", tmp_path)
    checkpoint.save("e1-1")
    assert checkpoint.load() is None
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent / "escape").exists()


def test_the_default_place_is_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert Checkpoint.default_directory() == tmp_path / "mianzhang" / "jobs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert Checkpoint.default_directory() == Path.home() / ".cache" / "mianzhang" / "jobs"


def test_a_ctrl_c_inside_is_raised_when_the_block_ends() -> None:
    steps: list[str] = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        steps.append("shown")
        steps.append("saved")
    assert steps == ["shown", "saved"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_without_a_ctrl_c_nothing_is_raised() -> None:
    with interrupts_deferred():
        pass
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_outside_the_main_thread_it_changes_nothing() -> None:
    seen: list[object] = []

    def body() -> None:
        with interrupts_deferred():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=body)
    thread.start()
    thread.join(10)
    assert seen == [signal.default_int_handler]
