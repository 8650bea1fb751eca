"""The web page's server: a Starlette application with a static page and a small JSON API.

::

    GET  /                         the page (static/index.html); sets the client cookie
    GET  /api/options              the methods and networks it offers (the default first), and the upload limits
    POST /api/jobs?name=F&choice=C the photo's bytes as the body -> 202 {"id": ...}, or a one-line error
    GET  /api/jobs/ID              state, stage, tiles done, elapsed seconds, error, files ready
    GET  /api/jobs/ID/files/KIND   result (full size, the photo's format and bit depth), kernel, defocus,
                                   before, after (8-bit previews for the slider)

Uploads are checked before they are queued: size in bytes while they arrive, the file format by its name, the
pixel count from the file's header. A client (a browser, by its cookie) sees only its own jobs.
"""
from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import tempfile
import warnings
from importlib import resources
from pathlib import Path

from ..errors import InputError
from .jobs import PREVIEW_SIDE, Busy, Job, JobQueue, Limits

__all__ = ["create_app", "choices", "run_job"]

COOKIE = "unblur_client"
FILE_KINDS = ("result", "kernel", "defocus", "before", "after")


def choices() -> list[dict]:
    """What the page's picker offers: the default first, then the other blind methods and shipped networks.
    The page takes no kernel, so only blind ones (they estimate the blur themselves)."""
    from ..classical import METHODS
    from ..inference.defaults import DEFAULT_METHOD
    from ..models import list_models, weight_spec

    items = [{"value": f"method:{name}", "label": f"{name} (classical, blind)"}
             for name, info in METHODS.items() if getattr(info, "blind", False)]
    for name in list_models(pretrained=True):
        spec = weight_spec(name)
        if spec.blind:
            items.append({"value": f"model:{name}", "label": f"{name} (network, {', '.join(spec.blur) or 'blur'})"})
    items.append({"value": "model:auto", "label": "auto (a network for motion or defocus, chosen per photo)"})
    default = f"{'model' if '.' in DEFAULT_METHOD else 'method'}:{DEFAULT_METHOD}"
    for item in items:
        item["default"] = item["value"] == default
        if item["default"]:
            item["label"] += ", default"
    return sorted(items, key=lambda item: not item["default"])


def _safe_name(name: str) -> str:
    """The upload's file name without folders or odd characters (results keep it)."""
    from ..io.images import FORMATS

    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(str(name).replace("\\", "/")).name).lstrip(".")
    suffix = Path(base).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(f"{name or 'the file'}: not a photo this page takes (accepted: "
                         f"{', '.join(sorted(FORMATS))})")
    return base[:100 - len(suffix)] + suffix if len(base) > 100 else base


def _pixel_count(path: Path) -> int:
    """Pixels of the image at ``path`` from its header when Pillow reads it (no decoding), else by reading it."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a decompression-bomb warning: the limit below decides
            with Image.open(path) as im:
                w, h = im.size
        return w * h
    except Exception:  # noqa: BLE001 - not for Pillow (e.g. some TIFFs): the full reader decides, one line
        from ..io import read_image

        data = read_image(path).data
        return data.shape[-1] * data.shape[-2]


def _preview(image, path: Path) -> None:
    """An 8-bit PNG at most :data:`PREVIEW_SIDE` pixels on its longest side (what the slider shows)."""
    import torch.nn.functional as F

    from ..io import write_image

    x = image[:3] if image.shape[0] >= 3 else image[:1]
    scale = PREVIEW_SIDE / max(x.shape[-2:])
    if scale < 1:
        size = (max(1, round(x.shape[-2] * scale)), max(1, round(x.shape[-1] * scale)))
        x = F.interpolate(x[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    write_image(path, x.clamp(0, 1), bit_depth=8, overwrite=True)


def run_job(job: Job, progress, device: str = "auto") -> None:
    """Restore ``job``'s photo into its ``output/`` folder and make the slider's previews (the worker's task)."""
    from ..inference.restore import AUTO, estimates_blur, load_model, resolve_device, restore_file
    from ..inference.tiling import tile_progress
    from ..io import read_image

    kind, _, name = job.choice.partition(":")
    method, model = (name, None) if kind == "method" else (None, name)
    progress("loading the network" if model not in (None, AUTO) else "reading the photo")
    net = load_model(model) if model not in (None, AUTO) else model
    out_dir = job.folder / "output"
    try:
        with tile_progress("web", enabled=False, callback=lambda done, total: progress("restoring", done, total)):
            progress("restoring")
            written = restore_file(job.input_path, out_dir, method=method, model=net, device=resolve_device(device),
                                   save_kernel=estimates_blur(method, net),
                                   report=lambda line: setattr(job, "note",
                                                               line.replace(str(job.input_path), job.name)))
    except InputError as err:  # messages name the server's copy: show the user's file name instead
        raise InputError(str(err).replace(str(job.input_path), job.name)) from None
    progress("making previews")
    for path in written:
        key = "result" if path.name == job.name else "defocus" if path.stem.endswith("_defocus") else "kernel"
        job.outputs[key] = path
    previews = job.folder / "preview"
    previews.mkdir(exist_ok=True)
    _preview(read_image(job.input_path).data, previews / "before.png")
    _preview(read_image(job.outputs["result"]).data, previews / "after.png")
    job.outputs["before"], job.outputs["after"] = previews / "before.png", previews / "after.png"


def create_app(*, workdir: str | Path | None = None, limits: Limits = Limits(), device: str = "auto",
               keep: int = 20, run=None):
    """The Starlette application. ``workdir``: where uploads and results live (default: a new temporary
    folder); ``limits``: upload limits; ``device``: where networks run; ``keep``: finished jobs kept on disk;
    ``run``: the job function (default :func:`run_job`; tests pass a fake)."""
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    workdir = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="unblur-serve-"))
    workdir.mkdir(parents=True, exist_ok=True)
    jobs = JobQueue(workdir, run or (lambda job, progress: run_job(job, progress, device)), keep=keep)
    offered = choices()
    static = Path(str(resources.files("unblur") / "web" / "static"))

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    def cookie_of(request) -> str | None:
        cookie = request.cookies.get(COOKIE, "")
        return cookie if re.fullmatch(r"[0-9a-f]{32}", cookie) else None

    def client_of(request) -> str:
        cookie = cookie_of(request)
        return f"cookie:{cookie}" if cookie else f"ip:{request.client.host if request.client else '-'}"

    async def page(request):
        response = FileResponse(static / "index.html", media_type="text/html")
        if cookie_of(request) is None:
            response.set_cookie(COOKIE, secrets.token_hex(16), httponly=True, samesite="strict")
        return response

    async def options(request):
        return JSONResponse({"choices": offered, "max_bytes": limits.max_bytes, "max_pixels": limits.max_pixels})

    async def submit(request):
        choice = request.query_params.get("choice", offered[0]["value"])
        if choice not in {c["value"] for c in offered}:
            return error(400, f"unknown method or network {choice!r}")
        try:
            name = _safe_name(request.query_params.get("name", ""))
        except InputError as err:
            return error(400, str(err))
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limits.max_bytes:
            return error(413, f"{name}: the file is larger than {limits.max_bytes / 2**20:.0f} MB")
        job_id, folder = jobs.new_folder()
        job = Job(job_id, client_of(request), name, choice, folder)
        size = 0
        with open(job.input_path, "wb") as f:  # streamed: a huge upload is cut off at the limit, not buffered
            async for chunk in request.stream():
                size += len(chunk)
                if size > limits.max_bytes:
                    break
                f.write(chunk)
        message, status = None, 400
        if size > limits.max_bytes:
            message, status = f"{name}: the file is larger than {limits.max_bytes / 2**20:.0f} MB", 413
        elif size == 0:
            message = f"{name}: the file is empty"
        else:
            try:
                pixels = _pixel_count(job.input_path)
                if pixels > limits.max_pixels:
                    message, status = (f"{name}: {pixels / 1e6:.1f} megapixels; this server takes at most "
                                       f"{limits.max_pixels / 1e6:.0f}"), 413
            except InputError as err:
                message = str(err).replace(str(job.input_path), name)
        if message is not None:
            shutil.rmtree(folder, ignore_errors=True)
            return error(status, message)
        try:
            jobs.submit(job)
        except Busy as err:
            return error(429, str(err))
        return JSONResponse({"id": job.id}, status_code=202)

    def own_job(request) -> Job | None:
        job = jobs.get(request.path_params["job_id"])
        return job if job is not None and job.client == client_of(request) else None

    async def status(request):
        job = own_job(request)
        return JSONResponse(job.public()) if job else error(404, "no such job")

    async def file(request):
        job, kind = own_job(request), request.path_params["kind"]
        if job is None or kind not in FILE_KINDS or kind not in job.outputs:
            return error(404, "no such file")
        path = job.outputs[kind]
        if kind == "result":  # the download: full size, the photo's own format and bit depth, its name
            return FileResponse(path, filename=path.name, content_disposition_type="attachment")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "no-store"})

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        jobs.close(timeout=1)

    app = Starlette(routes=[
        Route("/", page),
        Route("/api/options", options),
        Route("/api/jobs", submit, methods=["POST"]),
        Route("/api/jobs/{job_id:str}", status),
        Route("/api/jobs/{job_id:str}/files/{kind:str}", file),
        Mount("/static", StaticFiles(directory=static), name="static"),
    ], lifespan=lifespan)
    app.state.jobs, app.state.workdir = jobs, workdir
    return app
