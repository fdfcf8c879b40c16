"""``vaekit explore RUN``: a local web page with one slider per latent dimension whose decoded picture follows the
sliders as they move; start from a test example's or an uploaded image's posterior mean. FastAPI + uvicorn
(``pip install vaekit[explore]``); the model side is ``vaekit.views.explore.kinds``, the page
``vaekit.views.explore.page``.

    vaekit explore runs/vae_mnist                 # http://127.0.0.1:8765/
    vaekit explore runs/vae_mnist --port 0        # any free port (printed)

It listens on the loopback interface only, unless ``--allow-remote`` is given with another ``--host``: it has no
authentication, and anyone who reaches it can make it compute.

API (JSON in, JSON errors ``{"error": "..."}`` out, never a traceback):

    GET  /api/spec                 sliders, controls, the starting values
    POST /api/decode               {"z": [...], "controls": {...}} -> image/png, header X-Decode-Ms
    POST /api/audio                the same -> audio/wav (speech models)
    POST /api/encode/example       {"index": i, "controls": {...}} -> {"z": [...], "controls": {...}}
    POST /api/encode/upload        the file (multipart field "file", or the raw body) -> {"z", "controls", "message"}
    GET  /api/example/{i}.png      test example i
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations (Request), which are imported
# inside create_app so that the CLI loads without the web extra.
import argparse
import asyncio
import contextlib
import ipaddress
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from vaekit.core import options as opt
from vaekit.views.explore.kinds import ExploreError, Explorer, describe, explorer_for, image_png

MAX_UPLOAD = 5 * 2**20  # bytes; a larger request is refused with 413 before it is read
LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413 JSON error, whether its Content-Length says
    so up front or its chunks add up to it, without the rest being read into memory."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await self.refuse(send)
            return
        seen, started = 0, False

        async def limited_receive() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise BodyTooLarge
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self.refuse(send)

    async def refuse(self, send: Any) -> None:
        body = json.dumps({"error": f"the upload is larger than the limit of {self.limit / 2**20:.0f} MiB"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def create_app(explorer: Explorer, title: str = "vaekit explore", max_upload: int = MAX_UPLOAD,
               allowed_hosts: list[str] | None = None) -> Any:
    """The FastAPI app serving ``explorer``. Model calls run one at a time (a lock) under torch.no_grad, in
    FastAPI's thread pool so the event loop stays free."""
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.datastructures import UploadFile
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    from vaekit.views.explore.page import explorer_page

    app = FastAPI(title=title, docs_url=None, redoc_url=None, openapi_url=None)
    lock = threading.Lock()

    def run(fn: Any, *args: Any) -> Any:
        with lock, torch.no_grad():
            return fn(*args)

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(ExploreError)
    async def explore_error(request: Request, e: ExploreError) -> JSONResponse:
        return error(400, str(e))

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, e: RequestValidationError) -> JSONResponse:
        first = e.errors()[0] if e.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return error(400, f"bad request: {where + ': ' if where else ''}{first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception) -> JSONResponse:
        return error(500, f"the server could not do that ({type(e).__name__}: {str(e)[:300]})")

    async def body_json(request: Request) -> dict[str, Any]:
        try:
            data = await request.json()
        except ValueError:
            raise ExploreError("the request body must be a JSON object") from None
        if not isinstance(data, dict):
            raise ExploreError("the request body must be a JSON object")
        return data

    def state(data: dict[str, Any]) -> tuple[list[float], dict[str, Any]]:
        z, controls = data.get("z", []), data.get("controls") or {}
        if not isinstance(z, list) or not all(isinstance(v, int | float) for v in z):
            raise ExploreError("z must be a list of numbers")
        if not isinstance(controls, dict):
            raise ExploreError("controls must be an object")
        return [float(v) for v in z], controls

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return explorer_page(title)

    @app.get("/api/spec")
    def spec() -> dict[str, Any]:
        return run(explorer.spec)

    @app.post("/api/decode")
    async def decode(request: Request) -> Response:
        z, controls = state(await body_json(request))

        def work() -> tuple[bytes, float]:
            start = time.perf_counter()
            png = image_png(run(explorer.decode, z, controls))
            return png, (time.perf_counter() - start) * 1000

        png, ms = await asyncio.to_thread(work)
        return Response(png, media_type="image/png", headers={"X-Decode-Ms": f"{ms:.2f}", "Cache-Control": "no-store"})

    @app.post("/api/audio")
    async def audio(request: Request) -> Response:
        from vaekit.core.drawing import wav_bytes

        if not callable(getattr(explorer, "audio", None)):
            raise ExploreError(f"{type(explorer.model).__name__} makes no sound")
        z, controls = state(await body_json(request))
        samples, rate = await asyncio.to_thread(run, explorer.audio, z, controls)
        return Response(wav_bytes(samples, rate), media_type="audio/wav", headers={"Cache-Control": "no-store"})

    @app.post("/api/encode/example")
    async def encode_example(request: Request) -> dict[str, Any]:
        data = await body_json(request)
        _, controls = state({"controls": data.get("controls")})
        index = data.get("index", 0)
        if not isinstance(index, int) or isinstance(index, bool):
            raise ExploreError("index must be a whole number")
        explorer.example(index)  # range check
        update = {**explorer.example_controls(index), "example": index, "upload": ""}
        merged = {**controls, **update}
        z = await asyncio.to_thread(run, explorer.posterior_or_zero, index, merged)
        return {"z": z, "controls": update, "message": f"test example {index}: its posterior mean"
                if z else f"test example {index}"}

    @app.post("/api/encode/upload")
    async def encode_upload(request: Request) -> dict[str, Any]:
        controls: dict[str, Any] = {}
        if request.headers.get("content-type", "").startswith("multipart/form-data"):
            form = await request.form(max_files=1, max_fields=4)
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ExploreError("send the file as the form field 'file'")
            data = await upload.read()
            try:
                controls = json.loads(str(form.get("controls") or "{}"))
            except ValueError:
                raise ExploreError("controls must be a JSON object") from None
        else:
            data = await request.body()
        if not data:
            raise ExploreError("the upload is empty")
        if not isinstance(controls, dict):
            raise ExploreError("controls must be a JSON object")
        z, update, message = await asyncio.to_thread(run, explorer.encode_upload, data, controls)
        return {"z": z, "controls": update, "message": message}

    @app.get("/api/example/{index}.png")
    def example(index: int) -> Response:
        return Response(image_png(run(explorer.example_image, index)), media_type="image/png")

    hosts = allowed_hosts or ["127.0.0.1", "localhost", "::1", "[::1]"]
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=hosts)  # a DNS-rebinding page cannot reach it
    app.add_middleware(BodyLimit, limit=max_upload)
    return app


def load_explorer(run: str | Path, examples: int = 64, data_dir: str | None = None) -> tuple[Explorer, str]:
    """The run's model and test examples in an explorer, and a title for the page."""
    from vaekit.run.io import held_out_batch, load_run

    model, cfg, run_dir = load_run(run)
    sequence = callable(getattr(model, "rollout", None))
    batch = held_out_batch(cfg, min(examples, 16) if sequence else examples, 0, data_dir)
    with torch.no_grad():
        explorer = explorer_for(model, batch)
        explorer.all_sliders()  # the activity of each latent, once, before the first request
    return explorer, f"{cfg.name} ({cfg.model_name} on {cfg.data.name})"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: a free one, chosen by the OS), so the URL printed is the one served."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host.strip("[]"), port))
    sock.listen(64)
    return sock


@contextlib.contextmanager
def serving(explorer: Explorer, title: str, max_upload: int = MAX_UPLOAD, timeout: float = 30.0) -> Iterator[str]:
    """The explorer served by uvicorn in a background thread on a free loopback port, for as long as the block
    runs (tests, benchmarks, screenshots); yields its URL."""
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(create_app(explorer, title, max_upload), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.time() + timeout
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    if not server.started:
        raise RuntimeError("the explorer's server did not start")
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve(explorer: Explorer, title: str, host: str = "127.0.0.1", port: int = 8765,
          allow_remote: bool = False, max_upload: int = MAX_UPLOAD) -> None:
    try:
        import uvicorn
    except ImportError:
        raise RuntimeError("vaekit explore needs its web extra: pip install 'vaekit[explore]'") from None
    if not is_loopback(host) and not allow_remote:
        raise ValueError(f"--host {host} is not a loopback address; the explorer has no authentication, so it "
                         "serves 127.0.0.1 only unless --allow-remote is given")
    sock = bind(host, port)
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    # the default list names 127.0.0.1, localhost and ::1; another loopback name or address must be let in too
    hosts = ["127.0.0.1", "localhost", "::1", "[::1]", host.strip("[]"), shown] if is_loopback(host) else ["*"]
    app = create_app(explorer, title, max_upload, allowed_hosts=hosts)
    print(f"vaekit: exploring {title}: {describe(explorer)}")
    print(f"vaekit: open {url}  (Ctrl-C stops)", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])


def cmd_explore(args: argparse.Namespace) -> None:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise RuntimeError("vaekit explore needs its web extra: pip install 'vaekit[explore]'") from None
    if not is_loopback(args.host) and not args.allow_remote:  # refuse before the model is loaded
        raise ValueError(f"--host {args.host} is not a loopback address; the explorer has no authentication, so "
                         "it serves 127.0.0.1 only unless --allow-remote is given")
    torch.set_num_threads(args.threads)
    explorer, title = load_explorer(args.run, args.examples, args.data_dir)
    serve(explorer, title, args.host, args.port, args.allow_remote, int(args.max_upload_mib * 2**20))


def add_explore_parser(sub: Any) -> argparse.ArgumentParser:
    """``vaekit explore RUN``: add the subcommand to the CLI's subparsers (one line in vaekit/cli.py)."""
    e = sub.add_parser("explore", help="a local web page: a slider per latent, the decoded image follows them")
    e.add_argument("run", type=opt.existing_path, help="run directory, .safetensors or .ckpt")
    e.add_argument("--port", type=opt.port, default=8765, help="0: any free port (the URL is printed)")
    e.add_argument("--host", type=opt.host, default="127.0.0.1", help="loopback only, unless --allow-remote")
    e.add_argument("--allow-remote", action="store_true",
                   help="serve a non-loopback --host (no authentication: anyone who reaches it can use it)")
    e.add_argument("--examples", type=opt.count(10**4), default=64, help="test examples to pick from")
    e.add_argument("--threads", type=opt.count(256), default=1, help="torch threads (one decodes a latent fastest)")
    e.add_argument("--max-upload-mib", type=opt.number(0, 1024), default=MAX_UPLOAD / 2**20,
                   help="largest upload accepted")
    e.add_argument("--data-dir", type=opt.existing_path)
    e.set_defaults(func=cmd_explore)
    return e
