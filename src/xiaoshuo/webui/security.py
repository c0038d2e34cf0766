"""Login hardening on Gradio's FastAPI app: every route behind the login cookie, failed logins rate limited.

``app_kwargs(auth)`` is what ``launch`` passes to ``demo.launch(app_kwargs=...)``: FastAPI's own
``/openapi.json`` and ``/docs`` always off (the page never uses them; Gradio's ``/gradio_api/info`` and
``/gradio_api/openapi.json`` describe the API behind the login), and with ``--auth`` the ``AuthGuard``
middleware.  ``AuthGuard`` is deny-by-default: a request without a valid login cookie gets Gradio's own
401 answer unless it is for the login page or a file that page needs (``PUBLIC_PATHS``/``PUBLIC_PREFIXES``).
Gradio checks the cookie on most routes itself but answers ``/gradio_api/token``, ``/user``, ``/app_id``,
``/runs``, ``/heartbeat``, ``/cancel``, ``/reset`` and ``/stream`` to anyone, and its login page embeds the
API description (with the novel list as a parameter's choices): the guard strips that from the page.
``LoginLimiter`` counts failed logins per client address (an IPv6 /64 counts as one client): after
``LIMIT`` failures the client gets 429 for a lock that doubles with every further failure, up to ``MAX_LOCK``.

Not responsible for: the accounts (``launch.read_auth``), TLS, or who may reach the port
(``launch.check_exposure``).  What stays open and why is listed in the README (WebUI 安全).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

LIMIT = 5  # failed logins allowed before the first lock
BASE_LOCK = 30.0  # seconds; doubles with each failure after LIMIT
MAX_LOCK = 900.0
FORGET = 3600.0  # a client's failures are forgotten this long after its last attempt (once unlocked)
MAX_CLIENTS = 10_000  # clients remembered at most (the oldest unlocked ones are dropped first)

# The login page and what it loads before anyone has logged in.  ``/gradio_api/startup-events`` is called
# by ``Blocks.launch`` itself, without a cookie, to start the app (later calls do nothing).
PUBLIC_PATHS = frozenset(
    {
        "/",
        "/login",
        "/login/",
        "/logout",
        "/favicon.ico",
        "/theme.css",
        "/gradio_api/theme.css",
        "/robots.txt",
        "/manifest.json",
        "/pwa_icon",
        "/gradio_api/startup-events",
    }
)
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon/")
LOGIN_PATHS = ("/login", "/login/")
_API_INFO = re.compile(rb"(<script>window\.gradio_api_info = ).*?(;</script>)", re.S)
_NO_API = rb'{"named_endpoints":{},"unnamed_endpoints":{}}'  # what the page then shows: no endpoints


def app_kwargs(auth: bool) -> dict[str, Any]:
    """FastAPI arguments for ``demo.launch(app_kwargs=...)``."""
    from starlette.middleware import Middleware

    kwargs: dict[str, Any] = {"openapi_url": None, "docs_url": None, "redoc_url": None}
    if auth:
        kwargs["middleware"] = [Middleware(AuthGuard, limiter=LoginLimiter())]
    return kwargs


@dataclass
class _Client:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0


class LoginLimiter:
    """Failed logins per client key.  ``attempt`` counts an attempt as failed until ``succeeded`` says
    otherwise, so parallel guesses cannot slip past the limit before their answers arrive."""

    def __init__(
        self,
        limit: int = LIMIT,
        base: float = BASE_LOCK,
        cap: float = MAX_LOCK,
        forget: float = FORGET,
        max_clients: int = MAX_CLIENTS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit, self.base, self.cap, self.forget = limit, base, cap, forget
        self.max_clients = max_clients
        self.clock = clock
        self._clients: dict[str, _Client] = {}
        self._lock = threading.Lock()

    def attempt(self, key: str) -> float:
        """0 when ``key`` may try now (the try is counted), else the seconds it must wait."""
        with self._lock:
            now = self.clock()
            c = self._clients.get(key)
            if c is not None and now < c.until:
                return c.until - now
            if c is None or now - c.last > self.forget:
                c = self._clients[key] = _Client()
                self._prune(now)
            c.failures += 1
            c.last = now
            if c.failures >= self.limit:
                lock = min(self.cap, self.base * 2 ** min(c.failures - self.limit, 30))
                c.until = now + lock
                if c.failures > self.limit:  # the earlier ones all failed; this one may still succeed
                    log.warning("webui: %d failed logins from %s; locked %.0f s", c.failures - 1, key, lock)
            return 0.0

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._clients.pop(key, None)

    def _prune(self, now: float) -> None:
        if len(self._clients) <= self.max_clients:
            return
        stale = [k for k, c in self._clients.items() if now >= c.until and now - c.last > self.forget]
        for k in stale:
            del self._clients[k]
        if len(self._clients) > self.max_clients:
            unlocked = sorted((c.last, k) for k, c in self._clients.items() if now >= c.until)
            for _, k in unlocked[: len(self._clients) - self.max_clients]:
                del self._clients[k]


def client_key(scope: dict[str, Any]) -> str:
    """The rate-limit key of a request: its address, an IPv6 address by its /64 network."""
    host = (scope.get("client") or ("unknown", 0))[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return str(host)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def _public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


class AuthGuard:
    """ASGI middleware (innermost of Gradio's, so it sees plain bodies): see the module docstring."""

    def __init__(self, app: Any, limiter: LoginLimiter | None = None) -> None:
        self.app = app
        self.limiter = limiter or LoginLimiter()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        gradio_app = scope.get("app")
        if scope["type"] not in ("http", "websocket") or getattr(gradio_app, "auth", None) is None:
            await self.app(scope, receive, send)  # lifespan, or no --auth: nothing to guard
            return
        path = scope["path"]
        root = scope.get("root_path") or ""
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        if path in LOGIN_PATHS and scope.get("method") == "POST":
            await self._login(scope, receive, send)
        elif self._user(gradio_app, scope) is not None:
            await self.app(scope, receive, send)
        elif not _public(path):
            await self._refuse(gradio_app, scope, send)
        elif path == "/" and scope.get("method") == "GET":
            await self.app(scope, receive, _strip_api_info(send))
        else:
            await self.app(scope, receive, send)

    @staticmethod
    def _user(gradio_app: Any, scope: dict[str, Any]) -> str | None:
        from starlette.requests import HTTPConnection

        cookies = HTTPConnection(scope).cookies
        cookie_id = gradio_app.cookie_id
        token = cookies.get(f"access-token-{cookie_id}") or cookies.get(f"access-token-unsecure-{cookie_id}")
        return gradio_app.tokens.get(token) if token else None

    async def _refuse(self, gradio_app: Any, scope: dict[str, Any], send: Any) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        from starlette.responses import JSONResponse

        blocks = gradio_app.get_blocks()
        detail = {"error": "Not authenticated", "auth_message": getattr(blocks, "auth_message", None)}
        await JSONResponse({"detail": detail}, status_code=401)(scope, _no_receive, send)

    async def _login(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        from starlette.responses import JSONResponse

        key = client_key(scope)
        wait = self.limiter.attempt(key)
        if wait > 0:
            seconds = math.ceil(wait)
            detail = f"登录失败次数过多，请 {seconds} 秒后再试 (too many failed logins; retry in {seconds} s)"
            headers = {"Retry-After": str(seconds)}
            await JSONResponse({"detail": detail}, status_code=429, headers=headers)(scope, receive, send)
            return
        status: list[int] = []

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        if status and status[0] == 200:
            self.limiter.succeeded(key)


async def _no_receive() -> dict[str, Any]:
    return {"type": "http.disconnect"}


def _strip_api_info(send: Any) -> Any:
    """A ``send`` that buffers the login page and replaces its embedded API description by an empty one."""
    start: dict[str, Any] = {}
    chunks: list[bytes] = []

    async def wrapped(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            start.update(message)
            return
        if message["type"] != "http.response.body" or not start:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = _API_INFO.sub(rb"\1" + _NO_API + rb"\2", b"".join(chunks), count=1)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return wrapped
