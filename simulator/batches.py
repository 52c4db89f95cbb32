"""OpenAI's Files and Batch APIs, simulated: upload a JSONL of chat requests, run it as a job, download the answers.

Endpoints (shapes as in OpenAI's API reference and the openai SDK's ``FileObject`` and ``Batch`` types):

- ``POST /v1/files`` (multipart form: ``purpose``, ``file``) → a file object; ``GET /v1/files/{id}``;
  ``GET /v1/files/{id}/content`` → the raw bytes;
- ``POST /v1/batches`` (``input_file_id``, ``endpoint`` = ``/v1/chat/completions``, ``completion_window`` =
  ``24h``, optional ``metadata``) → a batch object, status ``validating``; ``GET /v1/batches/{id}``;
  ``GET /v1/batches``; ``POST /v1/batches/{id}/cancel``.

A job moves on when it is looked at (each ``GET``), from the time it was created: ``validating`` →
``failed`` (the input file is checked as OpenAI checks it: every line a JSON object, ``custom_id`` present
and unique, method ``POST``, ``url`` the batch's endpoint, ``body`` an object, one model; the problems are
listed in ``errors.data`` with their line numbers) or ``in_progress``, during which lines are answered
in proportion to the time elapsed (``request_counts`` grows), then ``completed`` once ``batch_delay_s``
have passed since creation. Each line's body is answered exactly as ``/v1/chat/completions`` answers it
(conformance profile, brief, action, usage), minus latency and transport faults; with probability
``batch_failure_rate`` a line fails with a 500 instead. Answered lines go to the output file, failed
ones (any non-200) to the error file, in OpenAI's per-line shape::

    {"id": "batch_req_…", "custom_id": …, "response": {"status_code": 200, "request_id": "req_…", "body": {…}},
     "error": null}

A cancelled job (``cancelling``, then ``cancelled`` at the next look) keeps the lines answered so far.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from simulator.config import SimulatorConfig

BATCH_ENDPOINT = "/v1/chat/completions"  # the only endpoint the simulator serves, so the only one a batch can use
COMPLETION_WINDOW = "24h"
MAX_LINES = 50_000  # OpenAI: a batch holds at most 50,000 requests
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_FINAL = frozenset({"failed", "completed", "expired", "cancelled"})

# One chat-completions body in, (status, JSON body) out: the simulator's chat logic without HTTP.
Answer = Callable[[dict[str, Any]], tuple[int, dict[str, Any]]]
# An HTTP request's authorisation: None when allowed, else the response to send.
Guard = Callable[[Request], Response | None]


class BatchAPIError(Exception):
    """A files or batches request the API refuses: its status and OpenAI's error fields."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        body = {
            "error": {"message": self.message, "type": "invalid_request_error", "param": self.param, "code": self.code}
        }
        return JSONResponse(body, status_code=self.status)


def _id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:24]}"


@dataclass
class StoredFile:
    id: str
    filename: str
    purpose: str
    content: bytes
    created_at: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.content),
            "created_at": self.created_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "expires_at": None,
            "status_details": None,
        }


@dataclass
class BatchJob:
    id: str
    input_file_id: str
    endpoint: str
    completion_window: str
    metadata: dict[str, str] | None
    created_at: int
    started: float  # time.monotonic() at creation: the delay counts from here
    status: str = "validating"
    requests: list[dict[str, Any]] = field(default_factory=list)  # the input lines, once validated
    answered: list[dict[str, Any]] = field(default_factory=list)  # output lines, in input order
    errors: list[dict[str, Any]] | None = None  # validation errors (status failed)
    model: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    times: dict[str, int] = field(default_factory=dict)  # in_progress_at, finalizing_at, completed_at, ...

    def counts(self) -> dict[str, int]:
        failed = sum(1 for line in self.answered if line["response"]["status_code"] != 200)
        return {"total": len(self.requests), "completed": len(self.answered) - failed, "failed": failed}

    def usage(self) -> dict[str, Any]:
        tokens_in = tokens_out = 0
        for line in self.answered:
            usage = line["response"]["body"].get("usage") or {}
            tokens_in += int(usage.get("prompt_tokens", 0))
            tokens_out += int(usage.get("completion_tokens", 0))
        return {
            "input_tokens": tokens_in,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": tokens_out,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": tokens_in + tokens_out,
        }

    def to_dict(self) -> dict[str, Any]:
        errors = None if self.errors is None else {"object": "list", "data": self.errors}
        stamps = (
            "in_progress_at",
            "finalizing_at",
            "completed_at",
            "failed_at",
            "expired_at",
            "cancelling_at",
            "cancelled_at",
        )
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "model": self.model,
            "errors": errors,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "expires_at": self.created_at + 24 * 3600,
            **{name: self.times.get(name) for name in stamps},
            "request_counts": self.counts(),
            "usage": self.usage() if self.status in _FINAL else None,
            "metadata": self.metadata,
        }


def _line_error(line: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    return {"code": code, "line": line, "message": message, "param": param}


def validate_input(content: bytes, endpoint: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(requests, errors) of a batch input file, checked line by line as OpenAI checks it."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return [], [_line_error(0, "invalid_file", "The input file is not valid UTF-8 text.")]
    lines = [(number, raw) for number, raw in enumerate(text.splitlines(), 1) if raw.strip()]
    if not lines:
        return [], [
            _line_error(
                0, "empty_file", "The batch input file is empty. Please provide a file with at least one request."
            )
        ]
    if len(lines) > MAX_LINES:
        return [], [
            _line_error(
                0,
                "too_many_tasks",
                f"The batch input file has {len(lines)} requests; a batch can hold at most {MAX_LINES}.",
            )
        ]
    requests, errors, seen, model = [], [], set(), None
    for number, raw in lines:
        try:
            item = json.loads(raw)
        except json.JSONDecodeError:
            item = None
        if not isinstance(item, dict):
            errors.append(_line_error(number, "invalid_json_line", "This line is not parseable as valid JSON."))
            continue
        custom_id, body = item.get("custom_id"), item.get("body")
        if not isinstance(custom_id, str) or not custom_id:
            errors.append(
                _line_error(
                    number, "missing_required_parameter", "Each request must have a 'custom_id' string.", "custom_id"
                )
            )
        elif custom_id in seen:
            errors.append(
                _line_error(
                    number,
                    "duplicate_custom_id",
                    "The custom_id for this request is a duplicate "
                    "of another request. The custom_id parameter must be unique for each "
                    "individual request in a batch.",
                    "custom_id",
                )
            )
        if isinstance(custom_id, str):
            seen.add(custom_id)
        if item.get("method") != "POST":
            errors.append(
                _line_error(number, "invalid_method", "The method for this request must be 'POST'.", "method")
            )
        if item.get("url") != endpoint:
            errors.append(
                _line_error(
                    number,
                    "url_mismatch",
                    f"The URL provided for this request does not match the batch endpoint '{endpoint}'.",
                    "url",
                )
            )
        if not isinstance(body, dict):
            errors.append(
                _line_error(number, "invalid_body", "The body of this request must be a JSON object.", "body")
            )
            continue
        line_model = body.get("model")
        if model is None:
            model = line_model
        elif line_model != model:
            errors.append(
                _line_error(
                    number,
                    "model_mismatch",
                    "The provided model for this request does not match the model of the other requests in the batch.",
                    "body.model",
                )
            )
        requests.append(item)
    return ([], errors) if errors else (requests, [])


class BatchStore:
    """The uploaded files and batch jobs of one simulator, and their counters (touched only on its event loop)."""

    def __init__(self, config: SimulatorConfig) -> None:
        self.config = config
        self.files: dict[str, StoredFile] = {}
        self.jobs: dict[str, BatchJob] = {}
        # A stream of its own, so batch line failures do not shift the per-request fault draws.
        self._rng = random.Random(f"batch-{config.seed}")
        self.files_uploaded = self.batches_created = self.batch_lines = 0

    def counters(self) -> dict[str, int]:
        """For /_sim/stats: files uploaded, batch jobs created, batch lines answered."""
        return {
            "files_uploaded": self.files_uploaded,
            "batches_created": self.batches_created,
            "batch_lines": self.batch_lines,
        }

    def reset_counters(self) -> None:
        self.files_uploaded = self.batches_created = self.batch_lines = 0

    def _store(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        stored = StoredFile(_id("file-"), filename, purpose, content, int(time.time()))
        self.files[stored.id] = stored
        return stored

    def upload(self, filename: str, purpose: str, content: bytes) -> StoredFile:
        if purpose not in FILE_PURPOSES:
            raise BatchAPIError(
                400, f"'{purpose}' is not one of {list(FILE_PURPOSES)} - 'purpose'", "purpose", "invalid_value"
            )
        self.files_uploaded += 1
        return self._store(filename, purpose, content)

    def file(self, file_id: str) -> StoredFile:
        stored = self.files.get(file_id)
        if stored is None:
            raise BatchAPIError(404, f"No such File object: {file_id}", "id")
        return stored

    def job(self, batch_id: str) -> BatchJob:
        job = self.jobs.get(batch_id)
        if job is None:
            raise BatchAPIError(404, f"No batch found with id '{batch_id}'.", "batch_id")
        return job

    def create(self, body: dict[str, Any]) -> BatchJob:
        file_id, endpoint, window = body.get("input_file_id"), body.get("endpoint"), body.get("completion_window")
        for name, value in (("input_file_id", file_id), ("endpoint", endpoint), ("completion_window", window)):
            if not isinstance(value, str) or not value:
                raise BatchAPIError(400, f"Missing required parameter: '{name}'.", name, "missing_required_parameter")
        if endpoint != BATCH_ENDPOINT:
            raise BatchAPIError(
                400,
                f"Invalid endpoint '{endpoint}': the simulator serves only {BATCH_ENDPOINT}.",
                "endpoint",
                "invalid_value",
            )
        if window != COMPLETION_WINDOW:
            raise BatchAPIError(
                400,
                f"Invalid completion_window '{window}': only '{COMPLETION_WINDOW}' is supported.",
                "completion_window",
                "invalid_value",
            )
        metadata = body.get("metadata")
        if metadata is not None and not (
            isinstance(metadata, dict) and len(metadata) <= 16 and all(isinstance(v, str) for v in metadata.values())
        ):
            raise BatchAPIError(
                400, "metadata must be an object of at most 16 string values.", "metadata", "invalid_value"
            )
        stored = self.file(str(file_id))
        if stored.purpose != "batch":
            raise BatchAPIError(
                400,
                f"The input file {file_id} was uploaded with purpose '{stored.purpose}'; a batch "
                "needs a file uploaded with purpose 'batch'.",
                "input_file_id",
                "invalid_value",
            )
        job = BatchJob(
            _id("batch_"), stored.id, str(endpoint), str(window), metadata, int(time.time()), time.monotonic()
        )
        self.jobs[job.id] = job
        self.batches_created += 1
        return job

    def cancel(self, job: BatchJob) -> None:
        if job.status in ("validating", "in_progress"):
            job.status = "cancelling"
            job.times["cancelling_at"] = int(time.time())
        elif job.status != "cancelling":
            raise BatchAPIError(
                409, f"Cannot cancel a batch with status '{job.status}'.", None, "batch_not_cancellable"
            )

    def advance(self, job: BatchJob, answer: Answer) -> None:
        """Bring ``job`` up to now: validate it, answer the lines due by now, finish it when its time has come."""
        if job.status == "validating":
            self._validate(job)
        if job.status == "in_progress":
            delay = self.config.batch_delay_s
            elapsed = time.monotonic() - job.started
            due = len(job.requests) if elapsed >= delay else int(len(job.requests) * elapsed / delay)
            while len(job.answered) < due:
                job.answered.append(self._answer_line(job.requests[len(job.answered)], answer))
            if elapsed >= delay:
                self._finish(job, "completed")
        elif job.status == "cancelling":
            self._finish(job, "cancelled")

    def _validate(self, job: BatchJob) -> None:
        now = int(time.time())
        requests, errors = validate_input(self.file(job.input_file_id).content, job.endpoint)
        if errors:
            job.status, job.errors = "failed", errors
            job.times["failed_at"] = now
            return
        job.requests, job.status = requests, "in_progress"
        job.model = requests[0]["body"].get("model") if isinstance(requests[0]["body"].get("model"), str) else None
        job.times["in_progress_at"] = now

    def _answer_line(self, item: dict[str, Any], answer: Answer) -> dict[str, Any]:
        self.batch_lines += 1
        if self._rng.random() < self.config.batch_failure_rate:
            status, body = (
                500,
                {
                    "error": {
                        "message": "The server had an error while processing your request "
                        "(simulated batch line failure).",
                        "type": "server_error",
                        "param": None,
                        "code": "internal_error",
                    }
                },
            )
        else:
            status, body = answer(item["body"])
        return {
            "id": _id("batch_req_"),
            "custom_id": item["custom_id"],
            "response": {"status_code": status, "request_id": _id("req_"), "body": body},
            "error": None,
        }

    def _finish(self, job: BatchJob, status: str) -> None:
        now = int(time.time())
        ok = [line for line in job.answered if line["response"]["status_code"] == 200]
        failed = [line for line in job.answered if line["response"]["status_code"] != 200]
        if ok:
            job.output_file_id = self._store(f"{job.id}_output.jsonl", "batch_output", _jsonl(ok)).id
        if failed:
            job.error_file_id = self._store(f"{job.id}_error.jsonl", "batch_output", _jsonl(failed)).id
        if status == "completed":
            job.times["finalizing_at"] = now
        job.status = status
        job.times[f"{status}_at"] = now


def _jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode("utf-8")


# ---------------------------------------------------------------------------------------------- multipart


_DISPOSITION_PARAM = re.compile(r'(?:^|;)\s*(name|filename)="((?:[^"\\]|\\.)*)"', re.IGNORECASE)


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """The fields of a multipart/form-data body: name → (filename or None, bytes). RFC 7578, as httpx sends it."""
    kind, _, params = content_type.partition(";")
    match = re.search(r'boundary="?([^";]+)"?', params)
    if kind.strip().lower() != "multipart/form-data" or match is None:
        raise BatchAPIError(400, "Expected a multipart/form-data body with 'purpose' and 'file' fields.")
    delimiter = b"--" + match.group(1).encode("latin-1")
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in (b"\r\n" + body).split(b"\r\n" + delimiter)[1:]:
        if part.startswith(b"--"):  # the closing delimiter
            break
        head, separator, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise BatchAPIError(400, "Malformed multipart body: a part has no header end.")
        names: dict[str, str] = {}
        for header in head.decode("latin-1").split("\r\n"):
            key, _, value = header.partition(":")
            if key.strip().lower() == "content-disposition":
                names = {m.group(1).lower(): m.group(2) for m in _DISPOSITION_PARAM.finditer(value)}
        if "name" in names:
            fields[names["name"]] = (names.get("filename"), data)
    return fields


# ---------------------------------------------------------------------------------------------- endpoints


class BatchEndpoints:
    """The files and batches routes over one ``BatchStore``; ``answer`` runs one chat body, ``guard`` checks auth."""

    def __init__(self, store: BatchStore, answer: Answer, guard: Guard) -> None:
        self.store, self.answer, self.guard = store, answer, guard

    def routes(self) -> list[Route]:
        return [
            Route("/v1/files", self.upload, methods=["POST"]),
            Route("/v1/files/{file_id}", self.get_file, methods=["GET"]),
            Route("/v1/files/{file_id}/content", self.file_content, methods=["GET"]),
            Route("/v1/batches", self.create, methods=["POST"]),
            Route("/v1/batches", self.list_batches, methods=["GET"]),
            Route("/v1/batches/{batch_id}", self.retrieve, methods=["GET"]),
            Route("/v1/batches/{batch_id}/cancel", self.cancel, methods=["POST"]),
        ]

    async def upload(self, request: Request) -> Response:
        if (refused := self.guard(request)) is not None:
            return refused
        try:
            fields = parse_multipart(request.headers.get("content-type", ""), await request.body())
            if "file" not in fields:
                raise BatchAPIError(400, "Missing required parameter: 'file'.", "file", "missing_required_parameter")
            if "purpose" not in fields:
                raise BatchAPIError(
                    400, "Missing required parameter: 'purpose'.", "purpose", "missing_required_parameter"
                )
            filename, content = fields["file"]
            purpose = fields["purpose"][1].decode("utf-8", "replace").strip()
            stored = self.store.upload(filename or "upload", purpose, content)
        except BatchAPIError as exc:
            return exc.response()
        return JSONResponse(stored.to_dict())

    async def get_file(self, request: Request) -> Response:
        if (refused := self.guard(request)) is not None:
            return refused
        try:
            return JSONResponse(self.store.file(request.path_params["file_id"]).to_dict())
        except BatchAPIError as exc:
            return exc.response()

    async def file_content(self, request: Request) -> Response:
        if (refused := self.guard(request)) is not None:
            return refused
        try:
            stored = self.store.file(request.path_params["file_id"])
        except BatchAPIError as exc:
            return exc.response()
        return Response(stored.content, media_type="application/octet-stream")

    async def create(self, request: Request) -> Response:
        if (refused := self.guard(request)) is not None:
            return refused
        try:
            try:
                body = await request.json()
            except (json.JSONDecodeError, UnicodeDecodeError):
                body = None
            if not isinstance(body, dict):
                raise BatchAPIError(400, "The request body must be a JSON object.")
            job = self.store.create(body)
        except BatchAPIError as exc:
            return exc.response()
        return JSONResponse(job.to_dict())

    async def list_batches(self, request: Request) -> Response:
        if (refused := self.guard(request)) is not None:
            return refused
        jobs = sorted(self.store.jobs.values(), key=lambda j: j.started, reverse=True)
        for job in jobs:
            self.store.advance(job, self.answer)
        data = [job.to_dict() for job in jobs]
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": False,
            }
        )

    async def retrieve(self, request: Request) -> Response:
        if (refused := self.guard(request)) is not None:
            return refused
        try:
            job = self.store.job(request.path_params["batch_id"])
        except BatchAPIError as exc:
            return exc.response()
        self.store.advance(job, self.answer)
        return JSONResponse(job.to_dict())

    async def cancel(self, request: Request) -> Response:
        if (refused := self.guard(request)) is not None:
            return refused
        try:
            job = self.store.job(request.path_params["batch_id"])
            self.store.advance(job, self.answer)  # lines due by now are answered before the cancel lands
            self.store.cancel(job)
        except BatchAPIError as exc:
            return exc.response()
        return JSONResponse(job.to_dict())
