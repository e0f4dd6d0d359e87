"""The studio's FastAPI app: the JSON API under ``/api`` and the page (``static/``) at ``/``.

Routes are thin: each checks its body with pydantic and calls :class:`~.service.Studio`. Every
error is JSON ``{"error": "<one line>"}`` with a 4xx status: 400 bad input (including a path
that would leave the song's folder), 404 not found, 409 not now, 422 a malformed body.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException

from arranger.errors import InputError
from arranger.manifest import MAX_SEED
from arranger.studio.jobs import Worker
from arranger.studio.library import STUDIO_DIR, Library, Missing
from arranger.studio.service import Conflict, Studio

STATIC = Path(__file__).resolve().parent / "static"


class NewSong(BaseModel):
    """``POST /api/songs``: a preset by name, a seed, and optional song overrides."""

    model_config = ConfigDict(extra="forbid")
    preset: str
    seed: int = Field(0, ge=0, le=MAX_SEED)
    bars: int | None = None  # range checked by the preset's own validation
    key: str | None = None
    tempo: float | None = None


class Regenerate(BaseModel):
    """``POST /api/songs/{id}/regenerate``: a layer, optional bars ``"A-B"`` and seed."""

    model_config = ConfigDict(extra="forbid")
    layer: str
    bars: str | None = None
    seed: int | None = Field(None, ge=0, le=MAX_SEED)


def create_app(library: Path, *, weights: Path | None = None, output=None,
               processes: int = 1, warm_up: bool = True) -> FastAPI:
    """The app over the song folders in ``library``.

    Parameters
    ----------
    library : folder of song folders (created if missing).
    weights : weights folder for new songs (None: the shipped weights).
    output : ``arranger.compose.song_folder.Output`` for every job (None: WAV + MP3, pictures).
    processes : worker processes; one song's jobs run in order whatever the number.
    warm_up : import the engine in the worker at start, so the first job starts at once.
    """
    root = Path(library).expanduser().resolve()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        (root / STUDIO_DIR).mkdir(parents=True, exist_ok=True)
        from arranger.studio.tasks import warm_up as warm

        worker = Worker(processes, warm_up=warm if warm_up else None)
        app.state.studio = Studio(Library(root), worker, weights, output)
        try:
            yield
        finally:
            worker.close()

    app = FastAPI(title="lofi studio", lifespan=lifespan, docs_url=None, redoc_url=None)
    _errors(app)
    _page_routes(app)
    _song_routes(app)
    _file_routes(app)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app


def _studio(request: Request) -> Studio:
    return request.app.state.studio


def _page_routes(app: FastAPI) -> None:
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/api/presets")
    def presets(request: Request) -> list[dict]:
        return _studio(request).presets()

    @app.post("/api/songs", status_code=202)
    def new_song(body: NewSong, request: Request) -> dict:
        song_id = _studio(request).create(body.preset, body.seed, body.bars, body.key,
                                          body.tempo)
        return {"id": song_id}

    @app.get("/api/songs")
    def songs(request: Request) -> list[dict]:
        return _studio(request).songs()


def _song_routes(app: FastAPI) -> None:
    @app.get("/api/songs/{song_id}")
    def song(song_id: str, request: Request) -> dict:
        return _studio(request).detail(song_id)

    @app.post("/api/songs/{song_id}/regenerate", status_code=202)
    def regenerate(song_id: str, body: Regenerate, request: Request) -> dict:
        job = _studio(request).regenerate(song_id, body.layer, body.bars, body.seed)
        return {"id": song_id, "job": job.to_dict()}

    @app.post("/api/songs/{song_id}/undo", status_code=202)
    def undo(song_id: str, request: Request) -> dict:
        return {"id": song_id, "job": _studio(request).undo(song_id).to_dict()}

    @app.get("/api/songs/{song_id}/score")
    def score(song_id: str, request: Request) -> dict:
        from arranger.midi_io import read_midi
        from arranger.studio.score_view import score_view

        return score_view(read_midi(_studio(request).library.file(song_id, "score.mid")))


def _file_routes(app: FastAPI) -> None:
    @app.get("/api/songs/{song_id}/files/{path:path}")
    def song_file(song_id: str, path: str, request: Request, download: bool = False
                  ) -> FileResponse:
        file = _studio(request).library.file(song_id, path)
        name = f"{song_id}-{file.name}" if download else None
        return FileResponse(file, filename=name)

    @app.get("/api/songs/{song_id}/stems.zip")
    def stems_zip(song_id: str, request: Request) -> FileResponse:
        library = _studio(request).library
        library.song(song_id)  # a 404 before a temporary file is made
        fd, tmp = tempfile.mkstemp(prefix=".zip-", suffix=".zip", dir=library.root / STUDIO_DIR)
        os.close(fd)
        try:
            name = library.write_zip(song_id, Path(tmp))
        except BaseException:
            os.unlink(tmp)
            raise
        return FileResponse(tmp, filename=name, media_type="application/zip",
                            background=BackgroundTask(os.unlink, tmp))


def _errors(app: FastAPI) -> None:
    def one_line(status: int):
        def handler(request: Request, exc: Exception) -> JSONResponse:
            return JSONResponse({"error": str(exc).splitlines()[0]}, status_code=status)
        return handler

    app.add_exception_handler(Missing, one_line(404))
    app.add_exception_handler(Conflict, one_line(409))
    app.add_exception_handler(InputError, one_line(400))
    app.add_exception_handler(ValueError, one_line(400))  # the engine's own checks

    @app.exception_handler(RequestValidationError)
    def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0]
        if first.get("type") == "json_invalid":
            return JSONResponse({"error": "request body: not valid JSON"}, status_code=422)
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "body"
        value = f" = {repr(first['input'])[:60]}" if "input" in first and where != "body" else ""
        return JSONResponse({"error": f"{where}{value}: {first.get('msg', 'invalid')}"},
                            status_code=422)

    @app.exception_handler(HTTPException)
    def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
