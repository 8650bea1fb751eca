"""`unblur serve`: a local web page for people who do not use a terminal (optional extra ``unblur[web]``).

:mod:`.jobs` runs restorations one at a time in a worker thread (at most one unfinished job per client);
:mod:`.app` is the Starlette application (the page, its static files and a small JSON API). Nothing is fetched
from the internet: the page, its script and its style ship in ``static/``.
"""
from __future__ import annotations

__all__ = ["create_app", "JobQueue", "Limits"]


def __getattr__(name):  # starlette is optional: import it only when the web page is used
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("JobQueue", "Limits"):
        from . import jobs

        return getattr(jobs, name)
    raise AttributeError(name)
