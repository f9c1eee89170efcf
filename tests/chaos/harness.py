"""The services of a chaos run, each of the run's own so that it may break them: a PostgreSQL
cluster in a temporary directory, a redis-server on a free port, the fake model server behind a
TCP fault proxy, the API as a subprocess (so that it can be SIGKILLed) and Celery workers.

`Stack` starts them all; `FAULTS` are the faults the suite and bench/soak.py inject in turn.
Nothing here touches the machine's shared PostgreSQL or Redis.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import redis

from app import migrate
from app.config import Settings
from app.ops.workers import PREFIX as HEARTBEAT_PREFIX
from tests.background.harness import Worker, settings_env
from tests.chaos.proxy import FaultProxy, ProxyMode
from tests.fakes.upstream import FakeUpstream
from tests.harness import free_port, wait_until
from tests.ops.harness import RedisServer
from tests.webhooks.receiver import Receiver

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("TETHER_CHAOS_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"  # initdb refuses to run as root: the cluster belongs to this OS user

# Short, so that lost workers and hung model calls are noticed within seconds (as
# tests/background/conftest.py JOB_SETTINGS, plus what the faults here need).
CHAOS_SETTINGS: dict[str, Any] = {
    "job_lease_seconds": 3.0,
    "job_sweep_interval": 0.5,
    "job_requeue_after": 3.0,
    "job_cancel_poll": 0.2,
    "job_retry_backoff": 0.05,
    "job_upstream_retries": 2,
    "job_max_attempts": 3,
    # A hung model server costs a job at most (1 + retries) * this.
    "upstream_timeout": 3.0,
    "upstream_connect_timeout": 1.0,
    "worker_drain_seconds": 0.5,
    "webhook_allow_http": True,
    "webhook_allow_private": True,
    "webhook_timeout": 1.0,
    "webhook_retry_base": 0.2,
    "db_pool_size": 4,
    "db_max_overflow": 8,
}


def _as_postgres(
    *argv: str | Path, cwd: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", PG_USER, "--", *map(str, argv)],
        cwd=cwd,
        check=check,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _children(pid: int) -> list[int]:
    """The direct children of `pid` (PostgreSQL's backends of a postmaster we started)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


class PostgresCluster:
    """initdb into a temporary directory, served on a free port with trust auth."""

    def __init__(self, database: str = "tether") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="tether-chaos-pg-"))
        self.data = self.dir / "data"
        self.logfile = self.dir / "postgres.log"
        self.port = free_port()
        self.database = database
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/{database}"
        self.starts = 0
        shutil.chown(self.dir, PG_USER, PG_USER)
        self.dir.chmod(0o700)
        _as_postgres(
            PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--no-sync", cwd=self.dir,
        )  # fmt: skip
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.dir}'",
            "max_connections": "200",
            "shared_buffers": "32MB",
            # Safe against a killed server (the OS keeps what was written); only a machine
            # crash would need them, and they cost the small test machines dearly. Not
            # synchronous_commit=off: a killed server would lose commits already answered.
            "fsync": "off",
            "full_page_writes": "off",
        }
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
        self.start()
        _as_postgres(
            PG_BIN / "createdb", "-h", "127.0.0.1", "-p", self.port, "-U", "postgres", database,
            cwd=self.dir,
        )  # fmt: skip

    def _pg_ctl(self, *argv: str) -> None:
        done = _as_postgres(
            PG_BIN / "pg_ctl", "-D", self.data, "-l", self.logfile, "-w", "-t", "60", *argv,
            cwd=self.dir, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl {' '.join(argv)} failed:\n{done.stdout}{done.stderr}")

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def running(self) -> bool:
        pid = self.postmaster_pid()
        return pid is not None and _alive(pid)

    def start(self) -> None:
        self._pg_ctl("start")
        self.starts += 1

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast") -> None:
        self._pg_ctl("-m", mode, "stop")

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart")

    def kill(self) -> None:
        """SIGKILL the postmaster and its backends: the next start() does crash recovery."""
        pid = self.postmaster_pid()
        if pid is None or not _alive(pid):
            return
        victims = [pid, *_children(pid)]
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        wait_until(lambda: not any(_alive(v) for v in victims), what="postgres to die")
        # Its pid may linger as a zombie until the container's init reaps it, and PostgreSQL
        # would take that for a postmaster still running: the lock files go, as after a crash.
        for lock in (self.data / "postmaster.pid", self.dir / f".s.PGSQL.{self.port}.lock"):
            lock.unlink(missing_ok=True)

    def destroy(self) -> None:
        if self.running():
            try:
                self.stop("immediate")
            except RuntimeError:
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class RestartableRedis(RedisServer):
    """tests/ops/harness.py's private redis-server, which can also come back on the same port,
    empty (no persistence: a restart loses the queue and the event logs)."""

    starts = 0  # times it came back

    def restart(self) -> None:
        self.kill()
        self.start()

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(self._answers, what=f"redis-server on {self.port}")
        self.starts += 1

    def running(self) -> bool:
        return self.process.poll() is None

    def llen(self, key: str) -> int:
        with redis.Redis(port=self.port, socket_timeout=2) as client:
            return int(client.llen(key))


class ApiProcess:
    """`uvicorn app.main:app` as a subprocess on a fixed port, so that it can be SIGKILLed in
    the middle of a stream and come back where clients look for it."""

    def __init__(self, settings: Settings, port: int | None = None) -> None:
        self.settings = settings
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.NamedTemporaryFile(prefix="tether-chaos-api-", suffix=".log")
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> "ApiProcess":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
             "--port", str(self.port), "--log-level", "warning", "--no-access-log"],
            cwd=ROOT,
            env=settings_env(self.settings),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self._ready, timeout=timeout, what=f"the API on {self.port}")
        return self

    def _ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the API exited at start:\n{self.output()[-3000:]}")
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        self.log.close()


class WorkerPool:
    """`size` Celery workers; faults kill or stop one, heal() brings the count back."""

    def __init__(self, settings: Settings, size: int = 2, concurrency: int = 8) -> None:
        self.settings = settings
        self.size = size
        self.concurrency = concurrency
        self.workers: list[Worker] = []
        self.dead_output: list[str] = []  # logs of workers that are gone, for a post-mortem

    def heal(self) -> None:
        for worker in [w for w in self.workers if w.process.poll() is not None]:
            self._bury(worker)
        missing = self.size - len(self.workers)
        started = [Worker(self.settings, self.concurrency) for _ in range(missing)]
        for worker in started:
            worker.start()
        self.workers += started

    def _bury(self, worker: Worker) -> None:
        self.dead_output.append(worker.output()[-20000:])
        worker.stop()
        self.workers.remove(worker)

    def kill_one(self) -> None:
        """SIGKILL the worker running the most jobs: they are left to their leases."""
        worker = self._busiest()
        worker.kill()
        self._bury(worker)

    def in_flight(self) -> dict[int, int]:
        """Jobs running in each live worker process (by pid), as its last heartbeat said."""
        client = redis.Redis.from_url(str(self.settings.redis_url), socket_timeout=2)
        try:
            beats = [client.get(key) for key in client.scan_iter(match=f"{HEARTBEAT_PREFIX}*")]
        finally:
            client.close()
        found = [json.loads(beat) for beat in beats if beat is not None]
        return {beat["pid"]: beat["in_flight"] for beat in found}

    def _busiest(self) -> Worker:
        """The worker running the most jobs, which a fault must hit: not simply the oldest, as
        a batched message puts a burst's jobs on one worker, and the other may hold none."""
        running = self.in_flight()
        return max(self.workers, key=lambda w: running.get(w.process.pid, 0))

    def terminate_one(self) -> None:
        """SIGTERM (docker stop) the worker running the most jobs: it drains for
        WORKER_DRAIN_SECONDS, then gives back what still runs."""
        worker = self._busiest()
        worker.terminate(timeout=self.settings.worker_drain_seconds + 40)
        self._bury(worker)

    def stop_all(self) -> None:
        for worker in list(self.workers):
            self._bury(worker)

    def output(self) -> str:
        return "\n".join([*self.dead_output, *(w.output() for w in self.workers)])


# How each model of a run answers: a streamed reply in pieces, short or long.
MODEL_KNOBS: dict[str, dict[str, Any]] = {
    "fast": {"reply": "one two three four five six seven eight", "chunk_delay": 0.03},
    "slow": {"reply": " ".join(f"w{n}" for n in range(20)), "chunk_delay": 0.1},
    # A background job created without stream=true asks for one answer, not a stream, so
    # chunk_delay does not slow it: a delay does. 2.5 s outlasts a worker's heartbeat period
    # (1 s) and its drain (0.5 s), within UPSTREAM_TIMEOUT (3 s): a fault sees where it runs.
    "long": {"reply": "a long job", "delay": 2.5},
}


@dataclass
class Stack:
    """Every service of a chaos run, started by `Stack.up()`."""

    pg: PostgresCluster
    redis: RestartableRedis
    fake: FakeUpstream
    proxy: FaultProxy
    receiver: Receiver
    settings: Settings
    api: ApiProcess
    workers: WorkerPool
    models: dict[str, str] = field(default_factory=dict)  # MODEL_KNOBS' names -> model ids
    webhook_path: str = "chaos"

    @classmethod
    @contextlib.contextmanager
    def up(
        cls, workers: int = 2, concurrency: int = 8, max_recorded: int | None = None, **changes: Any
    ) -> Iterator["Stack"]:
        with contextlib.ExitStack() as cleanup:
            pg = PostgresCluster()
            cleanup.callback(pg.destroy)
            migrate.upgrade(pg.url)
            red = RestartableRedis()
            cleanup.callback(red.kill)
            fake = FakeUpstream(max_recorded=max_recorded)
            fake.start()
            cleanup.callback(fake.stop)
            proxy = FaultProxy(int(fake.url.rsplit(":", 1)[1])).start()
            cleanup.callback(proxy.stop)
            receiver = Receiver()
            receiver.start()
            cleanup.callback(receiver.stop)
            settings = Settings(
                database_url=pg.url,
                redis_url=red.url,
                celery_queue=f"tether-chaos-{uuid.uuid4().hex[:8]}",
                upstream_base_url=f"{proxy.url}/v1",
                **{**CHAOS_SETTINGS, **changes},
            )
            api = ApiProcess(settings)
            cleanup.callback(api.close)
            api.start()
            pool = WorkerPool(settings, workers, concurrency)
            cleanup.callback(pool.stop_all)
            pool.heal()
            stack = cls(pg, red, fake, proxy, receiver, settings, api, pool)
            stack.script_models()
            stack.subscribe_webhooks()
            yield stack

    def script_models(self, **override: Any) -> None:
        """(Re)script every model of the run; `override` knobs (status=500, say) on all."""
        for name, knobs in MODEL_KNOBS.items():
            model = self.models.setdefault(name, f"chaos-{name}-{uuid.uuid4().hex[:6]}")
            self.fake.script(model, **{**knobs, **override})

    def subscribe_webhooks(self) -> None:
        """One endpoint for every terminal event: its outbox rows are a record, written in the
        transaction of each status change, of how many times each response ended."""
        answer = httpx.post(
            f"{self.api.url}/v1/webhook_endpoints",
            json={
                "name": "chaos",
                "url": self.receiver.url_for(self.webhook_path),
                "event_types": ["response.completed", "response.failed",
                                "response.cancelled", "response.incomplete"],
            },
            timeout=10,
        )  # fmt: skip
        answer.raise_for_status()

    def restarts(self) -> tuple[int, int]:
        """How often PostgreSQL and Redis have come back so far."""
        return self.pg.starts, self.redis.starts

    def renew(self) -> None:
        """New API and worker processes: nothing a fault left in them (stale pooled
        connections, say) is carried into what is tested next."""
        self.api.stop()
        self.api.start()
        self.workers.stop_all()
        self.workers.heal()

    def heal(self) -> None:
        """Bring back whatever a fault took away; idempotent."""
        if not self.pg.running():
            self.pg.start()
        if not self.redis.running():
            self.redis.start()
        if self.proxy.mode != "pass":
            self.proxy.set_mode("pass")
        self.script_models()
        if not self.api.running():
            self.api.start()
        self.workers.heal()


@dataclass(frozen=True)
class Fault:
    """A fault: `begin` breaks something, `hold` seconds pass under load, `end` repairs it.
    `api_down`: the API itself is gone meanwhile (clients may not reach it). `burst`: slow
    jobs created just before, for a fault that should find a backlog (in the queue, or
    running on the worker it takes away), of the model `burst_model`."""

    name: str
    begin: Callable[[Stack], None]
    end: Callable[[Stack], None]
    hold: float = 2.0
    api_down: bool = False
    burst: int = 0
    burst_model: str = "slow"


def _pg_stop(stack: Stack) -> None:
    stack.pg.stop("fast")


def _pg_start(stack: Stack) -> None:
    stack.pg.start()


def _proxy(mode: ProxyMode) -> Callable[[Stack], None]:
    def begin(stack: Stack) -> None:
        stack.proxy.set_mode(mode)

    return begin


def _answer(status: int) -> Callable[[Stack], None]:
    def begin(stack: Stack) -> None:
        stack.script_models(status=status, error_message=f"chaos {status}")

    return begin


def _heal(stack: Stack) -> None:
    stack.heal()


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in [
        Fault(
            "worker_sigkill",
            lambda s: s.workers.kill_one(),
            _heal,
            1.0,
            burst=12,
            burst_model="long",
        ),
        Fault(
            "worker_sigterm",
            lambda s: s.workers.terminate_one(),
            _heal,
            0.5,
            burst=12,
            burst_model="long",
        ),
        Fault("redis_restart", lambda s: s.redis.kill(), lambda s: s.redis.start(), 1.0, burst=24),
        Fault("postgres_restart", _pg_stop, _pg_start, hold=2.0),
        Fault("postgres_kill", lambda s: s.pg.kill(), _pg_start, hold=1.0),
        Fault("api_sigkill", lambda s: s.api.kill(), lambda s: s.api.start(), 1.0, True),
        Fault("upstream_refuse", _proxy("refuse"), _heal, hold=2.0),
        Fault("upstream_cut", _proxy("cut"), _heal, hold=2.0),
        Fault("upstream_hang", _proxy("hang"), _heal, hold=4.0),
        Fault("upstream_500", _answer(500), _heal, hold=2.0),
        Fault("upstream_429", _answer(429), _heal, hold=2.0),
    ]
}
