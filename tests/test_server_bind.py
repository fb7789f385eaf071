"""mlflow/server.sh decides where mlflow will really listen (issue #27, item 1): every way of asking
for a public address without a login is refused — ``--host=0.0.0.0``, ``-h0.0.0.0``, a name that
only starts with ``127.``, a later ``--host``, the web server's own options and the environment
variables mlflow and the web servers read — and what the script lets through is checked on a
real server's listening sockets."""
from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, free_port, wait_http

SCRIPT = str(ROOT / "mlflow" / "server.sh")


def script_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MLFLOW_", "GEN_KERAS_MLFLOW", "UVICORN_", "GUNICORN_"))}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    return {**env, **extra}


def run_script(args, tmp_path, env=None, timeout=60):
    """The script's exit code and stderr; a server it starts instead is stopped and reported."""
    store = tmp_path / "m.db"
    proc = subprocess.Popen(["bash", SCRIPT, "--backend-store-uri", f"sqlite:///{store}",
                             "--artifacts-destination", str(tmp_path / "a"), "--port", str(free_port()),
                             *args], env=env or script_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=tmp_path)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"the script started a server for {args}")
    return proc.returncode, err, store


BYPASSES = {
    "host=": (["--host=0.0.0.0"], {}),
    "-h attached": (["-h0.0.0.0"], {}),
    "127. prefix name": (["--host", "127.evil.example"], {}),
    "later --host": (["--host", "127.0.0.1", "--host", "0.0.0.0"], {}),
    "empty host": (["--host="], {}),
    "ipv6 any": (["--host", "::"], {}),
    "gunicorn bind": (["--gunicorn-opts", "-b 0.0.0.0:{port}"], {}),
    "gunicorn bind from env": ([], {"MLFLOW_GUNICORN_OPTS": "-b 0.0.0.0:{port}"}),
    "gunicorn config file": (["--gunicorn-opts", "-c gunicorn_extra.py"], {}),
    "uvicorn fd": (["--uvicorn-opts", "--fd 0"], {}),
    "uvicorn fd from env": ([], {"UVICORN_FD": "0"}),
    "waitress": (["--waitress-opts=--host=0.0.0.0"], {}),
    "our host variable": ([], {"GEN_KERAS_MLFLOW_HOST": "0.0.0.0"}),
}


@pytest.mark.parametrize("case", list(BYPASSES))
def test_a_public_address_without_login_is_refused(case, tmp_path):
    args, env = BYPASSES[case]
    port = str(free_port())
    args = [a.replace("{port}", port) for a in args]
    env = script_env(**{k: v.replace("{port}", port) for k, v in env.items()})
    code, err, store = run_script(args, tmp_path, env)
    assert code == 2 and "refusing to start" in err and "--app-name basic-auth" in err, err
    assert not store.exists()


def test_the_reason_names_the_address_or_what_cannot_be_checked(tmp_path):
    port = free_port()
    _, err, _ = run_script(["--gunicorn-opts", f"-b 0.0.0.0:{port}"], tmp_path)
    assert f"0.0.0.0:{port}" in err
    _, err, _ = run_script(["--host", "127.evil.example"], tmp_path)
    assert "'127.evil.example' does not resolve" in err
    _, err, _ = run_script(["--uvicorn-opts", "--fd 0"], tmp_path)
    assert "file descriptor 0" in err
    code, err, _ = run_script(["--uvicorn-opts", "--host 0.0.0.0", "--gunicorn-opts=-w 1"], tmp_path)
    assert code == 2 and "Cannot specify multiple server options" in err  # mlflow's own refusal


def test_with_login_or_insecure_the_check_lets_a_public_address_through():
    bind_check = _bind_check()
    assert bind_check.main(["--", "--host", "0.0.0.0", "--app-name", "basic-auth"]) == 0
    assert bind_check.main(["--insecure", "--", "--host=0.0.0.0"]) == 0
    assert bind_check.main(["--", "--host=0.0.0.0"]) == 3
    assert bind_check.main(["--", "--port", "notaport"]) == 2


def test_addresses_and_binds_as_the_servers_read_them():
    bc = _bind_check()
    for address in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert bc.is_loopback(address), address
    for address in ("0.0.0.0", "::", "10.0.0.1", "::ffff:10.0.0.1", "192.168.1.2"):
        assert not bc.is_loopback(address), address
    assert bc.reachable([("tcp", ("localhost", 5000)), ("unix", "/tmp/s")]) == []
    assert bc.reachable([("tcp", ("", 5000))])  # an empty host: every interface
    # mlflow puts its own --host after the uvicorn options, and uvicorn keeps the last one
    params = bc.mlflow_settings(["--uvicorn-opts", "--host 0.0.0.0"])
    assert bc.web_server_binds(params) == [("tcp", ("127.0.0.1", 5000))]
    # gunicorn binds every -b it is given: the option's and mlflow's
    params = bc.mlflow_settings(["--gunicorn-opts", "-b 0.0.0.0:7000"])
    assert bc.web_server_binds(params) == [("tcp", ("0.0.0.0", 7000)), ("tcp", ("127.0.0.1", 5000))]
    assert bc.web_server_binds(bc.mlflow_settings(["--dev"])) == [("tcp", ("127.0.0.1", 5000))]


def test_uvicorn_opts_host_reaches_only_loopback_on_a_real_server(tmp_path):
    """The issue's ``--uvicorn-opts "--host 0.0.0.0"``: with mlflow 3.17 the server command puts
    mlflow's ``--host`` last, so uvicorn binds loopback; the script lets it start and every socket
    the server's processes listen on is loopback."""
    import psutil

    port = free_port()
    proc = subprocess.Popen(["bash", SCRIPT, "--backend-store-uri", f"sqlite:///{tmp_path / 'm.db'}",
                             "--artifacts-destination", str(tmp_path / "a"), "--port", str(port),
                             "--workers", "1", "--uvicorn-opts", "--host 0.0.0.0"],
                            env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", 180, proc)
        group = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
        listening = [c.laddr for c in psutil.net_connections("inet")
                     if c.status == psutil.CONN_LISTEN and c.pid in group]
        assert listening and all(bc_loopback(a.ip) for a in listening), listening
        assert any(a.port == port for a in listening)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def bc_loopback(ip: str) -> bool:
    return _bind_check().is_loopback(ip)


def _bind_check():
    spec = importlib.util.spec_from_file_location("bind_check", ROOT / "mlflow" / "bind_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
