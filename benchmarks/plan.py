"""Which jobs a run holds: rows 1-7 of issue 7 as lists of :class:`jobs.Job`.

Placement (2 CPUs, gmrload's convention): the server on the first CPU, the
client on the second; rr_same puts both on the second. The workers row gives
the server its first N CPUs and the clients whatever is left (the second CPU
when nothing is left, which a 2-core machine cannot avoid).
"""

from __future__ import annotations

from dataclasses import dataclass

from jobs import Job
from servers import (
    ALL,
    FLOOR,
    FLOOR_BATCH,
    GO,
    GOOMERANG_COMPILED,
    GOOMERANG_METRICS,
    NAMES,
    ServerSpec,
    goomerang,
    goomerang_compiled,
)

GROUPS = ("pipe", "rr", "conc", "bcast", "workers", "memory")


@dataclass
class Sizes:
    """How much work each job does (``--quick`` shrinks all of it)."""

    pipe_n: dict[str, int]
    rr_n: int
    conc_n: int
    bcast_deliveries: int
    receivers: tuple[int, ...]
    workers_n: int
    idle_conns: tuple[int, ...]
    timeout: float


FULL = Sizes(
    pipe_n={"floor": 300_000, "floor-batch": 2_000_000, "picows": 300_000, "websockets": 100_000},
    rr_n=20_000,
    conc_n=50_000,
    bcast_deliveries=500_000,
    receivers=(50, 500, 1000),
    workers_n=400_000,
    idle_conns=(1000, 10_000),
    timeout=30.0,
)
QUICK = Sizes(
    pipe_n={"floor": 10_000, "floor-batch": 50_000, "picows": 10_000, "websockets": 3_000},
    rr_n=500,
    conc_n=2_000,
    bcast_deliveries=20_000,
    receivers=(50, 500, 1000),
    workers_n=20_000,
    idle_conns=(200, 1000),
    timeout=10.0,
)
DEFAULT_PIPE_N = {"full": 200_000, "quick": 5_000}


@dataclass
class Placement:
    """CPUs for the server and the client."""

    cpus: list[int]
    server: int
    client: int

    def workers(self, n: int) -> tuple[str, list[int]]:
        """Server CPUs (first n) and client CPUs (the rest, or the client CPU) for n workers."""
        srv = self.cpus[:n]
        rest = [c for c in self.cpus if c not in srv]
        return ",".join(map(str, srv)), rest or [self.client]


def select(only: str | None) -> tuple[list[str], list[str]]:
    """Split ``--only`` tokens into row groups and server names (empty = all)."""
    groups: list[str] = []
    names: list[str] = []
    for token in (only or "").replace(" ", "").split(","):
        if not token:
            continue
        if token in GROUPS:
            groups.append(token)
        elif token in NAMES:
            names.append(token)
        else:
            raise SystemExit(f"--only: unknown row or server {token!r} (rows {GROUPS}, {NAMES})")
    return groups or list(GROUPS), names


def build(
    only: str | None,
    quick: bool,
    place: Placement,
    workers: list[int],
    coalesce_us: int,
    go: ServerSpec | None = None,
) -> list[Job]:
    """All jobs of this run, in the order one rep runs them.

    ``go``: the Go reference server, when built; it joins the pipe, rr and conc
    rows and the 500-receiver broadcast whenever goomerang runs (or ``go`` is named).
    """
    groups, names = select(only)
    sizes = QUICK if quick else FULL
    # The floor is always measured (every ratio needs it); aiohttp too when goomerang
    # runs, since the pipelined target compares the two.
    wanted = set(names) | {FLOOR.name} | ({"aiohttp"} if "goomerang" in names else set())
    if GO in names and go is None:
        raise SystemExit("--only go: the Go server is not built (--goref DIR or GOREF_DIR)")
    servers: list[ServerSpec] = [s for s in ALL if not names or s.name in wanted]
    if go is not None and (not names or GO in names or "goomerang" in names):
        servers.append(go)
    want_gmr = any(s.goomerang and s.name != GO for s in servers)
    srv, cli = str(place.server), [place.client]
    jobs: list[Job] = []

    def pipe_n(s: ServerSpec) -> int:
        return sizes.pipe_n.get(s.name, DEFAULT_PIPE_N["quick" if quick else "full"])

    def add(job: Job) -> None:
        if job.key not in {j.key for j in jobs}:
            jobs.append(job)

    t = sizes.timeout
    # goomerang with --metrics joins every row goomerang runs in (pipe, rr, conc): the
    # cost of recording every Go metric, as metrics-on / metrics-off of the same run
    with_metrics = want_gmr or GOOMERANG_METRICS.name in names
    metered = [GOOMERANG_METRICS] if with_metrics else []
    # serve on the mypyc-compiled engine joins the same rows when it is built (make bench
    # builds it): compiled / pure of the same run
    compiled = goomerang_compiled() if want_gmr or GOOMERANG_COMPILED in names else None
    if GOOMERANG_COMPILED in names and compiled is None:
        raise SystemExit("--only goomerang-compiled: not built (make compiled)")
    metered += [compiled] if compiled is not None else []
    if "pipe" in groups or ("bcast" in groups and want_gmr):
        extra = [FLOOR_BATCH, *metered]
        for s in [*servers, *extra] if "pipe" in groups else [FLOOR]:
            win = ("--window", "1000", "--refill", "250")
            add(Job("pipe", "1 conn w1000", s, srv, cli, "pipe", pipe_n(s), win, timeout=t))
    if "rr" in groups:
        for s in [*servers, *metered]:
            add(
                Job(
                    "rr_same",
                    "1 in flight",
                    s,
                    str(place.client),
                    cli,
                    "rr",
                    sizes.rr_n,
                    (),
                    timeout=t,
                )
            )
        for s in [*servers, *metered]:
            add(Job("rr_split", "1 in flight", s, srv, cli, "rr", sizes.rr_n, (), timeout=t))
    if "conc" in groups:
        for s in [*servers, *metered]:
            args = ("--conns", "100")
            add(Job("conc", "100 conns", s, srv, cli, "conc", sizes.conc_n, args, timeout=t))
    if "bcast" in groups and want_gmr:
        gmr = goomerang()
        for k in sizes.receivers:
            n = max(10, sizes.bcast_deliveries // (k + 1))
            args = ("--receivers", str(k), "--coalesce-us", str(coalesce_us))
            variant = f"{k} rcv"
            add(Job("bcast", variant, gmr, srv, cli, "bcast", n, args, timeout=t))
            if go is not None and go in servers and k == 500:
                add(Job("bcast", variant, go, srv, cli, "bcast", n, args, timeout=t))
        # Informative: one broadcast in flight, so no read carries two of
        # them and each fan-out is written on its own (no cross-broadcast
        # batching): the cost of encode-once-write-many by itself. Receivers
        # do not coalesce here (a sleep per round would pace the sender).
        k = sizes.receivers[len(sizes.receivers) // 2]
        n = max(10, sizes.bcast_deliveries // (4 * (k + 1)))
        args = ("--receivers", str(k), "--window", "1")
        add(Job("bcast", f"{k} rcv w1", gmr, srv, cli, "bcast", n, args, timeout=t))
    if "workers" in groups and want_gmr:
        clients = 4 * max(workers)
        per_client = max(1000, sizes.workers_n // clients)
        args = ("--window", "250", "--refill", "60")
        s_cpus, c_cpus = place.workers(1)
        variant = f"{clients} conns w250"
        add(
            Job(
                "workers",
                variant,
                FLOOR,
                s_cpus,
                c_cpus,
                "pipe",
                per_client * 2,
                args,
                clients=clients,
                timeout=t,
            )
        )
        for w in workers:
            s_cpus, c_cpus = place.workers(w)
            add(
                Job(
                    "workers",
                    variant,
                    goomerang(w),
                    s_cpus,
                    c_cpus,
                    "pipe",
                    per_client,
                    args,
                    clients=clients,
                    timeout=t,
                    extra={"workers": w},
                )
            )
    if "memory" in groups:
        for conns in sizes.idle_conns:
            for s in servers:
                if s.name == GO:
                    continue  # not compared on memory
                add(
                    Job(
                        "memory",
                        f"{conns} idle",
                        s,
                        srv,
                        cli,
                        "idle",
                        conns,
                        timeout=t,
                        extra={"conns": conns},
                    )
                )
    for i, job in enumerate(jobs):
        job.order = i
    return jobs
