"""``emporium services up|down|status``: the local cluster stack for operators (same code as pytest's).

State lives in ``.stack/`` in the working directory: ``state.json`` (PIDs, ports, URLs, data dirs) and
``urls.env``, which an operator sources to run Emporium against the stack.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from infra.local.stack import SERVICE_ENV, SERVICES, LocalStack, StackError, external_url, probe

if TYPE_CHECKING:
    from infra.local.edge import EdgeTopology

services_app = typer.Typer(
    name="services",
    help="The local cluster stack: Redis, MariaDB, Kafka + Elasticsearch (noida-db), Cassandra 2.1, Spark; "
    "and `edge`: Nginx in front of API workers and a projector process over it.",
    no_args_is_help=True,
)

StackDir = Annotated[
    Path, typer.Option("--stack-dir", help="Where state, logs and data live.", envvar="EMPORIUM_STACK_DIR")
]
DEFAULT_STACK_DIR = Path(".stack")
EDGE = "edge"


def _edge(stack: LocalStack) -> EdgeTopology:
    from infra.local.edge import EdgeTopology  # httpx and the rest load only for the edge

    return EdgeTopology(stack.base_dir)


def _stack(stack_dir: Path) -> LocalStack:
    return LocalStack(stack_dir, keep_running=True)


def _external(stack: LocalStack, service: str) -> str | None:
    """An EMPORIUM_*_URL naming a server other than this stack's own (a sourced urls.env is ours)."""
    url = external_url(service)
    return url if url and url != stack.url(service) else None


def write_urls_env(stack: LocalStack) -> Path:
    """Write ``urls.env``: one ``export EMPORIUM_*_URL=...`` per service that is external or running."""
    lines = ["# Written by `emporium services up`. Use: source .stack/urls.env"]
    for service in SERVICES:
        env_var, _schemes = SERVICE_ENV[service]
        url = _external(stack, service) or stack.url(service)
        if url:
            lines.append(f"export {env_var}={shlex.quote(url)}")
    path = stack.base_dir / "urls.env"
    path.write_text("\n".join(lines) + "\n")
    return path


# The servers `up` starts when none is named: Spark's two JVMs only serve `analytics run` on a cluster.
DEFAULT_SERVICES: tuple[str, ...] = tuple(s for s in SERVICES if s != "spark")


@services_app.command("up")
def up(
    services: Annotated[
        list[str] | None,
        typer.Argument(
            help=f"Services to start: {', '.join(SERVICES)}, or `edge` (default: all but spark and edge, "
            "which start only when named)."
        ),
    ] = None,
    stack_dir: StackDir = DEFAULT_STACK_DIR,
    workers: Annotated[int, typer.Option(min=1, max=16, help="edge: API worker processes.")] = 2,
    prometheus: Annotated[bool, typer.Option(help="edge: run Prometheus scraping every process.")] = True,
) -> None:
    """Start the servers (left running after this command exits) and write .stack/urls.env. `edge`
    starts every server too, then Nginx, the API workers and the projector over them."""
    wanted = list(dict.fromkeys(services or DEFAULT_SERVICES))
    edge = EDGE in wanted
    if edge:
        wanted = list(dict.fromkeys([s for s in wanted if s != EDGE] + list(DEFAULT_SERVICES)))
    unknown = [s for s in wanted if s not in SERVICES]
    if unknown:
        choices = ", ".join((*SERVICES, EDGE))
        raise typer.BadParameter(f"unknown service(s) {', '.join(unknown)}; choose from {choices}")
    stack = _stack(stack_dir)
    external = {s: url for s in wanted if (url := _external(stack, s))}
    to_start = [s for s in wanted if s not in external]
    try:
        urls = stack.ensure_many(to_start)
    except StackError as exc:
        typer.secho(f"could not start the stack: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    report = stack.status(check=False)  # ensure_many has just seen each answer
    for service in wanted:
        if service in external:
            env_var = SERVICE_ENV[service][0]
            typer.echo(f"{service:14} {external[service]}  (external, from {env_var}; not started)")
        else:
            entry = report[service]
            typer.echo(
                f"{service:14} {urls[service]}  (pid {entry['pid']}, {entry['server']}, "
                f"ready in {entry['startup_seconds'] or 0:.1f}s)"
            )
    env_file = write_urls_env(stack)
    if edge:
        _edge_up(stack, external, urls, workers=workers, prometheus=prometheus)
    typer.echo(f"\nsource {env_file} to use these servers; `emporium services down` stops them.")


def _edge_up(
    stack: LocalStack, external: dict[str, str], urls: dict[str, str], *, workers: int, prometheus: bool
) -> None:
    # every server started or named (spark only when asked for: the workers do not need it)
    by_env = {SERVICE_ENV[s][0]: url for s in SERVICES if (url := external.get(s) or urls.get(s))}
    try:
        state = _edge(stack).up(by_env, workers=workers, prometheus=prometheus)
    except StackError as exc:
        typer.secho(f"could not start the edge: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    typer.echo(
        f"{EDGE:14} {state.url}  (Nginx -> {len(state.worker_ports)} workers on ports "
        f"{', '.join(map(str, state.worker_ports))}; projector metrics on {state.projector_port})"
    )
    if state.prometheus_url:
        typer.echo(f"{'prometheus':14} {state.prometheus_url}")
    typer.echo(f"{'admin token':14} in {state.admin_token_file}")


@services_app.command("down")
def down(stack_dir: StackDir = DEFAULT_STACK_DIR) -> None:
    """Stop every server of the stack by its PID and verify none is left."""
    stack = _stack(stack_dir)
    edge = _edge(stack)
    if edge.state() is not None:
        edge.down()
        typer.echo("stopped the edge (Nginx, API workers, projector)")
    pids = stack.pids()
    if not pids:
        typer.echo("nothing running in this stack")
    try:
        stack.stop_all()
    except StackError as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(1) from exc
    for server, pid in pids.items():
        typer.echo(f"stopped {server} (pid {pid})")
    (stack.base_dir / "urls.env").unlink(missing_ok=True)


@services_app.command("status")
def status(stack_dir: StackDir = DEFAULT_STACK_DIR) -> None:
    """Each service's URL and whether it answers a real request now. Exit 1 if a known one does not."""
    stack = _stack(stack_dir)
    report = stack.status()
    failing = False
    for service in SERVICES:
        if url := _external(stack, service):
            try:
                detail, state = probe(service, url), "answers"
            except Exception as exc:
                detail, state, failing = f"{type(exc).__name__}: {exc}", "NOT ANSWERING", True
            typer.echo(f"{service:14} {url}  external, {state} ({detail})")
        elif entry := report.get(service):
            if entry["answers"]:
                state = "answers"
            else:
                failing = True
                state = "NOT ANSWERING" if entry["running"] else "EXITED"
            typer.echo(f"{service:14} {entry['url']}  pid {entry['pid']}, {state} ({entry['detail']})")
        else:
            typer.echo(f"{service:14} -  not started")
    failing = _edge_status(_edge(stack)) or failing
    if failing:
        raise typer.Exit(1)


def _edge_status(edge: EdgeTopology) -> bool:
    """Print the edge's processes; True when one of them does not answer."""
    import httpx

    state = edge.state()
    if state is None:  # never started, or stopped: nothing to say (`up edge` starts it)
        return False
    restarts = {child.name: (child.pid, child.restarts) for child in edge.children()}
    failing = False
    for name, url in edge.endpoints(state).items():
        try:
            answers = httpx.get(url, timeout=3).status_code == 200
        except httpx.HTTPError:
            answers = False
        failing = failing or not answers
        pid, restarted = restarts.get(name, (0, 0))
        typer.echo(
            f"{name:14} {url}  pid {pid}, restarted {restarted}x, {'answers' if answers else 'NOT READY'}"
        )
    return failing


def register(app: typer.Typer) -> None:
    """Add this package's commands to the root ``emporium`` command."""
    app.add_typer(services_app, name="services")
