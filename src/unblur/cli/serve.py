"""`unblur serve`: a local web page (drop a photo, pick a method, compare before/after, download the result).

Needs the optional extra: ``pip install "unblur[web]"`` (Starlette and Uvicorn). Bound to 127.0.0.1 by default:
only this computer can open the page.
"""
from __future__ import annotations

from .arguments import number_in


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="a local web page: drop a photo, compare before/after, download the result",
        description="Serve a web page on this computer: drop a photo, pick a method or network (the default "
        "preselected), watch its progress, compare before and after with a slider, see the estimated kernel or "
        "defocus map, and download the result at full size and bit depth. One photo is computed at a time; each "
        "browser may have one photo waiting or running. Needs `pip install \"unblur[web]\"`.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only; 0.0.0.0 opens it to the "
                        "network, without any login)")
    p.add_argument("--port", type=number_in(int, 0, 65535, "a port (0: any free port)"), default=8765,
                   help="port (default 8765; 0: any free port)")
    p.add_argument("--max-mb", type=number_in(float, 0.001, what="a size in MB"), default=60.0,
                   help="largest upload in MB (default 60)")
    p.add_argument("--max-megapixels", type=number_in(float, 0.001, what="megapixels"), default=50.0,
                   help="largest photo in megapixels (default 50)")
    p.add_argument("--workdir", metavar="DIR",
                   help="where uploads and results are kept while the server runs (default: a new temporary "
                        "folder, deleted at exit)")
    p.add_argument("--keep", type=number_in(int, 1, what="a count"), default=20,
                   help="finished photos kept on disk (default 20)")
    p.add_argument("--device", default="auto", help="where networks run: auto (CUDA when available), cpu, cuda")
    p.set_defaults(func=run)


def run(args) -> int:
    import shutil
    import sys
    import tempfile
    from pathlib import Path

    from ..errors import InputError

    try:
        import uvicorn

        from ..web import Limits, create_app
        from ..web.server import bind, url_of
    except ImportError as err:
        raise InputError(f"unblur serve needs the web extra ({err.name} is missing): "
                         "pip install \"unblur[web]\"") from None
    from ..inference.restore import resolve_device

    if resolve_device(args.device).type == "cpu":  # (a bad --device is an error now, not at the first photo)
        from ..inference.cpu import reuse_freed_memory

        reuse_freed_memory()  # freed feature maps are reused instead of mapped afresh (inference/cpu.py)
    if args.workdir is not None and Path(args.workdir).exists() and not Path(args.workdir).is_dir():
        raise InputError(f"--workdir {args.workdir} exists and is not a folder")
    sock = bind(args.host, args.port)
    temporary = args.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="unblur-serve-")) if temporary else Path(args.workdir)
    app = create_app(workdir=workdir, limits=Limits(int(args.max_mb * 2**20), int(args.max_megapixels * 1e6)),
                     device=args.device, keep=args.keep)
    print(f"unblur: open {url_of(sock)} in a browser (Ctrl+C to stop)", file=sys.stderr, flush=True)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    finally:
        sock.close()
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0
