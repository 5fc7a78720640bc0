#!/usr/bin/env python3
"""Replays docker-compose.yaml without a Docker engine.

Reads the compose file, and for every service built from this repository (`build: .`) runs
the kiln binary with exactly the service's environment (the x-shared-env anchor merged with
its own `environment`, `${VAR:-default}` interpolated, volume paths mapped to a scratch
directory), in `depends_on` order: `service_completed_successfully` dependencies must exit 0
before their dependents start. Third-party services (postgres, redis) are provided by the
local machine. Then each long-running service's own healthcheck command is run until it
passes, `/ready` must answer 200, and SIGTERM must stop every process with exit code 0.

Environment for the replay (the hosts differ from inside compose):
  KILN_BIN      the kiln binary (default: target/debug/kiln)
  everything else is passed to the interpolation as a compose .env would be.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
INTERPOLATION = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def say(message):
    print(f"replay: {message}", flush=True)


def fail(message):
    print(f"replay: FAILED: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def interpolate(value, variables):
    if not isinstance(value, str):
        return "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return INTERPOLATION.sub(lambda m: variables.get(m.group(1)) or (m.group(2) or ""), value)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def order(services):
    """Services in dependency order (depends_on first)."""
    done, result = set(), []

    def visit(name, path=()):
        if name in done:
            return
        if name in path:
            fail(f"dependency cycle through {name}")
        for dependency in (services[name].get("depends_on") or {}):
            visit(dependency, path + (name,))
        done.add(name)
        result.append(name)

    for name in services:
        visit(name)
    return result


def main():
    with open(os.path.join(ROOT, "docker-compose.yaml")) as handle:
        compose = yaml.safe_load(handle)
    services = compose["services"]
    kiln_bin = os.path.abspath(os.environ.get("KILN_BIN", os.path.join(ROOT, "target", "debug", "kiln")))
    if not os.path.exists(kiln_bin):
        fail(f"kiln binary not found at {kiln_bin}; build it or set KILN_BIN")

    database = f"kiln_replay_{uuid.uuid4().hex[:12]}"
    scratch = tempfile.mkdtemp(prefix="kiln-replay-")
    # What a compose .env would say on this machine: the services live on 127.0.0.1 and the
    # local Redis has no password.
    redis_port = free_port()
    variables = {
        "DB_HOST": "127.0.0.1",
        "DB_PORT": "5432",
        "DB_USERNAME": "postgres",
        "DB_DATABASE": database,
        "REDIS_HOST": "127.0.0.1",
        "REDIS_PORT": str(redis_port),
        "LOG_OUTPUT_FORMAT": "text",
    }
    variables.update({k: v for k, v in os.environ.items() if k in variables})
    # The compose redis service runs with a password, so the replay runs a private
    # redis-server with the same command line on a free port, and points the broker URL
    # (whose compose default names the `redis` host) at it.
    redis_password = interpolate("${REDIS_PASSWORD:-difyai123456}", variables)
    variables["CELERY_BROKER_URL"] = f"redis://:{redis_password}@127.0.0.1:{redis_port}/1"
    redis_command = [interpolate(part, variables) for part in services["redis"]["command"]]
    redis_server = subprocess.Popen(
        redis_command + ["--bind", "127.0.0.1", "--port", str(redis_port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    psql = ["psql", "-h", variables["DB_HOST"], "-p", variables["DB_PORT"], "-U", variables["DB_USERNAME"], "-d", "postgres", "-qc"]
    subprocess.run(psql + [f"CREATE DATABASE {database}"], check=True)
    kiln_images = {s.get("image") for s in services.values() if "build" in s}
    processes = {}
    try:
        for name in order(services):
            service = services[name]
            if name == "redis":
                say(f"redis: private redis-server with the service's command, on port {redis_port}")
                continue
            if "build" not in service and service.get("image") not in kiln_images:
                if str(service.get("restart")) == "no":
                    say(f"{name}: one-shot container job ({service.get('image')}); local processes need no equivalent")
                else:
                    say(f"{name}: {service.get('image')} is provided by this machine")
                continue
            environment = {k: interpolate(v, variables) for k, v in (service.get("environment") or {}).items()}
            # Container paths of volumes become directories in the scratch area.
            for volume in service.get("volumes") or []:
                source, target = volume.split(":")[:2]
                host = os.path.join(scratch, source.lstrip("./"))
                os.makedirs(host, exist_ok=True)
                environment = {k: v.replace(target, host) if v.startswith(target) else v for k, v in environment.items()}
            for dependency, condition in (service.get("depends_on") or {}).items():
                wanted = condition.get("condition") if isinstance(condition, dict) else None
                if dependency in processes and wanted == "service_completed_successfully":
                    code = processes[dependency].wait(timeout=120)
                    if code != 0:
                        fail(f"{name} depends on {dependency}, which exited {code}")
                    say(f"{dependency} completed successfully (exit 0)")
            if service.get("ports"):
                environment["DIFY_PORT"] = str(free_port())
            env = {"PATH": os.environ.get("PATH", ""), **environment}
            command = [kiln_bin] + [interpolate(part, variables) for part in (service.get("command") or [])]
            replicas = int(interpolate((service.get("deploy") or {}).get("replicas", 1), variables) or 1)
            for replica in range(1, replicas + 1):
                key = name if replicas == 1 else f"{name}-{replica}"
                replica_env = dict(env)
                # Each container has its own network namespace; here replicas need their own port.
                if "KILN_WORKER_HEALTH_PORT" in replica_env:
                    replica_env["KILN_WORKER_HEALTH_PORT"] = str(free_port())
                say(f"{key}: MODE={env.get('MODE', '')} {' '.join(command[1:])}")
                processes[key] = subprocess.Popen(command, env=replica_env, cwd=scratch)
                processes[key].replay_env = replica_env
                processes[key].service = name

        for name, process in processes.items():
            check = (services[process.service].get("healthcheck") or {}).get("test")
            if not check:
                continue
            if check[0] not in ("CMD", "CMD-SHELL"):
                fail(f"{name}: unsupported healthcheck {check}")
            argv = check[1:] if check[0] == "CMD" else ["sh", "-c", check[1]]
            if argv[0] == "kiln":
                argv[0] = kiln_bin
            for _ in range(120):
                if process.poll() is not None:
                    fail(f"{name} exited {process.returncode} before becoming healthy")
                if subprocess.run(argv, env=process.replay_env, cwd=scratch, capture_output=True).returncode == 0:
                    break
                time.sleep(0.5)
            else:
                fail(f"{name}: healthcheck {argv} never passed")
            say(f"{name}: healthcheck passed")
            port = process.replay_env.get("DIFY_PORT") or process.replay_env.get("KILN_WORKER_HEALTH_PORT")
            if port:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=10) as response:
                    body = response.read().decode()
                    if response.status != 200:
                        fail(f"{name}: /ready answered {response.status}: {body}")
                    say(f"{name}: /ready 200 {body}")

        # Each worker service must actually consume: push a probe job and wait for it.
        for name, process in processes.items():
            if process.replay_env.get("MODE") != "worker":
                continue
            probe = subprocess.run(
                [kiln_bin, "queue", "probe", "--queue", "mail", "--timeout", "30"],
                env=process.replay_env, cwd=scratch, capture_output=True, text=True,
            )
            if probe.returncode != 0:
                fail(f"{name}: {probe.stderr.strip() or probe.stdout.strip()}")
            say(f"{name}: {probe.stdout.strip()}")

        for name, process in processes.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=60)
                if code != 0:
                    fail(f"{name} exited {code} after SIGTERM")
                say(f"{name}: stopped cleanly on SIGTERM")
        say("compose stack replayed: OK")
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
        redis_server.kill()
        subprocess.run(psql + [f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"], check=False)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
