"""Raw JSON-WSP calls over HTTP, as any JSON client makes them: the result, or the
fault as :class:`WireFault` with its name, code and string."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from .servers import RunningServer


def post_json(url: str, payload: object, timeout: float = 30.0,
              headers: dict[str, str] | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, {"http_error": error.read().decode(errors="replace")}


class JsonWsp:
    """Raw JSON-WSP calls: returns the ``result``, or raises :class:`WireFault`."""

    def __init__(self, server: RunningServer, service: str) -> None:
        self.url = f"{server.url}/{service}/jsonwsp"

    def __call__(self, method: str, **args: object) -> object:
        return self.call(method, args)

    def call(self, method: str, args: dict, headers: dict[str, str] | None = None) -> object:
        """The call with HTTP headers too (``Idempotency-Key``)."""
        status, body = post_json(self.url, {"methodname": method, "args": args}, headers=headers)
        assert status == 200, body
        if body.get("type") == "jsonwsp/fault":
            raise WireFault(body["fault"])
        return body["result"]


class WireFault(Exception):
    def __init__(self, fault: dict) -> None:
        super().__init__(fault["string"])
        self.fault = fault
        self.string = fault["string"]
        self.code = fault["code"]
        self.name = self.string.split(":", 1)[0]
