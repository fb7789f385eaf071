"""Which addresses will ``mlflow server <args>`` listen on? mlflow/server.sh asks before it starts
the server, and refuses to start one reachable from other machines without a login.

The arguments are read by the parsers that will read them for real, never re-implemented:
mlflow's own ``server`` command (click, with the ``MLFLOW_*`` environment variables it reads:
the last ``--host`` wins, ``-h0.0.0.0`` and ``--host=0.0.0.0`` count, ``MLFLOW_UVICORN_OPTS`` and
``MLFLOW_GUNICORN_OPTS`` apply), then mlflow's builder of the web server's command line, then that
server's own parser (uvicorn's click command with its ``UVICORN_*`` variables, gunicorn's
argument parser with ``GUNICORN_CMD_ARGS``, waitress's). Every host name is resolved as a server
resolves a bind address (all its addresses, ``getaddrinfo`` with ``AI_PASSIVE``): each must be a
loopback address. What cannot be checked — a socket handed in by file descriptor, a gunicorn
configuration file (it may bind more and run hooks), waitress when it is not installed, a name
that does not resolve — counts as reachable.

    python mlflow/bind_check.py [--insecure] -- <the arguments of mlflow server>

Exit 0: loopback only, or a login (``--app-name basic-auth``) is required, or ``--insecure``.
Exit 3: reachable from other machines without a login. Exit 2: mlflow itself would refuse the
arguments. One line on stdout says which, and why.
"""
from __future__ import annotations

import ipaddress
import os
import shlex
import socket
import sys

APP = "mlflow.server.fastapi_app:app"  # only a placeholder for the command builders


class Unknown(Exception):
    """The bound address cannot be known before the server starts."""


def mlflow_settings(args: list[str]) -> dict:
    """The ``mlflow server`` parameters as mlflow's click command reads ``args`` (and the
    environment), with ``--dev`` applied as mlflow applies it."""
    import click
    from mlflow.cli import _validate_server_args, server

    ctx = server.make_context("mlflow server", list(args))
    params = dict(ctx.params)
    if params.get("dev") and params.get("uvicorn_opts") is None and params.get("gunicorn_opts") is None:
        params["uvicorn_opts"] = "--reload --log-level debug"  # mlflow's --dev
    try:
        _validate_server_args(ctx=ctx, gunicorn_opts=params.get("gunicorn_opts"),
                              workers=params.get("workers"), waitress_opts=params.get("waitress_opts"),
                              uvicorn_opts=params.get("uvicorn_opts"))
    except (click.UsageError, NotImplementedError) as exc:
        raise click.UsageError(str(exc)) from None
    return params


def web_server_binds(params: dict) -> list[tuple[str, object]]:
    """``[(kind, value)]`` the web server mlflow starts will listen on: ``("tcp", (host, port))``,
    ``("unix", path)``; raises :class:`Unknown` when it cannot be known."""
    from mlflow import server as mlflow_server

    host, port, workers = params["host"], params["port"], params.get("workers") or 4
    if params.get("gunicorn_opts") is not None:
        cmd = mlflow_server._build_gunicorn_command(params["gunicorn_opts"], host, port, workers, APP)
        return _gunicorn_binds(cmd[3:])
    if params.get("waitress_opts") is not None:
        cmd = mlflow_server._build_waitress_command(params["waitress_opts"], host, port, APP, False)
        return _waitress_binds(cmd[3:])
    cmd = mlflow_server._build_uvicorn_command(params.get("uvicorn_opts"), host, port, workers, APP)
    return _uvicorn_binds(cmd[3:])


def _uvicorn_binds(argv: list[str]) -> list[tuple[str, object]]:
    from uvicorn import main as uvicorn_command  # the click command (uvicorn.main the module is shadowed)

    p = uvicorn_command.make_context("uvicorn", list(argv)).params
    if p.get("fd") is not None:
        raise Unknown(f"uvicorn would serve a socket handed in as file descriptor {p['fd']}")
    if p.get("uds"):
        return [("unix", p["uds"])]
    return [("tcp", (p["host"], p["port"]))]


def _gunicorn_binds(argv: list[str]) -> list[tuple[str, object]]:
    from gunicorn.config import Config, get_default_config_file
    from gunicorn.util import parse_address

    parser = Config().parser()
    args = parser.parse_args(list(argv))
    env_args = parser.parse_args(shlex.split(os.environ.get("GUNICORN_CMD_ARGS", "")))
    config = args.config or env_args.config or get_default_config_file()
    if config:
        raise Unknown(f"gunicorn would read the configuration file {config}, which may bind other "
                      "addresses and run code")
    binds = args.bind or env_args.bind or ["127.0.0.1:8000"]  # the command line wins, as in gunicorn
    out = []
    for bind in binds:
        address = parse_address(bind)
        if isinstance(address, int):
            raise Unknown(f"gunicorn would serve a socket handed in as file descriptor {address}")
        out.append(("unix", address) if isinstance(address, str) else ("tcp", address))
    return out


def _waitress_binds(argv: list[str]) -> list[tuple[str, object]]:
    try:
        from waitress.adjustments import Adjustments
    except ImportError:
        raise Unknown("waitress is not installed here, so its options cannot be read") from None
    kw, _ = Adjustments.parse_args(list(argv))
    adj = Adjustments(**kw)
    if getattr(adj, "sockets", None):
        raise Unknown("waitress would serve sockets handed in by the caller")
    out = [("unix", adj.unix_socket)] if getattr(adj, "unix_socket", None) else []
    for family, _type, _proto, sockaddr in adj.listen:
        out.append(("tcp", (sockaddr[0], sockaddr[1])))
    return out


def is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    mapped = getattr(ip, "ipv4_mapped", None)
    return ip.is_loopback or (mapped is not None and mapped.is_loopback)


def resolve(host: str, port) -> list[str]:
    """Every address a server binding ``host`` may listen on (an empty host: every interface)."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise Unknown(f"the host name {host!r} does not resolve ({exc})") from None
    return sorted({info[4][0] for info in infos})


def reachable(binds) -> list[str]:
    """The binds (as text) that other machines could reach."""
    out = []
    for kind, value in binds:
        if kind == "unix":
            continue  # a Unix socket is local to this machine
        host, port = value
        addresses = resolve(str(host), port)
        public = [a for a in addresses if not is_loopback(a)]
        if public:
            named = host if host else "every interface"
            shown = named if [host] == public else f"{named} ({', '.join(public)})"
            out.append(f"[{shown}]:{port}" if ":" in shown else f"{shown}:{port}")
    return out


def main(argv: list[str]) -> int:
    import click

    insecure = "--insecure" in argv[: argv.index("--") if "--" in argv else 0]
    args = argv[argv.index("--") + 1:] if "--" in argv else argv
    try:
        params = mlflow_settings(args)
    except click.exceptions.Exit as exc:  # --help
        return exc.exit_code
    except click.ClickException as exc:
        print(f"mlflow server would refuse these arguments: {exc.format_message()}")
        return 2
    login = params.get("app_name") == "basic-auth"
    try:
        public = reachable(web_server_binds(params))
        where = ", ".join(public) if public else "this machine only (loopback or a Unix socket)"
        reason = f"it would listen on {where}" if public else ""
    except Unknown as exc:
        public, where, reason = ["?"], "unknown", str(exc)
    if not public or login or insecure:
        print(f"{where}; login {'required' if login else 'not required'}")
        return 0
    print(f"{reason}: reachable from other machines, and without --app-name basic-auth anyone who "
          "reaches it can register models and move the champion alias")
    return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
