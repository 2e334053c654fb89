"""Start-up benchmark: how long a new user waits for the demo, cold and warm.

    python bench/startup.py [--port 8123] [--no-write]

1. Clones the committed HEAD of this repository into a temporary folder (a clean clone: no venv,
   no var/).
2. Cold start: ``make run`` there with no DATABASE_URL or CELERY_BROKER_URL (the embedded
   default) until the admin login page and the API docs both answer 200; then Ctrl-C (SIGINT to
   its process group) and the time until every process, the database included, has ended.
3. Warm start: ``make run`` again in the same clone (venv, database and demo data kept).
4. The table goes to docs/PERFORMANCE.md (``--no-write`` only prints it).

Installing the pinned requirements is most of a cold start; it reads from the package registry
through the machine's caches as they are, so the first run on a new machine takes longer.
"""

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import performance_section_write

ROOT = Path(__file__).resolve().parent.parent
LIMITS = {"cold": 60.0, "warm": 10.0}


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(clone: Path, port: int, log: Path, limit: float = 300.0) -> tuple[subprocess.Popen, float]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "VAR_DIR"}}
    env["PORT"] = str(port)
    began = time.monotonic()
    process = subprocess.Popen(
        ["make", "run"], cwd=clone, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )
    base = f"http://127.0.0.1:{port}"
    while time.monotonic() - began < limit:
        if answers(f"{base}/admin/login/") and answers(f"{base}/api/docs/"):
            return process, time.monotonic() - began
        if process.poll() is not None:
            raise SystemExit(f"make run exited with {process.returncode}; see {log}")
        time.sleep(0.2)
    stop(process)
    raise SystemExit(f"no answer within {limit:.0f} s; see {log}")


def stop(process: subprocess.Popen) -> float:
    """Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group."""
    began = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    process.wait(120)
    return time.monotonic() - began


def server_left(clone: Path) -> bool:
    pid_file = clone / "var" / "postgres" / "data" / "postmaster.pid"
    return pid_file.exists()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/PERFORMANCE.md alone")
    args = parser.parse_args()
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        clone = Path(folder) / "retention_crm"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        log = Path(folder) / "run.log"
        for kind in ("cold", "warm"):
            process, seconds = start(clone, args.port, log)
            stopped = stop(process)
            if server_left(clone):
                raise SystemExit(f"the embedded PostgreSQL was still running after Ctrl-C ({kind} start)")
            rows.append((kind, seconds, stopped))
            print(f"{kind}: admin and API docs after {seconds:.1f} s; Ctrl-C stopped everything in {stopped:.1f} s")
    table = [
        "## Start-up",
        "",
        f"Measured by `bench/startup.py` at {head.strip()}: `make run` in a clean clone with nothing set (the",
        "embedded PostgreSQL and the filesystem broker), until the admin login and the API docs answer.",
        "",
        "| start | to the admin login | goal | Ctrl-C to every process stopped |",
        "| --- | --- | --- | --- |",
    ]
    for kind, seconds, stopped in rows:
        what = "cold (clean clone: venv, initdb, migrate, seed)" if kind == "cold" else "second start (all kept)"
        table.append(f"| {what} | {seconds:.1f} s | ≤ {LIMITS[kind]:.0f} s | {stopped:.1f} s |")
    text = "\n".join(table)
    print(text)
    if not args.no_write:
        performance_section_write("startup", text)


if __name__ == "__main__":
    main()
