"""Serve function_app.py like the Functions host: `python -m local.functions_host --port 7071`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import threading
from pathlib import Path

from azure.functions.warmup import WarmUpContext
from starlette.concurrency import run_in_threadpool

from .config import load_host_config
from .http import create_http_app
from .invocation import invoke
from .triggers import QueueListener, TimerSchedule, run_by_admin

NON_HTTP_TRIGGERS = ("queueTrigger", "timerTrigger")


def build_app(app_dir: Path):
    config = load_host_config(app_dir)
    log = logging.getLogger("Host")
    stop = threading.Event()
    by_name = {f.name: f for f in config.functions}

    def run_non_http(name: str, payload: str) -> bool:
        function = by_name.get(name)
        if function is None or function.trigger_type not in NON_HTTP_TRIGGERS:
            return False
        threading.Thread(target=run_by_admin, args=(function, payload), daemon=True).start()
        return True

    @contextlib.asynccontextmanager
    async def lifespan(app):
        # Like the host on an instance added by scale-out: the warmup function runs before the
        # instance takes traffic (uvicorn opens its port after the lifespan has started).
        for function in config.functions:
            if function.trigger_type == "warmupTrigger" and not config.is_disabled(function.name):
                invoke(function, WarmUpContext())
        # The host's own first use of its worker threads imports anyio's backend (about 50 ms):
        # done here, as the real host starts its worker before taking traffic.
        await run_in_threadpool(lambda: None)
        threads = []
        for function in config.functions:
            if config.is_disabled(function.name):
                log.info("Function '%s' is disabled", function.name)
                continue
            if function.trigger_type == "queueTrigger":
                runner = QueueListener(function, config, stop).run
            elif function.trigger_type == "timerTrigger":
                runner = TimerSchedule(function, config, stop).run
            else:
                continue
            thread = threading.Thread(target=runner, name=function.name, daemon=True)
            thread.start()
            threads.append(thread)
        log.info("Host started: %s", ", ".join(f"{f.name} ({f.trigger_type})" for f in config.functions))
        try:
            yield
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=15)

    return create_http_app(config, run_non_http, lifespan=lifespan)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Local Azure Functions host for function_app.py")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("FUNCTIONS_PORT", "7071")))
    parser.add_argument("--app-dir", type=Path, default=Path.cwd())
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("azure", "urllib3", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    uvicorn.run(
        build_app(args.app_dir.resolve()),
        host=args.host,
        port=args.port,
        log_level="warning",
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
