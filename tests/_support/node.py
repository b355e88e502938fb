"""The real JavaScript clients (``ai``, ``@ag-ui/client``) for tests, run with Node.

``tests/node/package.json`` pins them; :func:`node_modules` installs them with ``npm ci``
(bounded in time) when ``node_modules`` is missing or was installed from another lock file,
and :func:`run_node` runs one of the scripts there with a JSON job on stdin and returns the
JSON it prints. A script that fails or prints no JSON fails the test with its stderr.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
_STAMP = "node_modules/.mianzhang-lock-sha256"


def node_modules(timeout: float = 300.0) -> Path:
    """``tests/node`` with its ``node_modules`` installed from ``package-lock.json``."""
    lock = hashlib.sha256((NODE_DIR / "package-lock.json").read_bytes()).hexdigest()
    stamp = NODE_DIR / _STAMP
    if stamp.exists() and stamp.read_text() == lock:
        return NODE_DIR
    done = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"npm ci failed in {NODE_DIR}:\n{done.stdout}\n{done.stderr}")
    stamp.write_text(lock)
    return NODE_DIR


def run_node(script: str, job: dict[str, Any], timeout: float = 60.0) -> Any:
    """Run ``tests/node/<script>`` with ``job`` as JSON on stdin; its JSON output."""
    done = subprocess.run(
        ["node", script],
        cwd=node_modules(),
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0 or not done.stdout:
        raise AssertionError(f"node {script} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout)
