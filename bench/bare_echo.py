"""A bare ASGI echo under uvicorn, as the local host runs: the floor of any HTTP answer here.

python -m bench.bare_echo --port N
"""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import parse_qs


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    token = parse_qs(scope["query_string"].decode()).get("validationtoken", [""])[0].encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": token})


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    uvicorn.run(echo, host="127.0.0.1", port=parser.parse_args().port, log_level="warning")


if __name__ == "__main__":
    main()
