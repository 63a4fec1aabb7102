"""The simulator's aiohttp application: token endpoint, Graph, Teams admin and `/_sim`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

from aiohttp import web

from provisioning.simulator.auth import OAuthError, TokenIssuer
from provisioning.simulator.bodies import (
    ApplicationInstancePatch,
    AssignLicense,
    AssignNumber,
    LicenseTopUp,
    NewApplicationInstance,
    NewSearchOrder,
    NewUser,
    UnassignNumber,
    UserPatch,
    parse_body,
)
from provisioning.simulator.catalogue import is_e164
from provisioning.simulator.clock import ScaledClock, TimeSource
from provisioning.simulator.config import KnobError, SimulatorConfig, StockOverride, patch_knobs
from provisioning.simulator.errors import SimError
from provisioning.simulator.odata import (
    check_query_options,
    decode_skiptoken,
    encode_skiptoken,
    parse_filter,
    parse_top,
)
from provisioning.simulator.state import AssignedLicense, TenantState
from provisioning.simulator.traffic import ApiRateLimiter, Fault, FaultInjector
from provisioning.simulator.views import (
    country_json,
    instance_json,
    number_json,
    number_type_json,
    operation_json,
    order_json,
    sku_json,
    state_json,
    user_json,
)
from provisioning.simulator.wire import (
    ADMIN_PREFIX,
    AUTH_PREFIX,
    CODE_BAD_REQUEST,
    CODE_INTERNAL_SERVER_ERROR,
    CODE_INVALID_AUTHENTICATION_TOKEN,
    CODE_NOT_FOUND,
    CODE_SERVICE_UNAVAILABLE,
    CODE_TOO_MANY_REQUESTS,
    GRAPH_PREFIX,
    GRAPH_ROUTES,
    GRAPH_SCOPE,
    ROUTES,
    TEAMS_ADMIN_SCOPE,
    TEAMS_PREFIX,
    fill,
)

logger = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Simulator:
    """Everything one simulator instance holds; kept under `SIMULATOR` in the app."""

    state: TenantState
    issuer: TokenIssuer
    limiter: ApiRateLimiter
    faults: FaultInjector
    closing: asyncio.Event = field(default_factory=asyncio.Event)


SIMULATOR: Final = web.AppKey("simulator", Simulator)
_REQUEST_IDS: Final = web.RequestKey("simulator_request_ids", tuple[str, str])

_APIS: Final = {GRAPH_PREFIX: GRAPH_SCOPE, TEAMS_PREFIX: TEAMS_ADMIN_SCOPE}


def _api_of(path: str) -> str | None:
    for prefix in _APIS:
        if path == prefix or path.startswith(prefix + "/"):
            return prefix
    return None


def format_retry_after(seconds: float) -> str:
    """Delta-seconds; decimals only when the time-scaled value needs them."""
    if seconds >= 1 and float(seconds).is_integer():
        return str(int(seconds))
    text = f"{max(seconds, 0.001):.3f}".rstrip("0").rstrip(".")
    return text


def _error_response(request: web.Request, error: SimError) -> web.Response:
    request_id, client_request_id = request.get(_REQUEST_IDS, ("", ""))
    simulator = request.app[SIMULATOR]
    body = {
        "error": {
            "code": error.code,
            "message": error.message,
            "innerError": {
                "date": simulator.state.clock.now().strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id,
            },
        }
    }
    headers = {}
    if error.retry_after_s is not None:
        headers["Retry-After"] = format_retry_after(error.retry_after_s)
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="", error="invalid_token"'
    return web.json_response(body, status=error.status, headers=headers)


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> SimError:
    if exc.status == 404:
        return SimError(404, CODE_NOT_FOUND, f"No route matches {request.method} {request.path}.")
    if exc.status == 405:
        return SimError(
            405, CODE_BAD_REQUEST, f"The method {request.method} is not allowed on {request.path}."
        )
    return SimError(exc.status, CODE_BAD_REQUEST, exc.reason)


@web.middleware
async def _envelope(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Request ids on every answer, and every failure in the Graph error shape."""
    request_id = str(uuid.uuid4())
    client_request_id = request.headers.get("client-request-id") or request_id
    request[_REQUEST_IDS] = (request_id, client_request_id)
    response: web.StreamResponse
    try:
        response = await handler(request)
    except SimError as exc:
        response = _error_response(request, exc)
    except web.HTTPException as exc:
        response = _error_response(request, _from_http_exception(request, exc))
    except Exception:
        logger.exception("simulator failed on %s %s", request.method, request.path)
        response = _error_response(
            request,
            SimError(500, CODE_INTERNAL_SERVER_ERROR, "The simulator failed unexpectedly."),
        )
    response.headers["request-id"] = request_id
    response.headers["client-request-id"] = client_request_id
    logger.debug("%s %s -> %d", request.method, request.path_qs, response.status)
    return response


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Token check, throttling and injected faults, for the Microsoft APIs only."""
    api = _api_of(request.path)
    if api is None:
        return await handler(request)
    simulator = request.app[SIMULATOR]
    state = simulator.state
    problem = simulator.issuer.check(request.headers.get("Authorization"), _APIS[api])
    if problem is not None:
        raise SimError(401, CODE_INVALID_AUTHENTICATION_TOKEN, problem)
    wait = simulator.limiter.check(api)
    if wait is not None:
        state.counters.throttled += 1
        raise SimError(
            429,
            CODE_TOO_MANY_REQUESTS,
            "Too many requests. Retry after the interval in the Retry-After header.",
            retry_after_s=wait,
        )
    knobs = state.knobs
    fault = simulator.faults.draw(knobs.fault_rate_5xx, knobs.fault_rate_timeout)
    if fault is Fault.NONE:
        return await handler(request)
    state.counters.faults_injected += 1
    logger.debug("injecting %s into %s %s", fault.value, request.method, request.path)
    if fault is Fault.INTERNAL_ERROR:
        raise SimError(500, CODE_INTERNAL_SERVER_ERROR, "An internal server error occurred.")
    if fault is Fault.UNAVAILABLE:
        raise SimError(
            503,
            CODE_SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable.",
            retry_after_s=state.clock.real_seconds(knobs.fault_retry_after_s),
        )
    # A lost answer: the change happens, only the caller does not hear about it in time.
    try:
        return await handler(request)
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(simulator.closing.wait(), knobs.timeout_stall_s)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SimError(
            400, CODE_BAD_REQUEST, f"Unable to read JSON request payload: {exc}."
        ) from exc


def _graph_base(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}{GRAPH_PREFIX}"


def _state(request: web.Request) -> TenantState:
    return request.app[SIMULATOR].state


def _path_arg(request: web.Request) -> str:
    # Every template has at most one placeholder; reading it by position keeps the handlers
    # right whatever the shared route table calls it.
    return next(iter(request.match_info.values()))


# -- token endpoint -------------------------------------------------------------------------


async def token(request: web.Request) -> web.Response:
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        body = request.app[SIMULATOR].issuer.issue(request.match_info["tenant"], fields)
    except OAuthError as exc:
        return web.json_response(exc.to_json(), status=exc.status)
    return web.json_response(body)


# -- Graph: users and licenses ---------------------------------------------------------------


async def create_user(request: web.Request) -> web.Response:
    body = parse_body(NewUser, await _json_body(request))
    user = _state(request).create_user(
        user_principal_name=body.user_principal_name,
        display_name=body.display_name,
        mail_nickname=body.mail_nickname,
        account_enabled=body.account_enabled,
        usage_location=body.usage_location,
    )
    return web.json_response(user_json(user), status=201)


async def get_user(request: web.Request) -> web.Response:
    return web.json_response(user_json(_state(request).get_user(_path_arg(request))))


async def update_user(request: web.Request) -> web.Response:
    body = parse_body(UserPatch, await _json_body(request))
    for name in ("account_enabled", "display_name", "mail_nickname"):
        if name in body.model_fields_set and getattr(body, name) is None:
            raise SimError(400, CODE_BAD_REQUEST, f"Property '{name}' cannot be null.")
    _state(request).update_user(
        _path_arg(request),
        display_name=body.display_name,
        mail_nickname=body.mail_nickname,
        account_enabled=body.account_enabled,
        usage_location=body.usage_location,
        clear_usage_location="usage_location" in body.model_fields_set
        and body.usage_location is None,
    )
    return web.Response(status=204)


async def delete_user(request: web.Request) -> web.Response:
    _state(request).delete_user(_path_arg(request))
    return web.Response(status=204)


async def assign_license(request: web.Request) -> web.Response:
    body = parse_body(AssignLicense, await _json_body(request))
    user = _state(request).assign_license(
        _path_arg(request),
        [AssignedLicense(lic.sku_id, lic.disabled_plans) for lic in body.add_licenses],
        body.remove_licenses,
    )
    return web.json_response(user_json(user))


async def subscribed_skus(request: web.Request) -> web.Response:
    state = _state(request)
    return web.json_response({"value": [sku_json(state, sku) for sku in state.list_skus()]})


# -- Graph: telephone numbers ----------------------------------------------------------------


async def list_numbers(request: web.Request) -> web.Response:
    query = request.query
    check_query_options(query)
    text = query.get("$filter")
    filters = parse_filter(text) if text is not None else {}
    top = parse_top(query.get("$top"))
    token = query.get("$skiptoken")
    offset = decode_skiptoken(token) if token is not None else 0
    numbers = _state(request).list_numbers(filters)
    page = numbers[offset : offset + top]
    body: dict[str, Any] = {"value": [number_json(n) for n in page]}
    if offset + top < len(numbers):
        body["@odata.nextLink"] = str(
            request.url.update_query({"$skiptoken": encode_skiptoken(offset + top)})
        )
    return web.json_response(body)


async def get_number(request: web.Request) -> web.Response:
    return web.json_response(number_json(_state(request).get_number(_path_arg(request))))


def _check_e164(telephone_number: str) -> None:
    if not is_e164(telephone_number):
        raise SimError(
            400,
            CODE_BAD_REQUEST,
            f"Invalid value specified for property 'telephoneNumber': '{telephone_number}' "
            "is not an E.164 number such as +14255550100.",
        )


def _accepted(request: web.Request, operation_id: str) -> web.Response:
    location = _graph_base(request) + fill(GRAPH_ROUTES.operation, operation_id)
    return web.Response(status=202, headers={"Location": location})


async def assign_number(request: web.Request) -> web.Response:
    body = parse_body(AssignNumber, await _json_body(request))
    _check_e164(body.telephone_number)
    operation = _state(request).start_assign_number(
        body.telephone_number,
        body.assignment_target_id,
        body.number_type,
        body.assignment_category,
    )
    return _accepted(request, operation.id)


async def unassign_number(request: web.Request) -> web.Response:
    body = parse_body(UnassignNumber, await _json_body(request))
    _check_e164(body.telephone_number)
    operation = _state(request).start_unassign_number(body.telephone_number, body.number_type)
    return _accepted(request, operation.id)


async def get_operation(request: web.Request) -> web.Response:
    operation, status = _state(request).get_operation(_path_arg(request))
    return web.json_response(operation_json(operation, status, _graph_base(request)))


# -- Teams admin: number offers and search orders ----------------------------------------------


async def list_countries(request: web.Request) -> web.Response:
    countries = _state(request).countries()
    return web.json_response({"value": [country_json(c) for c in countries]})


async def list_number_types(request: web.Request) -> web.Response:
    offers = _state(request).number_types(_path_arg(request))
    return web.json_response({"value": [number_type_json(t, areas) for t, areas in offers]})


async def create_order(request: web.Request) -> web.Response:
    body = parse_body(NewSearchOrder, await _json_body(request))
    order = _state(request).create_order(
        name=body.name,
        description=body.description,
        country_code=body.country_code,
        number_type=body.number_type,
        quantity=body.quantity,
        area_code=body.area_code,
        number_prefix=body.number_prefix,
        civic_address_id=body.civic_address_id,
    )
    return web.json_response({"orderId": order.id}, status=201)


async def find_orders(request: web.Request) -> web.Response:
    orders = _state(request).find_orders(request.query.get(ROUTES.search_order_name_param))
    return web.json_response({"value": [order_json(o) for o in orders]})


async def get_order(request: web.Request) -> web.Response:
    return web.json_response(order_json(_state(request).get_order(_path_arg(request))))


async def complete_order(request: web.Request) -> web.Response:
    _state(request).complete_order(_path_arg(request))
    return web.Response(status=204)


async def cancel_order(request: web.Request) -> web.Response:
    _state(request).cancel_order(_path_arg(request))
    return web.Response(status=204)


# -- Teams admin: application instances ----------------------------------------------------------


async def create_instance(request: web.Request) -> web.Response:
    body = parse_body(NewApplicationInstance, await _json_body(request))
    state = _state(request)
    user = state.create_application_instance(
        user_principal_name=body.user_principal_name,
        display_name=body.display_name,
        application_id=body.application_id,
    )
    return web.json_response(instance_json(state, user), status=201)


async def get_instance(request: web.Request) -> web.Response:
    state = _state(request)
    return web.json_response(
        instance_json(state, state.get_application_instance(_path_arg(request)))
    )


async def update_instance(request: web.Request) -> web.Response:
    body = parse_body(ApplicationInstancePatch, await _json_body(request))
    _state(request).set_application_id(_path_arg(request), body.application_id)
    return web.Response(status=204)


async def sync_instance(request: web.Request) -> web.Response:
    _state(request).sync_application_instance(_path_arg(request))
    return web.Response(status=204)


# -- /_sim: the test's view and controls -----------------------------------------------------------


async def get_counters(request: web.Request) -> web.Response:
    return web.json_response(_state(request).counters.to_json())


async def get_knobs(request: web.Request) -> web.Response:
    return web.json_response(_state(request).knobs.model_dump())


async def change_knobs(request: web.Request) -> web.Response:
    changes = await _json_body(request)
    if not isinstance(changes, dict):
        raise SimError(400, CODE_BAD_REQUEST, "The request body must be a JSON object.")
    simulator = request.app[SIMULATOR]
    try:
        knobs = patch_knobs(simulator.state.knobs, changes)
    except KnobError as exc:
        raise SimError(400, CODE_BAD_REQUEST, str(exc)) from exc
    simulator.state.set_knobs(knobs)
    simulator.limiter.set_rate(knobs.rate_limit_rps)
    logger.debug("knobs patched: %s", changes)
    return web.json_response(knobs.model_dump())


async def get_state(request: web.Request) -> web.Response:
    return web.json_response(state_json(_state(request), _graph_base(request)))


async def add_licenses(request: web.Request) -> web.Response:
    body = parse_body(LicenseTopUp, await _json_body(request))
    state = _state(request)
    sku = state.add_license_units(body.sku_part_number, body.add_units)
    return web.json_response(sku_json(state, sku))


async def set_stock(request: web.Request) -> web.Response:
    override = parse_body(StockOverride, await _json_body(request))
    _state(request).set_stock(override)
    return web.json_response(override.model_dump(by_alias=True))


def _add_routes(app: web.Application) -> None:
    router = app.router
    router.add_post(AUTH_PREFIX + "/{tenant}/oauth2/v2.0/token", token)

    graph = GRAPH_PREFIX
    routes = GRAPH_ROUTES
    router.add_post(graph + routes.users, create_user)
    router.add_post(graph + routes.assign_license, assign_license)
    router.add_get(graph + routes.user, get_user)
    router.add_patch(graph + routes.user, update_user)
    router.add_delete(graph + routes.user, delete_user)
    router.add_get(graph + routes.subscribed_skus, subscribed_skus)
    router.add_post(graph + routes.assign_number, assign_number)
    router.add_post(graph + routes.unassign_number, unassign_number)
    router.add_get(graph + routes.number_assignments, list_numbers)
    router.add_get(graph + routes.number_assignment, get_number)
    router.add_get(graph + routes.operation, get_operation)

    teams = TEAMS_PREFIX
    router.add_get(teams + ROUTES.countries, list_countries)
    router.add_get(teams + ROUTES.number_types, list_number_types)
    router.add_post(teams + ROUTES.search_orders, create_order)
    router.add_get(teams + ROUTES.search_orders, find_orders)
    router.add_post(teams + ROUTES.complete_order, complete_order)
    router.add_post(teams + ROUTES.cancel_order, cancel_order)
    router.add_get(teams + ROUTES.search_order, get_order)
    router.add_post(teams + ROUTES.application_instances, create_instance)
    router.add_post(teams + ROUTES.application_instance_sync, sync_instance)
    router.add_get(teams + ROUTES.application_instance, get_instance)
    router.add_patch(teams + ROUTES.application_instance, update_instance)

    admin = ADMIN_PREFIX
    router.add_get(f"{admin}/counters", get_counters)
    router.add_get(f"{admin}/knobs", get_knobs)
    router.add_patch(f"{admin}/knobs", change_knobs)
    router.add_get(f"{admin}/state", get_state)
    router.add_post(f"{admin}/licenses", add_licenses)
    router.add_post(f"{admin}/stock", set_stock)


def create_simulator_app(
    config: SimulatorConfig, *, clock: TimeSource | None = None
) -> web.Application:
    """The simulator as an aiohttp app; ``clock`` replaces the machine's time, e.g. in tests."""
    scaled = ScaledClock(config.time_scale, clock)
    state = TenantState(config, scaled)
    limiter = ApiRateLimiter(time.monotonic)
    limiter.set_rate(state.knobs.rate_limit_rps)
    simulator = Simulator(
        state=state,
        issuer=TokenIssuer(
            tenant_ids=frozenset({config.tenant_id, config.tenant_domain}),
            client_id=config.client_id,
            client_secret=config.client_secret.get_secret_value(),
        ),
        limiter=limiter,
        faults=FaultInjector(config.seed),
    )
    app = web.Application(middlewares=[_envelope, _guard])
    app[SIMULATOR] = simulator
    _add_routes(app)

    app.on_shutdown.append(_release_stalls)
    return app


async def _release_stalls(app: web.Application) -> None:
    # Shutdown waits for running handlers; an injected stall must not hold it up.
    app[SIMULATOR].closing.set()
