"""Scan jobs: a scene under an imagery root, or an uploaded one, scanned in the background.

A job is a JSON record in the job folder (``<home>/jobs`` by default), rewritten atomically as it
goes: ``queued`` → ``running`` (with progress) → ``done`` (with the pass id) or ``failed`` (with
one line saying why). The pass is stored in ONE transaction at the end of the scan, so a job that
dies half-way stores nothing; a job found ``queued`` or ``running`` when the server starts was
interrupted by a restart and is marked ``failed`` (its upload removed).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from sitewatch.api.context import ServerContext
from sitewatch.api.errors import (
    BadParameterError,
    ForbiddenPathError,
    NotFoundError,
    UnsupportedMediaError,
    UploadTooLargeError,
)
from sitewatch.api.security import require_read, require_write
from sitewatch.errors import SceneError, SitewatchError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["scan jobs"])

JobState = Literal["queued", "running", "done", "failed"]
_ID = re.compile(r"^[0-9a-f]{32}$")
#: Seconds between progress rewrites of a running job's record.
PROGRESS_EVERY_S = 0.5


class Job(BaseModel):
    """A scan job as stored and returned."""

    id: str
    site: str
    scene: str
    source: Literal["path", "upload"]
    state: JobState = "queued"
    progress: float = Field(default=0.0, ge=0.0, le=1.0, description="fraction of detector tiles done")
    tiles_done: int = 0
    tiles_total: int | None = None
    pass_id: int | None = None
    error: str | None = None
    acquired: str | None = None
    gsd_m: float | None = None
    created: datetime
    updated: datetime


class ScanRequest(BaseModel):
    """Scan a scene file that lies under one of the server's imagery roots."""

    scene: str = Field(
        description="path of the scene: absolute, or relative to an imagery root",
        examples=["pleiades/2024-03-01.tif"],
    )
    acquired: str | None = Field(
        default=None, description="acquisition time (ISO 8601), overriding the file's"
    )
    gsd_m: float | None = Field(
        default=None, gt=0, description="metres per pixel, for scenes without a georeference"
    )


def resolve_under_roots(text: str, roots: list[Path]) -> Path:
    """The real path of ``text`` if it is a file under one of ``roots`` (symlinks and ``..`` resolved).

    Raises:
        ForbiddenPathError: no roots configured, or the path leads outside every root.
        NotFoundError: the path is under a root but no file is there.
    """
    if not roots:
        raise ForbiddenPathError(
            "scanning by path is disabled: no imagery roots configured (SITEWATCH_API_IMAGERY_ROOTS)"
        )
    if "\x00" in text:
        raise BadParameterError("scene", "path holds a NUL character")
    real_roots = [r.expanduser().resolve() for r in roots]
    given = Path(text).expanduser()
    candidates = [given] if given.is_absolute() else [r / given for r in real_roots]
    for c in candidates:
        real = c.resolve()
        if not any(real.is_relative_to(r) for r in real_roots):
            continue
        if not real.is_file():
            raise NotFoundError(f"scene {text!r}: no such file under the imagery roots")
        return real
    raise ForbiddenPathError(f"scene {text!r} is outside the imagery roots")


class JobManager:
    """Runs scan jobs one at a time on a worker thread and keeps their records in the job folder."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.folder = ctx.settings.resolved_jobs_dir()
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    # -- records ----------------------------------------------------------------------------------

    def _path(self, job_id: str) -> Path:
        return self.folder / f"{job_id}.json"

    def _write(self, job: Job) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        job.updated = datetime.now(UTC)
        tmp = self.folder / f".{job.id}.json.tmp"
        tmp.write_text(job.model_dump_json(indent=1), encoding="utf-8")
        os.replace(tmp, self._path(job.id))

    def get(self, job_id: str) -> Job:
        """A job by id.

        Raises:
            NotFoundError: no such job.
        """
        if not _ID.match(job_id) or not self._path(job_id).is_file():
            raise NotFoundError(f"no scan job {job_id!r}")
        return Job.model_validate_json(self._path(job_id).read_text(encoding="utf-8"))

    def list(self) -> list[Job]:
        """All jobs, newest first."""
        if not self.folder.is_dir():
            return []
        jobs = [Job.model_validate_json(p.read_text(encoding="utf-8")) for p in self.folder.glob("*.json")]
        return sorted(jobs, key=lambda j: j.created, reverse=True)

    def upload_dir(self, job_id: str) -> Path:
        return self.folder / "uploads" / job_id

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """Mark jobs a previous server left queued or running as failed; start the worker."""
        for job in self.list():
            if job.state in ("queued", "running"):
                job.state, job.error = "failed", "interrupted by a server restart; nothing was stored"
                if job.source == "upload":
                    shutil.rmtree(self.upload_dir(job.id), ignore_errors=True)
                self._write(job)
                log.warning(
                    "scan job %s of %s was interrupted by a restart: marked failed", job.id, job.scene
                )
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sitewatch-scan")

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    # -- submitting -------------------------------------------------------------------------------

    def new_job(self, site: Any, scene: Path, source: Literal["path", "upload"], acquired: str | None,
                gsd_m: float | None, job_id: str | None = None) -> Job:  # fmt: skip
        """Check the scene opens, record the job as queued and hand it to the worker.

        Raises:
            SceneError, GeoreferenceError: the scene cannot be opened as given.
        """
        from sitewatch.imagery import open_scene

        with open_scene(scene, gsd_m=gsd_m, acquired=acquired):
            pass
        now = datetime.now(UTC)
        job = Job(id=job_id or uuid.uuid4().hex, site=site.name, scene=str(scene), source=source,
                  acquired=acquired, gsd_m=gsd_m, created=now, updated=now)  # fmt: skip
        self._write(job)
        if self._pool is None:
            raise SitewatchError("the scan worker is not running")
        self._pool.submit(self._run, job, site)
        return job

    def _run(self, job: Job, site: Any) -> None:
        from sitewatch.imagery import open_scene
        from sitewatch.pipeline import scan

        job.state = "running"
        self._write(job)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            job.tiles_done, job.tiles_total = int(done), int(total)
            job.progress = min(1.0, done / total) if total else 0.0
            if time.monotonic() - last[0] >= PROGRESS_EVERY_S:
                last[0] = time.monotonic()
                self._write(job)

        try:
            with open_scene(job.scene, gsd_m=job.gsd_m, acquired=job.acquired) as scene:
                p = scan(scene, site, self.ctx.detector(), self.ctx.store, gsd_m=job.gsd_m, progress=progress)
            job.state, job.pass_id, job.progress = "done", p.id, 1.0
            log.info("scan job %s stored pass %s of %s", job.id, p.id, site.name)
        except SitewatchError as e:
            job.state, job.error = "failed", " ".join(str(e).split())
        except Exception as e:  # noqa: BLE001 - a job must end in a record, whatever happened
            log.exception("scan job %s failed", job.id)
            job.state, job.error = "failed", f"internal error: {type(e).__name__}"
        if job.state == "failed" and job.source == "upload":
            shutil.rmtree(self.upload_dir(job.id), ignore_errors=True)
        self._write(job)


def jobs_of(request: Request) -> JobManager:
    return request.app.state.jobs


@router.post("/sites/{name}/scans", status_code=202, dependencies=[Depends(require_write)])
def scan_path(request: Request, name: str, body: ScanRequest) -> Job:
    """Queue a scan of a scene under the imagery roots; poll ``/api/jobs/{id}``."""
    jobs = jobs_of(request)
    site = jobs.ctx.site(name)
    scene = resolve_under_roots(body.scene, jobs.ctx.settings.imagery_roots)
    return jobs.new_job(site, scene, "path", body.acquired, body.gsd_m)


_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_IMAGE_TYPES = ("image/", "application/octet-stream")


@router.post("/sites/{name}/scans/upload", status_code=202, dependencies=[Depends(require_write)],
             openapi_extra={"requestBody": {"required": True, "content": {
                 "image/tiff": {"schema": {"type": "string", "format": "binary"}},
                 "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
                 "image/png": {"schema": {"type": "string", "format": "binary"}}}}})  # fmt: skip
async def scan_upload(
    request: Request,
    name: str,
    filename: Annotated[
        str, Query(max_length=200, description="name of the uploaded file, e.g. scene.tif")
    ] = "upload.tif",
    acquired: Annotated[str | None, Query(description="acquisition time (ISO 8601)")] = None,
    gsd_m: Annotated[float | None, Query(gt=0, description="metres per pixel")] = None,
) -> Job:
    """Upload a scene (the request body: GeoTIFF, JPEG or PNG bytes) and queue its scan.

    Bodies over the size limit are refused with 413, non-images with 415; neither leaves a file
    or a record behind.
    """
    from starlette.concurrency import run_in_threadpool

    jobs = jobs_of(request)
    limit = jobs.ctx.settings.max_upload_bytes
    site = await run_in_threadpool(jobs.ctx.site, name)
    ctype = request.headers.get("content-type", "application/octet-stream").split(";")[0].strip().lower()
    if not ctype.startswith(_IMAGE_TYPES):
        raise UnsupportedMediaError(
            f"upload of type {ctype!r}: expected an image (image/tiff, image/jpeg, image/png)"
        )
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise UploadTooLargeError(f"upload of {int(declared)} bytes exceeds the limit of {limit} bytes")
    job_id = uuid.uuid4().hex
    folder = jobs.upload_dir(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (_SAFE_NAME.sub("_", Path(filename).name).lstrip(".") or "upload.tif")
    try:
        size = 0
        with target.open("wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise UploadTooLargeError(f"upload exceeds the limit of {limit} bytes")
                f.write(chunk)
        if size == 0:
            raise UnsupportedMediaError("empty upload: send the image bytes as the request body")
        try:
            return await run_in_threadpool(jobs.new_job, site, target, "upload", acquired, gsd_m, job_id)
        except SceneError as e:
            raise UnsupportedMediaError(f"{filename}: not an image sitewatch can read ({e})") from None
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


@router.get("/jobs", dependencies=[Depends(require_read)])
def list_jobs(request: Request) -> list[Job]:
    """All scan jobs, newest first."""
    return jobs_of(request).list()


@router.get("/jobs/{job_id}", dependencies=[Depends(require_read)])
def show_job(request: Request, job_id: str) -> Job:
    """One scan job: state, progress, the stored pass id or the error."""
    return jobs_of(request).get(job_id)
