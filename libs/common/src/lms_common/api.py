"""The HTTP side every service shares: the Flask app, flask-smorest, problem details, request
ids, request logs and metrics, health endpoints, units of work and cursor pagination."""

from __future__ import annotations

import base64
import functools
import json
import re
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
import structlog
from flask import Flask, Response, current_app, g, jsonify, request, send_from_directory
from flask.json.provider import DefaultJSONProvider
from flask.typing import ResponseReturnValue
from flask_smorest import Api, Blueprint
from marshmallow import RAISE, Schema, ValidationError, fields, missing, pre_load, validate
from marshmallow.decorators import POST_DUMP, PRE_DUMP
from marshmallow.utils import get_value
from sqlalchemy import Select, bindparam, tuple_
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.sansio.response import Response as SansioResponse
from werkzeug.sansio.utils import get_current_url

from lms_common import metrics
from lms_common.context import begin_correlation, end_correlation
from lms_common.db import AnySelect, make_read_session_factory, new_id, session_scope
from lms_common.errors import Problem, from_problem, problem_response

if TYPE_CHECKING:
    from lms_common.service import Runtime

log = structlog.get_logger("lms.http")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
DOCS_ASSETS = "/docs/assets/"
# No request body of the contract nests deeper than a few levels; a deep one is an attack on
# the parser (Python's json recursion) or on what walks the result.
MAX_JSON_DEPTH = 32


class StrictSchema(Schema):
    """Request bodies: an unknown field is an error, never silently dropped; in a JSON body a
    boolean must be true or false and an integer a whole JSON number (marshmallow alone would
    take 0, "yes" or 2.5 and coerce them)."""

    class Meta:
        unknown = RAISE

    @pre_load
    def refuse_loose_json_types(self, data: Any, **_kwargs: Any) -> Any:
        if type(data) is not dict:  # query strings and forms arrive as multidicts: text to convert
            return data
        errors: dict[str, list[str]] = {}
        for name, field in self.load_fields.items():
            value = data.get(field.data_key or name)
            if value is None:
                continue
            if isinstance(field, fields.Boolean) and not isinstance(value, bool):
                errors[field.data_key or name] = ["Not a valid boolean."]
            elif isinstance(field, fields.Integer) and (isinstance(value, bool) or not isinstance(value, int)):
                errors[field.data_key or name] = ["Not a valid integer."]
        if errors:
            raise ValidationError(errors)
        return data


class PageArgs(Schema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.String(load_default=None, validate=validate.Length(max=512))

    class Meta:
        unknown = RAISE


def page_schema(item_schema: type[Schema], name: str) -> type[Schema]:
    """The schema of ``{"items": [...], "next_cursor": ...}`` for one kind of item."""
    return CompiledDumpSchema.from_dict(
        {"items": fields.List(fields.Nested(item_schema)), "next_cursor": fields.String(allow_none=True)},
        name=name,
    )


# --- dumping responses ------------------------------------------------------------------------
# A list of fifty items went through marshmallow's per-field machinery (accessor, default,
# formatting, hooks) a few hundred times per request. For schemas made of plain fields the same
# output comes from one small function per schema, built once from the schema's own fields.

Dumper = Callable[[Any], Any]


class CompiledDumpSchema(Schema):
    """A response schema dumped by functions built from its fields: marshmallow's output, value
    for value, in a fraction of the time. A schema with a field or hook the builder does not
    know is dumped by marshmallow itself."""

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        dumper = self.__dict__.get("_dumper", missing)
        if dumper is missing:
            dumper = self.__dict__["_dumper"] = compile_dumper(self)
        if dumper is None:
            return super().dump(obj, many=many)
        many = self.many if many is None else bool(many)
        return [dumper(item) for item in obj] if many and obj is not None else dumper(obj)


def compile_dumper(schema: Schema) -> Dumper | None:
    """A function dumping one object as ``schema.dump`` does, or None when it cannot be built."""
    hooks = getattr(schema, "_hooks", None)
    if hooks is None or hooks[PRE_DUMP] or hooks[POST_DUMP] or type(schema).get_attribute is not Schema.get_attribute:
        return None
    plan = []
    for name, field in schema.dump_fields.items():
        key = field.attribute or name
        formatter = _formatter(field)
        if formatter is None or "." in key:
            return None
        plan.append((field.data_key or name, key, formatter))
    return _object_dumper(plan)


def _object_dumper(plan: list[tuple[str, str, Dumper]]) -> Dumper:
    def dump(obj: Any) -> dict[str, Any]:
        out = {}
        for out_key, key, formatter in plan:
            value = _value(obj, key)
            if value is not missing:
                out[out_key] = None if value is None else formatter(value)
        return out

    return dump


def _value(obj: Any, key: str) -> Any:
    if type(obj) is dict:  # marshmallow's get_value, for the common case without its try/except
        return obj[key] if key in obj else getattr(obj, key, missing)
    return get_value(obj, key)


def _formatter(field: fields.Field[Any]) -> Dumper | None:
    """What marshmallow does to a field's value when it is not None, or None for other fields."""
    if field.dump_default is not missing:
        return None
    build = _FORMATTER_BUILDERS.get(type(field))  # exact types: a subclass may format otherwise
    return build(field) if build else None


def _integer_formatter(field: fields.Integer) -> Dumper | None:
    return None if field.as_string else int


def _datetime_formatter(field: fields.DateTime) -> Dumper | None:
    return datetime.isoformat if (field.format or "iso") in ("iso", "iso8601") else None


def _list_formatter(field: fields.List[Any]) -> Dumper | None:
    each = _formatter(field.inner)
    if each is None:
        return None
    return lambda values: [None if value is None else each(value) for value in values]


def _nested_formatter(field: fields.Nested) -> Dumper | None:
    if field.only is not None or field.exclude:
        return None
    schema = field.schema
    dumper = compile_dumper(schema)
    if dumper is None:
        return None
    if schema.many or field.many:
        return lambda values: [dumper(value) for value in values]
    return dumper


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _unchanged(value: Any) -> Any:
    return value


_FORMATTER_BUILDERS: dict[type[Any], Callable[[Any], Dumper | None]] = {
    fields.String: lambda _field: _text,
    fields.Boolean: lambda _field: _unchanged,
    fields.Raw: lambda _field: _unchanged,
    fields.Integer: _integer_formatter,
    fields.DateTime: _datetime_formatter,
    fields.List: _list_formatter,
    fields.Nested: _nested_formatter,
}


# --- units of work ----------------------------------------------------------------------------


def runtime() -> Runtime:
    return current_app.extensions["lms"]  # type: ignore[no-any-return]


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A database transaction for this request: committed at the end of the block."""
    with session_scope(runtime().session_factory) as session:
        yield session


@contextmanager
def read_only() -> Iterator[Session]:
    """A session for a request that only reads, without a transaction's round trips
    (see ``make_read_session_factory``); it refuses to write."""
    with session_scope(_read_session_factory(runtime())) as session:
        yield session


def _read_session_factory(rt: Runtime) -> Any:
    factory = rt.extras.get("read_session_factory")
    if factory is None:  # made once per process; two threads making one each is harmless
        factory = rt.extras["read_session_factory"] = make_read_session_factory(rt.engine)
    return factory


# --- cursor pagination ------------------------------------------------------------------------


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([v.isoformat() if hasattr(v, "isoformat") else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, columns: Sequence[Any]) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(columns):
            raise ValueError("wrong shape")
        return [_typed(column, value) for column, value in zip(columns, values, strict=True)]
    except (ValueError, TypeError) as exc:
        raise Problem("the cursor is not one this API handed out", status=400, code="invalid_cursor") from exc


def _typed(column: Any, value: Any) -> Any:
    from datetime import datetime

    python_type = getattr(column.type, "python_type", None)
    if python_type is datetime and isinstance(value, str):
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:  # stored times refuse naive values: a forged cursor, not a 500
            raise ValueError("a cursor's times carry their zone")
        return parsed
    return value


def paginate(
    session: Session,
    query: Select[Any],
    key_columns: Sequence[Any],
    limit: int,
    cursor: str | None,
    *,
    entities: bool = True,
) -> tuple[list[Any], str | None]:
    """Keyset pagination: rows after ``cursor`` in ``key_columns`` order, and the next cursor.

    ``entities=False`` pages a multi-column select and hands back its rows as they are.
    """
    if cursor:
        query = query.where(tuple_(*key_columns) > tuple_(*decode_cursor(cursor, key_columns)))
    ordered = query.order_by(*key_columns).limit(limit + 1)
    rows = list(session.scalars(ordered) if entities else session.execute(ordered))
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor([getattr(rows[-1], column.key) for column in key_columns])


def keyset_statement(query: AnySelect, key_columns: Sequence[Any], *, after: bool) -> AnySelect:
    """``query`` as one page of a keyset pagination, for :class:`~lms_common.db.ReadStatement`:
    in ``key_columns`` order, at most ``:limit`` rows, and with ``after`` only the rows past the
    cursor (:func:`past_cursor`; :func:`keyset_params` binds them)."""
    if after:
        query = past_cursor(query, key_columns)
    return query.order_by(*key_columns).limit(bindparam("limit"))


def past_cursor(query: AnySelect, key_columns: Sequence[Any]) -> AnySelect:
    """``query`` with only the rows past a cursor in ``key_columns`` order: its values bound as
    ``:after_0``, ``:after_1``... (:func:`cursor_params`)."""
    bound = [bindparam(f"after_{i}", type_=column.type) for i, column in enumerate(key_columns)]
    return query.where(tuple_(*key_columns) > tuple_(*bound))


def keyset_params(key_columns: Sequence[Any], limit: int, cursor: str | None) -> dict[str, Any]:
    """The bound values of a :func:`keyset_statement` page: one row more than the page shows,
    which tells whether there is a next page."""
    return {"limit": limit + 1, **cursor_params(key_columns, cursor)}


def cursor_params(key_columns: Sequence[Any], cursor: str | None) -> dict[str, Any]:
    """The bound values of :func:`past_cursor` for ``cursor`` (none without one)."""
    if not cursor:
        return {}
    return {f"after_{i}": value for i, value in enumerate(decode_cursor(cursor, key_columns))}


def keyset_page(rows: list[Any], limit: int, key_positions: Sequence[int]) -> tuple[list[Any], str | None]:
    """The rows of a :func:`keyset_statement` page and the cursor of the next, from the key
    values at ``key_positions`` of its last row."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode_cursor([rows[-1][i] for i in key_positions])


def dumped_page(items: list[dict[str, Any]], next_cursor: str | None) -> tuple[Response, int, dict[str, str]]:
    """:func:`page` for items already in their response schema's output form, answered without
    dumping them again: the same bytes, for views that build them straight from rows."""
    body, status, headers = page(items, next_cursor)
    return jsonify(body), status, headers


def page(items: list[Any], next_cursor: str | None) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The list response: body, status and a ``Link: rel="next"`` header when there is more."""
    headers: dict[str, str] = {}
    if next_cursor:
        args = {key: value for key, value in request.args.items() if key != "cursor"}
        args["cursor"] = next_cursor
        base_url = _base_url(request.scheme, request.host, request.root_path, request.path)
        headers["Link"] = f'<{base_url}?{urlencode(args)}>; rel="next"'
    return {"items": items, "next_cursor": next_cursor}, 200, headers


@functools.lru_cache(maxsize=256)
def _base_url(scheme: str, host: str, root_path: str, path: str) -> str:
    """``request.base_url``, which quotes and unquotes its parts again on every request; a list
    is asked for at a few URLs only."""
    return get_current_url(scheme, host, root_path, path)


# --- the app ----------------------------------------------------------------------------------


def _flask_config(title: str, max_body_bytes: int) -> dict[str, Any]:
    return {
        "API_TITLE": title,
        "API_VERSION": "1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": DOCS_ASSETS,
        "MAX_CONTENT_LENGTH": max_body_bytes,
        "MAX_FORM_MEMORY_SIZE": max_body_bytes,
    }


class _App(Flask):
    """Flask, remembering which functions are not coroutines: Flask and flask-smorest ask
    ``ensure_sync`` about every hook and every decorator layer of a view on every request, and
    each answer inspected the function's code flags again."""

    def __init__(self, import_name: str):
        super().__init__(import_name)
        self.json = FastJSONProvider(self)
        self._sync_functions: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        key = getattr(func, "__func__", func)  # a bound method is made anew on each look-up
        try:
            if key in self._sync_functions:
                return func
        except TypeError:  # not weakly referenceable
            return super().ensure_sync(func)
        wrapped = super().ensure_sync(func)
        if wrapped is func:
            self._sync_functions.add(key)
        return wrapped


class FastJSONProvider(DefaultJSONProvider):
    """Flask's JSON answers (``jsonify``, flask-smorest's responses) encoded by orjson: a list
    page's body in a fraction of the time.

    The document is Flask's: compact, keys sorted, and dates, times, dataclasses and anything
    else orjson would write its own way handed to Flask's own conversion. The one difference is
    that text outside ASCII is written as UTF-8 rather than escaped. What orjson refuses (an
    integer beyond 64 bits, say) goes to Flask's encoder, so nothing that encoded before fails.
    """

    OPTIONS = (
        orjson.OPT_SORT_KEYS
        | orjson.OPT_NON_STR_KEYS
        | orjson.OPT_PASSTHROUGH_DATETIME
        | orjson.OPT_PASSTHROUGH_DATACLASS
    )

    def response(self, *args: Any, **kwargs: Any) -> SansioResponse:
        if (self.compact is None and self._app.debug) or self.compact is False:
            return super().response(*args, **kwargs)  # indented for people: Python's encoder
        obj = self._prepare_response_obj(args, kwargs)
        try:
            body = orjson.dumps(obj, default=DefaultJSONProvider.default, option=self.OPTIONS)
        except (orjson.JSONEncodeError, TypeError):
            body = self.dumps(obj, separators=(",", ":")).encode()
        answer: type[Response] = self._app.response_class  # type: ignore[assignment]  # Flask's own
        return answer(body + b"\n", mimetype=self.mimetype)


def build_app(name: str, title: str, blueprints: Sequence[Blueprint], rt: Runtime) -> Flask:
    app = _App(name)
    app.config.update(_flask_config(title, rt.settings.max_body_bytes))
    app.extensions["lms"] = rt
    api = Api(app, spec_kwargs={"info": {"description": f"The LMS {name} service."}})
    api.spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    api.register_blueprint(operations_blueprint())
    for blueprint in blueprints:
        api.register_blueprint(blueprint)
    _install_docs_assets(app)
    _install_request_hooks(app, name)
    _install_error_handlers(app)
    return app


def operations_blueprint() -> Blueprint:
    ops = Blueprint("operations", __name__, url_prefix="/", description="Health and metrics")

    @ops.route("/healthz")
    @ops.response(200)
    def healthz() -> ResponseReturnValue:
        """Liveness: the process is alive"""
        return jsonify(status="ok")

    @ops.route("/readyz")
    @ops.response(200)
    @ops.alt_response(503, description="The database or the broker does not answer")
    def readyz() -> ResponseReturnValue:
        """Readiness: the database and the broker answer"""
        problems = runtime().readiness.problems()
        if problems:
            return jsonify(status="unavailable", down=problems), 503
        return jsonify(status="ok")

    @ops.route("/metrics")
    @ops.response(200)
    def prometheus_metrics() -> ResponseReturnValue:
        """Prometheus metrics of every worker process of this API"""
        body, content_type = metrics.exposition()
        return Response(body, mimetype=content_type.split(";")[0], content_type=content_type)

    return ops


def _install_docs_assets(app: Flask) -> None:
    import swagger_ui_bundle

    @app.route(f"{DOCS_ASSETS}<path:filename>")
    def docs_assets(filename: str) -> Response:
        return send_from_directory(swagger_ui_bundle.swagger_ui_path, filename)


def _install_request_hooks(app: Flask, service: str) -> None:
    observe = _request_metrics(service)
    requires_json_body: dict[tuple[str | None, str], bool] = {}  # what each view declares never changes

    @app.before_request
    def start_request() -> None:
        req = request._get_current_object()  # type: ignore[attr-defined]  # one proxy look-up for many reads
        given = req.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.match(given) else new_id()
        g.correlation_token = begin_correlation(g.request_id)
        g.started = time.perf_counter()
        check_input(req, app.config["MAX_CONTENT_LENGTH"])

    @app.before_request
    def refuse_a_missing_body() -> Response | None:
        # webargs reads an absent JSON body as {}, which would let a bare PATCH or POST through.
        req = request._get_current_object()  # type: ignore[attr-defined]
        key = (req.endpoint, req.method)
        required = requires_json_body.get(key)
        if required is None:
            required = requires_json_body[key] = _requires_json_body(app, *key)
        if required and not req.content_length and not req.get_data(cache=True):
            return problem_response(400, detail="this request needs a JSON body")
        return None

    @app.after_request
    def finish_request(response: Response) -> Response:
        req = request._get_current_object()  # type: ignore[attr-defined]
        response.headers["X-Request-ID"] = g.get("request_id", "")
        # Stored text comes back in JSON; no browser may guess it is HTML and run it.
        response.headers["X-Content-Type-Options"] = "nosniff"
        endpoint = req.url_rule.rule if req.url_rule else "unmatched"
        elapsed = time.perf_counter() - g.get("started", time.perf_counter())
        observe(req.method, endpoint, response.status_code, elapsed)
        if endpoint not in ("/metrics", "/healthz", "/readyz"):
            log.info(
                "request",
                method=req.method,
                path=req.path,
                status=response.status_code,
                duration_ms=round(elapsed * 1000, 2),
            )
        return response

    @app.teardown_request
    def end_request(_exc: BaseException | None) -> None:
        token = g.pop("correlation_token", None)
        if token is not None:
            end_correlation(token)


def _request_metrics(service: str) -> Callable[[str, str, int, float], None]:
    """Count and time a request. The labelled series are kept: prometheus-client's ``labels``
    checks and locks on every call, and the label values are few (URL rules, methods, statuses)."""
    series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(method: str, endpoint: str, status: int, seconds: float) -> None:
        key = (method, endpoint, status)
        found = series.get(key)
        if found is None:
            found = series[key] = (
                metrics.HTTP_REQUESTS.labels(service, method, endpoint, str(status)),
                metrics.HTTP_LATENCY.labels(service, method, endpoint),
            )
        found[0].inc()
        found[1].observe(seconds)

    return observe


def check_input(req: Any, max_content_length: int | None) -> None:
    """Refuse, as 400, input no view should see: NUL characters (PostgreSQL text cannot hold
    them), and JSON bodies that are not UTF-8 or nest deeper than ``MAX_JSON_DEPTH``."""
    if req.content_length is not None and max_content_length is not None and req.content_length > max_content_length:
        raise RequestEntityTooLarge()  # before anything reads it, whatever its type
    if "\x00" in req.path or _pairs_hold_nul(req.args):
        raise Problem("the URL holds a NUL character", status=400, code="invalid_input")
    mimetype = req.mimetype
    if mimetype in _FORMS and _pairs_hold_nul(req.form):
        raise Problem("the form holds a NUL character", status=400, code="invalid_input")
    if not req.is_json:
        return
    raw = req.get_data(cache=True)  # over MAX_CONTENT_LENGTH: 413
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem("the request body is not UTF-8", status=400, code="invalid_encoding") from exc
    if _nesting(text) > MAX_JSON_DEPTH:
        raise Problem(f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels", status=400, code="too_deep")
    try:
        body = json.loads(text)
    except ValueError:
        return  # not JSON: the schema layer answers 400 with its own words
    if _holds_nul(body):
        raise Problem("the JSON body holds a NUL character", status=400, code="invalid_input")


def _nesting(text: str) -> int:
    """How deep ``[`` and ``{`` nest in a JSON text, brackets inside strings not counted."""
    deepest = depth = 0
    # Strings (with their escapes) are cut out first, so only structural brackets remain.
    for char in _NOT_BRACKET.sub("", _JSON_STRING.sub("", text)):
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")


def _pairs_hold_nul(pairs: Any) -> bool:
    return any("\x00" in key or "\x00" in value for key, value in pairs.items(multi=True))


def _holds_nul(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _requires_json_body(app: Flask, endpoint: str | None, method: str) -> bool:
    """Whether the matched view declares a required JSON body (flask-smorest's ``arguments``)."""
    view = app.view_functions.get(endpoint or "")
    view_class = getattr(view, "view_class", None)
    handler = getattr(view_class, method.lower(), None) if view_class else view
    parameters = getattr(handler, "_apidoc", {}).get("arguments", {}).get("parameters", [])
    return any(p.get("in") == "json" and p.get("required", True) for p in parameters)


def _validation_errors(exc: HTTPException) -> dict[str, Any] | None:
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages") if isinstance(data, dict) else None
    if not messages:
        return None
    # webargs nests by location ("json", "query"); callers care about the fields.
    if (
        isinstance(messages, dict)
        and len(messages) == 1
        and next(iter(messages)) in ("json", "query", "form", "headers", "view_args")
    ):
        return next(iter(messages.values()))  # type: ignore[no-any-return]
    return messages  # type: ignore[no-any-return]


def _install_error_handlers(app: Flask) -> None:
    @app.errorhandler(Problem)
    def handle_problem(problem: Problem) -> Response:
        return from_problem(problem)

    @app.errorhandler(HTTPException)
    def handle_http(exc: HTTPException) -> Response:
        status = exc.code or 500
        errors = _validation_errors(exc) if status == 422 else None
        if status == 422:
            detail = "the request does not match the schema; see errors"
        elif status == 400 and getattr(exc, "data", None):
            detail = "the request body is not valid JSON"
        else:
            detail = exc.description or ""
        headers = None
        if status == 405 and getattr(exc, "valid_methods", None):
            headers = {"Allow": ", ".join(exc.valid_methods)}  # type: ignore[attr-defined]
        return problem_response(status, detail=detail, errors=errors, headers=headers)

    @app.errorhandler(Exception)
    def handle_unexpected(exc: Exception) -> Response:
        log.exception("unhandled error", error=repr(exc))
        return problem_response(500, detail="an unexpected error occurred; it has been logged")
