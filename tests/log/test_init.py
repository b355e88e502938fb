"""``mianzhang.log`` exports, and it imports without the redis extra."""

from __future__ import annotations

import subprocess
import sys

import mianzhang.log
from tests._support.procs import ROOT, _env


def test_all_exports_exist_and_are_sorted() -> None:
    assert list(mianzhang.log.__all__) == sorted(mianzhang.log.__all__)
    for name in mianzhang.log.__all__:
        assert getattr(mianzhang.log, name) is not None


def test_imports_and_works_without_redis_installed() -> None:
    script = """
import asyncio, sys

class BlockRedis:
    def find_spec(self, name, path=None, target=None):
        if name == "redis" or name.startswith("redis."):
            raise ImportError("redis is not installed (blocked by the test)")
        return None

sys.meta_path.insert(0, BlockRedis())
import mianzhang.log as log_pkg

async def main():
    async with log_pkg.MemoryEventLog() as log:
        print(await log.append("s", "x") != "")

asyncio.run(main())
try:
    log_pkg.RedisEventLog
except ImportError as exc:
    print("mianzhang[redis]" in str(exc))
print("redis" in sys.modules)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env=_env(None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True", "False"]


def test_redis_event_log_is_exported_lazily() -> None:
    from mianzhang.log.redis import RedisEventLog

    assert mianzhang.log.RedisEventLog is RedisEventLog
