"""Restoration jobs for the web page: one worker thread, so one photo is computed at a time whatever the number
of browsers, and at most one unfinished job per client, so nobody can queue many big photos ahead of others.

A job's files live in its own folder under the server's work folder: the upload (``input/<name>``), the results
that :func:`unblur.inference.restore.restore_file` writes (``output/``: the restored photo at the input's size
and bit depth, the kernel or defocus map) and 8-bit previews for the before/after slider (``preview/``). Old
finished jobs are deleted when more than ``keep`` exist.
"""
from __future__ import annotations

import dataclasses
import queue
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Callable

from ..errors import InputError

__all__ = ["Job", "JobQueue", "Limits", "Busy", "PREVIEW_SIDE"]

PREVIEW_SIDE = 2048  # longest side of the slider's previews (the download is always full size)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one upload may be: bytes on disk and decoded pixels."""

    max_bytes: int = 60 * 2**20
    max_pixels: int = 50_000_000


class Busy(Exception):
    """The client already has an unfinished job."""


@dataclasses.dataclass
class Job:
    id: str
    client: str
    name: str  # the upload's (sanitised) file name: results keep it
    choice: str  # "method:NAME" or "model:NAME[.TAG]" or "model:auto"
    folder: Path
    state: str = "queued"  # queued -> running -> done | failed
    stage: str = "waiting for the photos ahead"
    done: int = 0  # tiles done / in all, when the work is tiled (0 / 0: no count known)
    total: int = 0
    error: str | None = None
    note: str | None = None  # e.g. what --model auto chose and why
    outputs: dict = dataclasses.field(default_factory=dict)  # "result", "kernel", "defocus", "before", "after"
    created: float = dataclasses.field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None

    @property
    def input_path(self) -> Path:
        return self.folder / "input" / self.name

    def public(self) -> dict:
        """What the page polls: state, progress and the names of the files it may fetch."""
        now = self.finished or time.time()
        return {
            "id": self.id, "name": self.name, "choice": self.choice, "state": self.state, "stage": self.stage,
            "done": self.done, "total": self.total, "error": self.error, "note": self.note,
            "elapsed": round(now - (self.started or now), 1), "files": sorted(self.outputs),
        }


class JobQueue:
    """Jobs run in submission order by one daemon thread with ``run(job, progress)``.

    ``run`` fills ``job.outputs`` and may raise; the error becomes the job's one-line message (an unexpected
    exception is reported with its type, the server goes on). ``progress(stage, done=0, total=0)`` updates
    what the page shows.
    """

    def __init__(self, workdir: Path, run: Callable[[Job, Callable], None], keep: int = 20):
        self.workdir, self._run, self.keep = Path(workdir), run, keep
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="unblur-web-worker", daemon=True)
        self._thread.start()

    def new_folder(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        folder = self.workdir / job_id
        (folder / "input").mkdir(parents=True)
        return job_id, folder

    def submit(self, job: Job) -> Job:
        """Queue ``job`` (its upload already in ``job.input_path``); :class:`Busy` when its client has one."""
        with self._lock:
            if any(j.client == job.client and j.state in ("queued", "running") for j in self._jobs.values()):
                shutil.rmtree(job.folder, ignore_errors=True)
                raise Busy("one photo at a time: wait until the current one is finished")
            self._jobs[job.id] = job
            self._prune()
        self._queue.put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def close(self, timeout: float | None = None) -> None:
        """Stop the worker after the current job (queued jobs are dropped)."""
        self._closing.set()
        self._queue.put(None)  # wakes an idle worker
        self._thread.join(timeout)

    def _prune(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.state in ("done", "failed")), key=lambda j: j.created)
        for j in finished[:max(0, len(self._jobs) - self.keep)]:
            del self._jobs[j.id]
            shutil.rmtree(j.folder, ignore_errors=True)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None or self._closing.is_set():
                return
            job.state, job.started, job.stage = "running", time.time(), "starting"

            def progress(stage: str, done: int = 0, total: int = 0, job=job) -> None:
                job.stage, job.done, job.total = stage, done, total

            try:
                self._run(job, progress)
                job.state, job.stage = "done", "done"
            except InputError as err:  # a bad photo or choice: its own message, one line
                job.state, job.error = "failed", str(err).splitlines()[0] if str(err) else "cannot process this photo"
            except Exception as err:  # noqa: BLE001 - the server must outlive any one photo
                job.state, job.error = "failed", f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            finally:
                job.finished = time.time()
