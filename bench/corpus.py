"""Seeded generator of realistic CLEF, the test data for seqfast's benchmarks.

Writes newline-delimited JSON in the form Serilog's ``CompactJsonFormatter`` writes it: ``@t`` in
.NET's round-trip format (7 fractional digits, ``Z``), ``@mt``, ``@r`` renderings for tokens with
a format string, ``@l`` only when the level is not Information, ``@x`` .NET exception text,
``@tr``/``@sp`` W3C trace and span ids, then the properties (template properties first, then
scope and enricher properties).

The stream models a small shop: applications ``web``, ``api``, ``worker``, ``auth``, ``billing``,
``notifications`` and ``scheduler``, 26 message templates, Serilog.AspNetCore request events,
EF Core ``Executed DbCommand`` events with MEL-style lower-case properties and multi-line SQL,
cache hits and misses, orders with a destructured ``{@Order}``, logins, payments, jobs, retries,
timeouts and rare host crashes; about 0.8 % of events (most errors, some warnings, every fatal)
carry a multi-line .NET exception with inner exceptions. About eight units of work (requests,
messages, jobs) are in flight at once and their events interleave; the events of one unit share
``@tr``/``@sp``, ``RequestId`` and ``ConnectionId``. Timestamps advance at a few thousand events
a second (sinusoidal +-50 % with occasional short bursts).

The output depends only on ``(n, seed)`` (and ``GENERATOR_VERSION``)::

    python3 bench/corpus.py 1000000 1 > clef.ndjson
    python3 bench/corpus.py 100000 7 --stats > /dev/null   # the corpus' shape, on stderr

As a module: ``generate(n, seed)`` yields lines (bytes ending in ``\\n``), ``write_corpus(path,
n, seed)`` writes a file, ``corpus_path(n, seed)`` generates once into ``bench/.data/`` and
returns the cached file afterwards.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import orjson

__all__ = [
    "DATA_DIR",
    "GENERATOR_VERSION",
    "corpus_path",
    "corpus_stats",
    "generate",
    "write_corpus",
]

#: Bump whenever the output for a given (n, seed) changes; cached corpora are keyed by it.
GENERATOR_VERSION = 1

DATA_DIR = Path(__file__).resolve().parent / ".data"

Event = dict[str, Any]

# 2026-11-24T09:00:00Z as Unix seconds; timestamps are kept as 100-ns ticks since the epoch.
_START_SECONDS = 1_795_510_800
_TICKS_PER_SECOND = 10_000_000

_MEAN_RATE = 3_000.0  # events per second, averaged over the sine period
_RATE_PERIOD_SECONDS = 240.0
_BURST_PROBABILITY = 1 / 60_000  # per event; a burst multiplies the rate for a few thousand events
_CONCURRENCY = 8

# Id spaces (ids are drawn with a hot head and a long tail, see _Generator.skewed).
_PRODUCTS = 3_000
_CUSTOMERS = 8_000
_RECENT_ORDERS = 8_000

# The 26 message templates.
T_HTTP = "HTTP {RequestMethod} {RequestPath} responded {StatusCode} in {Elapsed:0.0000} ms"
T_EF_OK = (
    "Executed DbCommand ({elapsed}ms) [Parameters=[{parameters}], CommandType='{commandType}', "
    "CommandTimeout='{commandTimeout}']{newLine}{commandText}"
)
T_EF_FAIL = (
    "Failed executing DbCommand ({elapsed}ms) [Parameters=[{parameters}], "
    "CommandType='{commandType}', CommandTimeout='{commandTimeout}']{newLine}{commandText}"
)
T_CACHE_HIT = "Cache hit for {CacheKey}"
T_CACHE_MISS = "Cache miss for {CacheKey}, loading from {CacheSource}"
T_ENDPOINT = "Executing endpoint '{EndpointName}'"
T_AUTHZ = "Authorization was successful."
T_RECEIVED = "Received message {MessageId} of type {MessageType} from {QueueName}"
T_LOGIN = "User {UserName} ({UserId}) signed in from {ClientIp} using {AuthMethod}"
T_LOGIN_FAIL = "Failed sign-in for {UserName} from {ClientIp}: {Reason}"
T_ORDER = "Order {OrderId} placed by customer {CustomerId}: {@Order}"
T_PAY_OK = "Payment {PaymentId} captured for order {OrderId}: {Amount} {Currency} via {Provider}"
T_PAY_DECLINED = "Payment {PaymentId} for order {OrderId} declined by {Provider}: {Reason}"
T_INVOICE = "Invoice {InvoiceId} issued for order {OrderId}"
T_NOTIFY_OK = "Sent {Channel} notification {TemplateName} to {Recipient}"
T_NOTIFY_FAIL = "Failed to send {Channel} notification {MessageId} to {Recipient}"
T_JOB_START = "Job {JobName} ({JobId}) started"
T_JOB_DONE = "Job {JobName} ({JobId}) completed: {ItemsProcessed} items in {Elapsed:0.0000} ms"
T_JOB_FAIL = "Job {JobName} ({JobId}) failed after {Elapsed:0.0000} ms"
T_SCHEDULE = "Triggering scheduled job {JobName} ({CronExpression}); next run at {NextRun}"
T_RETRY = "Retrying {Operation} in {Delay} (attempt {Attempt} of {MaxAttempts})"
T_TIMEOUT = "Upstream timeout calling {Service} {Endpoint} after {Elapsed:0.0000} ms"
T_QUEUE_DEPTH = "Queue {QueueName} depth is {QueueDepth}"
T_UNHANDLED = "Unhandled exception while processing message {MessageId} of type {MessageType}"
T_FATAL = "Host terminated unexpectedly"
T_STARTED = "Application started. Hosting environment: {EnvName}; Content root path: {ContentRoot}"

TEMPLATES: tuple[str, ...] = (
    T_HTTP,
    T_EF_OK,
    T_EF_FAIL,
    T_CACHE_HIT,
    T_CACHE_MISS,
    T_ENDPOINT,
    T_AUTHZ,
    T_RECEIVED,
    T_LOGIN,
    T_LOGIN_FAIL,
    T_ORDER,
    T_PAY_OK,
    T_PAY_DECLINED,
    T_INVOICE,
    T_NOTIFY_OK,
    T_NOTIFY_FAIL,
    T_JOB_START,
    T_JOB_DONE,
    T_JOB_FAIL,
    T_SCHEDULE,
    T_RETRY,
    T_TIMEOUT,
    T_QUEUE_DEPTH,
    T_UNHANDLED,
    T_FATAL,
    T_STARTED,
)

_EF_SOURCE = "Microsoft.EntityFrameworkCore.Database.Command"
_EF_EXECUTED = {
    "Id": 20101,
    "Name": "Microsoft.EntityFrameworkCore.Database.Command.CommandExecuted",
}
_EF_FAILED = {"Id": 20102, "Name": "Microsoft.EntityFrameworkCore.Database.Command.CommandError"}
_ENDPOINT_EVENT = {"Id": 0, "Name": "ExecutingEndpoint"}
_AUTHZ_EVENT = {"Id": 1, "Name": "UserAuthorizationSucceeded"}
_LIFETIME_EVENT = {"Id": 0, "Name": "ApplicationStarted"}
_REQUEST_SOURCE = "Serilog.AspNetCore.RequestLoggingMiddleware"

# -------------------------------------------------------------------------------------------------
# Applications, machines and routes


class _App:
    __slots__ = ("conns", "hosts", "machines", "name", "next_conn", "ns", "version")

    def __init__(self, rng: random.Random, name: str, ns: str, hosts: int, version: str) -> None:
        self.name = name
        self.ns = ns
        self.version = version
        prod = [f"{name}-prod-{i:02d}" for i in range(1, hosts + 1)]
        # (machine, environment, version): one staging box, one production box on the next build.
        self.machines: list[tuple[str, str, str]] = [(m, "Production", version) for m in prod]
        major, minor, _patch = version.split(".")
        self.machines[-1] = (prod[-1], "Production", f"{major}.{int(minor) + 1}.0")
        self.machines.append((f"{name}-stg-01", "Staging", f"{major}.{int(minor) + 1}.0"))
        # Kestrel connection ids: a per-process counter encoded in base32; per-request counters.
        self.conns: dict[str, list[list[int]]] = {}
        self.next_conn: dict[str, int] = {}
        for machine, _env, _ver in self.machines:
            base = (17 << 55) | (23 << 50) | rng.getrandbits(48)  # "0HN..." like Kestrel
            self.conns[machine] = [[base + i, rng.randrange(1, 9)] for i in range(24)]
            self.next_conn[machine] = base + 24
        self.hosts = hosts

    def pick_machine(self, rng: random.Random) -> tuple[str, str, str]:
        # Staging sees ~4 % of the traffic.
        if rng.random() < 0.04:
            return self.machines[-1]
        return self.machines[rng.randrange(self.hosts)]


_B32 = "0123456789ABCDEFGHIJKLMNOPQRSTUV"


def _kestrel_id(value: int) -> str:
    return "".join(_B32[(value >> shift) & 31] for shift in range(60, -5, -5))


# (method, path pattern, weight, endpoint name, authenticated); {p} product id, {o} order id,
# {c} customer id, {s} slug, {k} sku, {i} invoice number, {g} guid
_WEB_ROUTES: list[tuple[str, str, float, str, bool]] = [
    ("GET", "/", 9, "Shop.Web.Pages.IndexModel", False),
    ("GET", "/health", 14, "Health checks", False),
    ("GET", "/products/{p}", 20, "Shop.Web.Pages.Products.DetailsModel", False),
    ("GET", "/products/{p}/reviews", 4, "Shop.Web.Pages.Products.ReviewsModel", False),
    ("GET", "/category/{s}", 10, "Shop.Web.Pages.CategoryModel", False),
    ("GET", "/brands/{s}", 3, "Shop.Web.Pages.BrandModel", False),
    ("GET", "/search", 8, "Shop.Web.Pages.SearchModel", False),
    ("GET", "/cart", 6, "Shop.Web.Pages.CartModel", True),
    ("POST", "/cart/items", 4, "Shop.Web.Pages.CartModel", True),
    ("GET", "/checkout", 2.5, "Shop.Web.Pages.CheckoutModel", True),
    ("POST", "/checkout", 1.6, "Shop.Web.Pages.CheckoutModel", True),
    ("GET", "/account/orders", 2.5, "Shop.Web.Pages.Account.OrdersModel", True),
    ("GET", "/account/orders/{o}", 3, "Shop.Web.Pages.Account.OrderDetailsModel", True),
    ("GET", "/account/addresses", 1, "Shop.Web.Pages.Account.AddressesModel", True),
]
# Endpoint names are expanded to "Shop.Api.Controllers.<name> (Shop.Api)".
_API_ROUTES: list[tuple[str, str, float, str, bool]] = [
    ("GET", "/api/v2/products/{p}", 18, "ProductsController.Get", False),
    ("GET", "/api/v2/products/{p}/stock", 12, "StockController.GetStock", False),
    ("GET", "/api/v2/products", 6, "ProductsController.List", False),
    ("GET", "/api/v2/orders/{o}", 10, "OrdersController.Get", True),
    ("POST", "/api/v2/orders", 2.5, "OrdersController.Create", True),
    ("GET", "/api/v2/customers/{c}", 5, "CustomersController.Get", True),
    ("GET", "/api/v2/customers/{c}/addresses", 3, "AddressesController.List", True),
    ("PUT", "/api/v2/cart/{g}", 4, "CartController.Put", True),
    ("GET", "/api/v2/inventory/{k}", 5, "InventoryController.Get", False),
    ("GET", "/api/v2/search", 6, "SearchController.Search", False),
    ("GET", "/health", 8, "Health checks", False),
]
_API_ROUTES = [
    (m, p, w, e if e == "Health checks" else f"Shop.Api.Controllers.{e} (Shop.Api)", a)
    for m, p, w, e, a in _API_ROUTES
]
_AUTH_ROUTES: list[tuple[str, str, float, str, bool]] = [
    ("POST", "/connect/token", 10, "Shop.Identity.TokenEndpoint", False),
    ("POST", "/account/login", 5, "Shop.Identity.Pages.Account.LoginModel", False),
    ("GET", "/account/login", 3, "Shop.Identity.Pages.Account.LoginModel", False),
    ("GET", "/connect/userinfo", 6, "Shop.Identity.UserInfoEndpoint", True),
    ("GET", "/.well-known/openid-configuration", 4, "Shop.Identity.DiscoveryEndpoint", False),
    ("POST", "/account/logout", 1, "Shop.Identity.Pages.Account.LogoutModel", True),
]
_ROUTES = {"web": _WEB_ROUTES, "api": _API_ROUTES, "auth": _AUTH_ROUTES}
_SLUGS = [
    "shoes",
    "running-shoes",
    "jackets",
    "rain-jackets",
    "tents",
    "backpacks",
    "sleeping-bags",
    "headlamps",
    "socks",
    "gloves",
    "hats",
    "climbing",
    "ropes",
    "harnesses",
    "stoves",
    "kids",
    "sale",
    "new-arrivals",
    "trail",
    "winter",
    "summer",
    "bikes",
    "helmets",
    "water-bottles",
]
_BRANDS = ["acme", "northwind", "contoso", "fabrikam", "tailspin", "wingtip", "adventure-works"]


# -------------------------------------------------------------------------------------------------
# EF Core commands: (SQL, parameter declarations). Parameters are rendered with values, as with
# EnableSensitiveDataLogging.

_SQL: dict[str, tuple[str, str]] = {
    "order": (
        'SELECT "o"."Id", "o"."CreatedAt", "o"."CustomerId", "o"."ShippingAddressId", '
        '"o"."Status", "o"."Total", "o"."Currency"\nFROM "Orders" AS "o"\n'
        'WHERE "o"."Id" = @__id_0\nLIMIT 1',
        "@__id_0='{o}'",
    ),
    "order_lines": (
        'SELECT "o"."Id", "o"."OrderId", "o"."ProductId", "o"."Quantity", "o"."UnitPrice", '
        '"p"."Id", "p"."Name", "p"."Sku"\nFROM "OrderLines" AS "o"\n'
        'INNER JOIN "Products" AS "p" ON "o"."ProductId" = "p"."Id"\n'
        'WHERE "o"."OrderId" = @__orderId_0\nORDER BY "o"."Id"',
        "@__orderId_0='{o}'",
    ),
    "orders_of_customer": (
        'SELECT "o"."Id", "o"."CreatedAt", "o"."Status", "o"."Total", "o"."Currency"\n'
        'FROM "Orders" AS "o"\nWHERE "o"."CustomerId" = @__customerId_0\n'
        'ORDER BY "o"."CreatedAt" DESC\nLIMIT @__p_1 OFFSET @__p_2',
        "@__customerId_0='{c}', @__p_1='20', @__p_2='0'",
    ),
    "product": (
        'SELECT "p"."Id", "p"."BrandId", "p"."CategoryId", "p"."Name", "p"."Price", '
        '"p"."Sku"\nFROM "Products" AS "p"\n'
        'WHERE "p"."Id" = @__id_0 AND NOT ("p"."IsDeleted")\nLIMIT 2',
        "@__id_0='{p}'",
    ),
    "stock": (
        'SELECT "s"."WarehouseId", "s"."Available", "s"."Reserved"\nFROM "StockLevels" AS "s"\n'
        'WHERE "s"."ProductId" = @__productId_0',
        "@__productId_0='{p}'",
    ),
    "category": (
        'SELECT "p"."Id", "p"."Name", "p"."Price", "p"."Slug"\nFROM "Products" AS "p"\n'
        'INNER JOIN "Categories" AS "c" ON "p"."CategoryId" = "c"."Id"\n'
        'WHERE "c"."Slug" = @__slug_0 AND NOT ("p"."IsDeleted")\n'
        'ORDER BY "p"."Popularity" DESC\nLIMIT @__p_1 OFFSET @__p_2',
        "@__slug_0='{s}', @__p_1='48', @__p_2='0'",
    ),
    "customer": (
        'SELECT "c"."Id", "c"."Email", "c"."FirstName", "c"."LastName", "c"."CreatedAt"\n'
        'FROM "Customers" AS "c"\nWHERE "c"."Id" = @__id_0\nLIMIT 1',
        "@__id_0='{c}'",
    ),
    "addresses": (
        'SELECT "a"."Id", "a"."City", "a"."CountryCode", "a"."Line1", "a"."PostalCode"\n'
        'FROM "Addresses" AS "a"\nWHERE "a"."CustomerId" = @__customerId_0',
        "@__customerId_0='{c}'",
    ),
    "cart": (
        'SELECT "c"."Id", "c"."CustomerId", "c"."UpdatedAt", "c0"."Id", "c0"."ProductId", '
        '"c0"."Quantity"\nFROM "Carts" AS "c"\n'
        'LEFT JOIN "CartItems" AS "c0" ON "c"."Id" = "c0"."CartId"\n'
        'WHERE "c"."CustomerId" = @__customerId_0\nORDER BY "c"."Id"',
        "@__customerId_0='{c}'",
    ),
    "insert_order": (
        'INSERT INTO "Orders" ("CreatedAt", "Currency", "CustomerId", "ShippingAddressId", '
        '"Status", "Total")\nVALUES (@p0, @p1, @p2, @p3, @p4, @p5)\nRETURNING "Id";',
        "@p0='{now}', @p1='EUR' (Nullable = false) (Size = 3), @p2='{c}', @p3='{a}', "
        "@p4='Pending' (Nullable = false) (Size = 7), @p5='{amount}'",
    ),
    "update_stock": (
        'UPDATE "StockLevels" SET "Reserved" = @p0, "RowVersion" = @p1\n'
        'WHERE "ProductId" = @p2 AND "WarehouseId" = @p3 AND "RowVersion" = @p4;',
        "@p0='{n}', @p1='{rv2}', @p2='{p}', @p3='{w}', @p4='{rv}'",
    ),
    "user_by_email": (
        'SELECT "u"."Id", "u"."AccessFailedCount", "u"."Email", "u"."EmailConfirmed", '
        '"u"."LockoutEnd", "u"."PasswordHash", "u"."UserName"\nFROM "AspNetUsers" AS "u"\n'
        'WHERE "u"."NormalizedEmail" = @__normalizedEmail_0\nLIMIT 2',
        "@__normalizedEmail_0='{email_upper}' (Size = 256)",
    ),
    "user_claims": (
        'SELECT "a"."Id", "a"."ClaimType", "a"."ClaimValue", "a"."UserId"\n'
        'FROM "AspNetUserClaims" AS "a"\nWHERE "a"."UserId" = @__user_Id_0',
        "@__user_Id_0='{c}' (Nullable = false)",
    ),
    "outbox": (
        'SELECT "o"."Id", "o"."CreatedAt", "o"."Payload", "o"."Type"\n'
        'FROM "OutboxMessages" AS "o"\nWHERE "o"."ProcessedAt" IS NULL\n'
        'ORDER BY "o"."CreatedAt"\nLIMIT @__p_0\nFOR UPDATE SKIP LOCKED',
        "@__p_0='100'",
    ),
    "outbox_done": (
        'UPDATE "OutboxMessages" SET "ProcessedAt" = @p0\nWHERE "Id" = @p1;',
        "@p0='{now}', @p1='{g}'",
    ),
    "insert_payment": (
        'INSERT INTO "Payments" ("Amount", "CapturedAt", "Currency", "OrderId", "Provider", '
        '"ProviderReference", "Status")\nVALUES (@p0, @p1, @p2, @p3, @p4, @p5, @p6)\n'
        'RETURNING "Id";',
        "@p0='{amount}', @p1='{now}', @p2='EUR' (Nullable = false) (Size = 3), @p3='{o}', "
        "@p4='{provider}' (Nullable = false), @p5='{ref}', @p6='Captured' (Nullable = false)",
    ),
    "insert_invoice": (
        'INSERT INTO "Invoices" ("IssuedAt", "Number", "OrderId", "Total")\n'
        'VALUES (@p0, @p1, @p2, @p3)\nRETURNING "Id";',
        "@p0='{now}', @p1='{inv}' (Nullable = false), @p2='{o}', @p3='{amount}'",
    ),
    "insert_notification": (
        'INSERT INTO "Notifications" ("Channel", "CreatedAt", "Recipient", "Status", '
        '"TemplateName")\nVALUES (@p0, @p1, @p2, @p3, @p4)\nRETURNING "Id";',
        "@p0='{channel}' (Nullable = false), @p1='{now}', @p2='{recipient}', "
        "@p3='Sent' (Nullable = false), @p4='{template}'",
    ),
    "job_run": (
        'UPDATE "JobRuns" SET "CompletedAt" = @p0, "ItemsProcessed" = @p1, "Status" = @p2\n'
        'WHERE "Id" = @p3;',
        "@p0='{now}', @p1='{n}', @p2='Succeeded' (Nullable = false), @p3='{g}'",
    ),
    "stale_carts": (
        'DELETE FROM "Carts" AS "c"\nWHERE "c"."UpdatedAt" < @__cutoff_0',
        "@__cutoff_0='{now}' (DbType = DateTime)",
    ),
}

# Which EF commands an endpoint/unit kind runs.
_ROUTE_SQL: dict[str, list[str]] = {
    "/": ["category"],
    "/health": [],
    "/products/{p}": ["product", "stock"],
    "/products/{p}/reviews": ["product"],
    "/category/{s}": ["category"],
    "/brands/{s}": ["category"],
    "/search": ["category"],
    "/cart": ["cart"],
    "/cart/items": ["cart", "product", "stock"],
    "/checkout": ["cart", "addresses"],
    "/account/orders": ["orders_of_customer"],
    "/account/orders/{o}": ["order", "order_lines"],
    "/account/addresses": ["addresses"],
    "/api/v2/products/{p}": ["product"],
    "/api/v2/products/{p}/stock": ["stock"],
    "/api/v2/products": ["category"],
    "/api/v2/orders/{o}": ["order", "order_lines"],
    "/api/v2/orders": ["cart", "insert_order", "update_stock"],
    "/api/v2/customers/{c}": ["customer"],
    "/api/v2/customers/{c}/addresses": ["addresses"],
    "/api/v2/cart/{g}": ["cart", "product"],
    "/api/v2/inventory/{k}": ["stock"],
    "/api/v2/search": ["category"],
    "/connect/token": ["user_by_email", "user_claims"],
    "/account/login": ["user_by_email", "user_claims"],
    "/connect/userinfo": ["customer", "user_claims"],
    "/.well-known/openid-configuration": [],
    "/account/logout": [],
}

# -------------------------------------------------------------------------------------------------
# Exceptions: chains of (type, message, frames), outermost first. Messages may use {o}, {key},
# {host}, {n}.

_F_EF = [
    "   at Npgsql.Internal.NpgsqlConnector.ReadMessageLong(Boolean async, DataRowLoadingMode "
    "dataRowLoadingMode, Boolean readingNotifications, Boolean isReadingPrependedMessage)",
    "   at Npgsql.NpgsqlDataReader.NextResult(Boolean async, Boolean isConsuming, "
    "CancellationToken cancellationToken)",
    "   at Npgsql.NpgsqlCommand.ExecuteReader(Boolean async, CommandBehavior behavior, "
    "CancellationToken cancellationToken)",
    "   at Microsoft.EntityFrameworkCore.Storage.RelationalCommand.ExecuteReaderAsync("
    "RelationalCommandParameterObject parameterObject, CancellationToken cancellationToken)",
    "   at Microsoft.EntityFrameworkCore.Query.Internal.SingleQueryingEnumerable`1.AsyncEnumerator"
    ".InitializeReaderAsync(AsyncEnumerator enumerator, CancellationToken cancellationToken)",
    "   at Npgsql.EntityFrameworkCore.PostgreSQL.Storage.Internal.NpgsqlExecutionStrategy"
    ".ExecuteAsync[TState,TResult](TState state, Func`4 operation, Func`4 verifySucceeded, "
    "CancellationToken cancellationToken)",
    "   at Microsoft.EntityFrameworkCore.Query.ShapedQueryCompilingExpressionVisitor"
    ".SingleOrDefaultAsync[TSource](IAsyncEnumerable`1 asyncEnumerable, CancellationToken "
    "cancellationToken)",
]
_F_NPGSQL_READ = [
    "   at Npgsql.Internal.NpgsqlReadBuffer.<Ensure>g__EnsureLong|55_0(NpgsqlReadBuffer buffer, "
    "Int32 count, Boolean async, Boolean readingNotifications)",
    "   at System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder`1.StateMachineBox`1"
    ".System.Threading.Tasks.Sources.IValueTaskSource.GetResult(Int16 token)",
    "   at Npgsql.Internal.NpgsqlConnector.ReadMessageLong(Boolean async, DataRowLoadingMode "
    "dataRowLoadingMode, Boolean readingNotifications, Boolean isReadingPrependedMessage)",
]
_F_HTTP = [
    "   at System.Net.Http.HttpConnectionPool.ConnectToTcpHostAsync(String host, Int32 port, "
    "HttpRequestMessage initialRequest, Boolean async, CancellationToken cancellationToken)",
    "   at System.Net.Http.HttpConnectionPool.ConnectAsync(HttpRequestMessage request, Boolean "
    "async, CancellationToken cancellationToken)",
    "   at System.Net.Http.HttpConnectionPool.SendWithVersionDetectionAndRetryAsync("
    "HttpRequestMessage request, Boolean async, Boolean doRequestAuth, CancellationToken "
    "cancellationToken)",
    "   at System.Net.Http.DiagnosticsHandler.SendAsyncCore(HttpRequestMessage request, Boolean "
    "async, CancellationToken cancellationToken)",
    "   at Microsoft.Extensions.Http.Logging.LoggingHttpMessageHandler.<SendCoreAsync>g__Core|5_0("
    "HttpRequestMessage request, Boolean useAsync, CancellationToken cancellationToken)",
    "   at System.Net.Http.HttpClient.<SendAsync>g__Core|83_0(HttpRequestMessage request, "
    "HttpCompletionOption completionOption, CancellationTokenSource cts, Boolean disposeCts, "
    "CancellationTokenSource pendingRequestsCts, CancellationToken originalCancellationToken)",
]
_F_SOCKET = [
    "   at System.Net.Sockets.Socket.AwaitableSocketAsyncEventArgs.ThrowException(SocketError "
    "error, CancellationToken cancellationToken)",
    "   at System.Net.Sockets.Socket.AwaitableSocketAsyncEventArgs.System.Threading.Tasks.Sources"
    ".IValueTaskSource.GetResult(Int16 token)",
    "   at System.Net.Sockets.Socket.<ConnectAsync>g__WaitForConnectWithCancellation|285_0("
    "AwaitableSocketAsyncEventArgs saea, ValueTask connectTask, CancellationToken "
    "cancellationToken)",
    "   at System.Net.Http.HttpConnectionPool.ConnectToTcpHostAsync(String host, Int32 port, "
    "HttpRequestMessage initialRequest, Boolean async, CancellationToken cancellationToken)",
]
_F_REDIS = [
    "   at StackExchange.Redis.ConnectionMultiplexer.ExecuteSyncImpl[T](Message message, "
    "ResultProcessor`1 processor, ServerEndPoint server, T defaultValue) in "
    "/_/src/StackExchange.Redis/ConnectionMultiplexer.cs:line 2099",
    "   at StackExchange.Redis.RedisDatabase.StringGet(RedisKey key, CommandFlags flags) in "
    "/_/src/StackExchange.Redis/RedisDatabase.cs:line 3109",
    "   at Microsoft.Extensions.Caching.StackExchangeRedis.RedisCache.GetAndRefreshAsync(String "
    "key, Boolean getData, CancellationToken token)",
    "   at Microsoft.Extensions.Caching.Distributed.DistributedCacheExtensions.GetStringAsync("
    "IDistributedCache cache, String key, CancellationToken token)",
]
_X_CONCURRENCY = (
    "Microsoft.EntityFrameworkCore.DbUpdateConcurrencyException: The database operation was "
    "expected to affect 1 row(s), but actually affected 0 row(s); data may have been modified or "
    "deleted since entities were loaded. See https://go.microsoft.com/fwlink/?LinkId=527962 for "
    "information on understanding and handling optimistic concurrency exceptions."
)
_F_SAVE = [
    "   at Npgsql.EntityFrameworkCore.PostgreSQL.Update.Internal.NpgsqlModificationCommandBatch"
    ".ThrowAggregateUpdateConcurrencyExceptionAsync(RelationalDataReader reader, Int32 "
    "commandIndex, Int32 expectedRowsAffected, Int32 rowsAffected, CancellationToken "
    "cancellationToken)",
    "   at Microsoft.EntityFrameworkCore.DbContext.SaveChangesAsync(Boolean "
    "acceptAllChangesOnSuccess, CancellationToken cancellationToken)",
]
_F_SMTP = [
    "   at MailKit.Net.Smtp.SmtpClient.SendAsync(FormatOptions options, MimeMessage message, "
    "MailboxAddress sender, IList`1 recipients, CancellationToken cancellationToken, "
    "ITransferProgress progress)",
    "   at MailKit.Net.Smtp.SmtpClient.SendAsync(FormatOptions options, MimeMessage message, "
    "CancellationToken cancellationToken, ITransferProgress progress)",
]


def _app_frames(ns: str, area: str) -> list[str]:
    src = ns.replace(".", "/")
    return [
        f"   at {ns}.{area}.Handlers.Handler.HandleAsync(Request request, CancellationToken "
        f"cancellationToken) in /src/{src}/{area}/Handlers/Handler.cs:line 88",
        f"   at {ns}.Infrastructure.Behaviours.RetryBehaviour`2.Handle(TRequest request, "
        f"RequestHandlerDelegate`1 next, CancellationToken cancellationToken) in "
        f"/src/{src}/Infrastructure/Behaviours/RetryBehaviour.cs:line 41",
        f"   at {ns}.Infrastructure.Behaviours.LoggingBehaviour`2.Handle(TRequest request, "
        f"RequestHandlerDelegate`1 next, CancellationToken cancellationToken) in "
        f"/src/{src}/Infrastructure/Behaviours/LoggingBehaviour.cs:line 27",
        f"   at {ns}.{area}.{area}Service.ExecuteAsync(Guid correlationId, CancellationToken "
        f"cancellationToken) in /src/{src}/{area}/{area}Service.cs:line 132",
    ]


_ASPNET_FRAMES = [
    "   at Microsoft.AspNetCore.Mvc.Infrastructure.ActionMethodExecutor.TaskOfIActionResultExecutor"
    ".Execute(ActionContext actionContext, IActionResultTypeMapper mapper, ObjectMethodExecutor "
    "executor, Object controller, Object[] arguments)",
    "   at Microsoft.AspNetCore.Mvc.Infrastructure.ControllerActionInvoker"
    ".<InvokeActionMethodAsync>g__Logged|12_1(ControllerActionInvoker invoker)",
    "   at Microsoft.AspNetCore.Routing.EndpointMiddleware.<Invoke>g__AwaitRequestTask|7_0("
    "Endpoint endpoint, Task requestTask, ILogger logger)",
    "   at Microsoft.AspNetCore.Authorization.AuthorizationMiddleware.Invoke(HttpContext context)",
    "   at Serilog.AspNetCore.RequestLoggingMiddleware.Invoke(HttpContext httpContext)",
]

# (exception scenario, weight) for errors without a more specific cause
_EXC_KINDS: list[tuple[str, float]] = [
    ("db_timeout", 5),
    ("db_serialization", 2),
    ("db_concurrency", 2),
    ("http_refused", 3),
    ("http_timeout", 4),
    ("redis_timeout", 2),
    ("null_ref", 1.5),
    ("not_found", 1),
    ("smtp", 1),
]


# -------------------------------------------------------------------------------------------------
# The generator


class _Generator:
    """Holds the random state and the world (apps, ids) of one corpus."""

    def __init__(self, seed: int) -> None:
        rng = self.rng = random.Random(seed)
        self.apps = {
            "web": _App(rng, "web", "Shop.Web", 6, "4.12.3"),
            "api": _App(rng, "api", "Shop.Api", 4, "4.12.3"),
            "worker": _App(rng, "worker", "Shop.Worker", 3, "2.7.1"),
            "auth": _App(rng, "auth", "Shop.Identity", 2, "1.9.4"),
            "billing": _App(rng, "billing", "Shop.Billing", 2, "3.3.0"),
            "notifications": _App(rng, "notifications", "Shop.Notifications", 2, "1.4.2"),
            "scheduler": _App(rng, "scheduler", "Shop.Scheduler", 1, "1.1.7"),
        }
        self.next_order = 4_200_000 + rng.randrange(100_000)
        self.next_invoice = 880_000 + rng.randrange(10_000)
        self.next_job = 1_000 + rng.randrange(1_000)
        # The generator's idea of "now" (updated by generate()), for timestamps inside properties.
        self.now_sec = _START_SECONDS
        self.now = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(_START_SECONDS))
        self.route_w = {
            "web": self._cum(_WEB_ROUTES),
            "api": self._cum(_API_ROUTES),
            "auth": self._cum(_AUTH_ROUTES),
        }
        self.exc_cum = list(_accumulate(w for _, w in _EXC_KINDS))
        # Unit kinds and their weights (per unit, not per event).
        self.kinds: list[tuple[str, float]] = [
            ("web", 43.0),
            ("api", 31.0),
            ("auth", 8.5),
            ("worker_message", 7.5),
            ("worker_job", 0.35),
            ("billing", 3.6),
            ("billing_webhook", 2.2),
            ("notification", 3.4),
            ("scheduler", 1.1),
            ("queue_depth", 1.05),
            ("crash", 0.035),
        ]
        self.kind_names = [k for k, _ in self.kinds]
        self.kind_cum = list(_accumulate(w for _, w in self.kinds))

    @staticmethod
    def _cum(routes: list[tuple[str, str, float, str, bool]]) -> list[float]:
        return list(_accumulate(r[2] for r in routes))

    # ---- small helpers --------------------------------------------------------------------------

    def hex128(self) -> str:
        return f"{self.rng.getrandbits(128):032x}"

    def hex64(self) -> str:
        return f"{self.rng.getrandbits(64):016x}"

    def guid(self) -> str:
        h = f"{self.rng.getrandbits(128):032x}"
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def skewed(self, n: int) -> int:
        """An id in [1, n]: P(id) falls off as 1/(id + 50) -- a hot head and a long tail."""
        return max(1, int(math.exp(self.rng.random() * math.log(n + 50))) - 49)

    def elapsed(self, median: float, sigma: float = 1.0) -> float:
        return round(self.rng.lognormvariate(math.log(median), sigma), 4)

    def exception(self, app: _App, kind: str | None = None) -> str:
        rng = self.rng
        if kind is None:
            kind = _EXC_KINDS[_bisect(self.exc_cum, rng.random() * self.exc_cum[-1])][0]
        ns = app.ns
        area = rng.choice(("Orders", "Catalog", "Checkout", "Customers", "Payments", "Messaging"))
        mine = _app_frames(ns, area)
        o = self.next_order - rng.randrange(5000)
        chain: list[tuple[str, list[str]]]
        if kind == "db_timeout":
            chain = [
                (
                    "System.InvalidOperationException: An exception has been raised that is likely "
                    "due to a transient failure.",
                    _F_EF[5:6] + mine,
                ),
                (
                    "Npgsql.NpgsqlException (0x80004005): Exception while reading from stream",
                    _F_NPGSQL_READ[1:] + _F_EF[1:5],
                ),
                ("System.TimeoutException: Timeout during reading attempt", _F_NPGSQL_READ[:1]),
            ]
        elif kind == "db_serialization":
            chain = [
                (
                    "Npgsql.PostgresException (0x80004005): 40001: could not serialize access due "
                    "to concurrent update",
                    _F_EF[:5] + mine,
                ),
            ]
        elif kind == "db_concurrency":
            chain = [
                (_X_CONCURRENCY, _F_SAVE + mine),
            ]
        elif kind == "http_refused":
            host = rng.choice(
                (
                    "payments.internal:443",
                    "inventory.internal:8080",
                    "search.internal:9200",
                    "pricing.internal:443",
                )
            )
            chain = [
                (
                    f"System.Net.Http.HttpRequestException: Connection refused ({host})",
                    _F_HTTP + mine,
                ),
                ("System.Net.Sockets.SocketException (111): Connection refused", _F_SOCKET),
            ]
        elif kind == "http_timeout":
            chain = [
                (
                    "System.Threading.Tasks.TaskCanceledException: The request was canceled due to "
                    "the configured HttpClient.Timeout of 30 seconds elapsing.",
                    _F_HTTP[3:] + mine,
                ),
                ("System.TimeoutException: A task was canceled.", []),
                ("System.Threading.Tasks.TaskCanceledException: A task was canceled.", _F_HTTP[:3]),
            ]
        elif kind == "redis_timeout":
            key = f"product:{self.skewed(_PRODUCTS)}:v3"
            chain = [
                (
                    f"StackExchange.Redis.RedisTimeoutException: Timeout performing GET (5000ms), "
                    f"next: GET {key}, inst: 0, qu: 0, qs: {rng.randrange(1, 40)}, aw: False, bw: "
                    f"SpinningDown, rs: ReadAsync, ws: Idle, in: 0, serverEndpoint: "
                    f"redis.internal:6379, mc: 1/1/0, mgr: 10 of 10 available, clientName: "
                    f"{app.name}-prod-01, IOCP: (Busy=0,Free=1000,Min=2,Max=1000), WORKER: "
                    f"(Busy={rng.randrange(2, 90)},Free=32677,Min=2,Max=32767), v: 2.7.33.41805 "
                    f"(Please take a look at this article for some common client-side issues that "
                    f"can cause timeouts: https://stackexchange.github.io/StackExchange.Redis/"
                    f"Timeouts)",
                    _F_REDIS + mine,
                ),
            ]
        elif kind == "null_ref":
            chain = [
                (
                    "System.NullReferenceException: Object reference not set to an instance of an "
                    "object.",
                    mine,
                ),
            ]
        elif kind == "not_found":
            chain = [
                (
                    f"System.Collections.Generic.KeyNotFoundException: Order {o} was not found.",
                    mine[:2],
                ),
            ]
        else:  # smtp
            chain = [
                (
                    "MailKit.Net.Smtp.SmtpCommandException: 4.7.0 Temporary server error. Please "
                    "try again later",
                    _F_SMTP + mine,
                ),
            ]
        return _render_exception(chain, rng, web=app.name in ("web", "api", "auth"))

    # ---- common properties ----------------------------------------------------------------------

    def _tail(self, ev: Event, u: _Unit) -> Event:
        rng = self.rng
        if rng.random() < 0.25:  # async continuations hop threads
            u.thread = rng.randrange(4, 64)
        ev["ThreadId"] = u.thread
        ev["Application"] = u.app.name
        ev["Environment"] = u.env
        ev["MachineName"] = u.machine
        ev["Version"] = u.version
        return ev

    def _scope(self, ev: Event, u: _Unit) -> None:
        if u.request_id is not None:
            ev["RequestId"] = u.request_id
            ev["RequestPath"] = u.path
            ev["ConnectionId"] = u.conn_id
        if u.user_id is not None:
            ev["UserId"] = u.user_id

    def _head(self, mt: str, u: _Unit, level: str | None = None) -> Event:
        ev: Event = {"@t": None, "@mt": mt}
        if level is not None:
            ev["@l"] = level
        if u.tr is not None:
            ev["@tr"] = u.tr
            ev["@sp"] = u.sp
        return ev

    def _head_r(self, mt: str, r: str, u: _Unit, level: str | None = None) -> Event:
        ev: Event = {"@t": None, "@mt": mt, "@r": [r]}
        if level is not None:
            ev["@l"] = level
        if u.tr is not None:
            ev["@tr"] = u.tr
            ev["@sp"] = u.sp
        return ev

    def _with_x(self, ev: Event, x: str) -> Event:
        """Insert ``@x`` after ``@l``/``@r`` and before ``@tr``, as CompactJsonFormatter does."""
        out: Event = {}
        for k, v in ev.items():
            if k == "@tr":
                out["@x"] = x
            out[k] = v
        if "@x" not in out:
            out["@x"] = x
        return out

    # ---- event builders -------------------------------------------------------------------------

    def ef(self, u: _Unit, which: str, vals: dict[str, Any], failed: bool = False) -> Event:
        rng = self.rng
        sql, params = _SQL[which]
        ms = rng.lognormvariate(0.9, 0.9)
        if failed:
            ms = rng.uniform(30_000, 30_100) if rng.random() < 0.6 else rng.uniform(1, 400)
        elapsed = f"{ms:,.0f}"
        ev = self._head(T_EF_FAIL if failed else T_EF_OK, u, "Error" if failed else None)
        if failed:
            ev = self._with_x(
                ev,
                self.exception(u.app, rng.choice(("db_timeout", "db_timeout", "db_serialization"))),
            )
        ev["elapsed"] = elapsed
        ev["parameters"] = params.format_map(vals) if params else ""
        ev["commandType"] = "Text"
        ev["commandTimeout"] = 120 if u.app.name == "scheduler" else 30
        ev["newLine"] = "\n"
        ev["commandText"] = sql
        ev["EventId"] = _EF_FAILED if failed else _EF_EXECUTED
        ev["SourceContext"] = _EF_SOURCE
        self._scope(ev, u)
        return self._tail(ev, u)

    def cache(self, u: _Unit, key: str) -> tuple[Event, bool]:
        rng = self.rng
        hit = rng.random() < 0.8
        if hit:
            ev = self._head(T_CACHE_HIT, u, "Debug")
            ev["CacheKey"] = key
        else:
            ev = self._head(T_CACHE_MISS, u, "Debug")
            ev["CacheKey"] = key
            ev["CacheSource"] = "database"
        ev["SourceContext"] = f"{u.app.ns}.Infrastructure.Caching.RedisCacheService"
        self._scope(ev, u)
        return self._tail(ev, u), hit

    def simple(
        self,
        u: _Unit,
        mt: str,
        level: str | None,
        props: Event,
        source: str,
        event_id: dict[str, Any] | None = None,
        x: str | None = None,
        r: str | None = None,
    ) -> Event:
        ev = self._head(mt, u, level) if r is None else self._head_r(mt, r, u, level)
        if x is not None:
            ev = self._with_x(ev, x)
        ev.update(props)
        if event_id is not None:
            ev["EventId"] = event_id
        ev["SourceContext"] = source
        self._scope(ev, u)
        return self._tail(ev, u)

    def retry(self, u: _Unit) -> Event:
        rng = self.rng
        op = rng.choice(
            (
                "GetProductPrice",
                "ReserveStock",
                "PublishOrderPlaced",
                "SendEmail",
                "RefreshExchangeRates",
                "CapturePayment",
            )
        )
        attempt = rng.randrange(1, 4)
        delay = f"00:00:0{min(9, 2 ** (attempt - 1))}.{rng.randrange(1000):03d}0000"
        x = self.exception(u.app) if rng.random() < 0.2 else None
        return self.simple(
            u,
            T_RETRY,
            "Warning",
            {"Operation": op, "Delay": delay, "Attempt": attempt, "MaxAttempts": 5},
            f"{u.app.ns}.Infrastructure.Resilience.RetryPolicy",
            x=x,
        )

    def upstream_timeout(self, u: _Unit) -> Event:
        rng = self.rng
        svc, endpoint = rng.choice(
            (
                ("pricing", "/v1/prices"),
                ("inventory", "/v1/availability"),
                ("search", "/products/_search"),
                ("payments", "/v3/payment_intents"),
            )
        )
        el = round(rng.uniform(5000, 30_050), 4)
        x = self.exception(u.app, "http_timeout") if rng.random() < 0.35 else None
        return self.simple(
            u,
            T_TIMEOUT,
            "Warning",
            {"Service": svc, "Endpoint": endpoint, "Elapsed": el},
            f"{u.app.ns}.Infrastructure.Http.UpstreamClient",
            x=x,
            r=f"{el:.4f}",
        )

    # ---- units of work --------------------------------------------------------------------------

    def new_unit(self) -> list[Event]:
        rng = self.rng
        kind = self.kind_names[_bisect(self.kind_cum, rng.random() * self.kind_cum[-1])]
        if kind in ("web", "api", "auth"):
            return self.request_unit(kind)
        if kind == "worker_message":
            return self.worker_message()
        if kind == "worker_job":
            return self.job_unit("worker", scheduled=False)
        if kind == "billing":
            return self.billing_unit()
        if kind == "billing_webhook":
            return self.request_unit("billing")
        if kind == "notification":
            return self.notification_unit()
        if kind == "scheduler":
            return self.job_unit("scheduler", scheduled=True)
        if kind == "queue_depth":
            return self.queue_depth_unit()
        return self.crash_unit()

    def _unit(self, app_name: str, traced: bool = True) -> _Unit:
        app = self.apps[app_name]
        machine, env, version = app.pick_machine(self.rng)
        u = _Unit(app, machine, env, version, self.rng.randrange(4, 64))
        if traced:
            u.tr = self.hex128()
            u.sp = self.hex64()
        return u

    def _route(self, app_name: str) -> tuple[str, str, str, str, bool]:
        rng = self.rng
        if app_name == "billing":
            if rng.random() < 0.7:
                return "POST", "/webhooks/stripe", "/webhooks/stripe", "Webhooks.Stripe", False
            inv = self.next_invoice - self.skewed(3_000)
            return "GET", f"/api/invoices/INV-{inv}", "/api/invoices/{i}", "Invoices.Get", True
        routes = _ROUTES[app_name]
        method, pattern, _w, endpoint, auth = routes[
            _bisect(self.route_w[app_name], rng.random() * self.route_w[app_name][-1])
        ]
        path = pattern
        if "{" in pattern:
            if "{p}" in pattern:
                path = pattern.replace("{p}", str(self.skewed(_PRODUCTS)))
            elif "{o}" in pattern:
                path = pattern.replace("{o}", str(self.next_order - self.skewed(_RECENT_ORDERS)))
            elif "{c}" in pattern:
                path = pattern.replace("{c}", str(self.skewed(_CUSTOMERS)))
            elif "{s}" in pattern:
                pool = _BRANDS if pattern.startswith("/brands") else _SLUGS
                path = pattern.replace("{s}", rng.choice(pool))
            elif "{k}" in pattern:
                path = pattern.replace("{k}", f"SKU-{self.skewed(_PRODUCTS):06d}")
            elif "{g}" in pattern:  # a customer's cart
                path = pattern.replace("{g}", _stable_guid(self.skewed(_CUSTOMERS)))
        return method, path, pattern, endpoint, auth

    def _status(self, method: str, pattern: str) -> int:
        r = self.rng.random()
        if pattern == "/health":
            return 200 if r < 0.998 else 503
        if r < 0.013:
            return self.rng.choice((500, 500, 500, 502, 503, 504))
        if r < 0.094:
            if pattern.endswith("{o}") or pattern.endswith("{p}"):
                return 404
            return self.rng.choice((400, 401, 403, 404, 404, 409, 422))
        if r < 0.146:
            return 302 if method == "POST" or pattern in ("/", "/checkout") else 304
        if method == "POST":
            return 201 if pattern.startswith("/api") else 200
        return 200

    def request_unit(self, app_name: str) -> list[Event]:
        rng = self.rng
        u = self._unit(app_name)
        app = u.app
        method, path, pattern, endpoint, auth = self._route(app_name)
        status = self._status(method, pattern)
        conns = app.conns[u.machine]
        slot = rng.randrange(len(conns))
        if rng.random() < 0.12:  # a new keep-alive connection replaces an old one
            app.next_conn[u.machine] += 1
            conns[slot] = [app.next_conn[u.machine], 1]
        conn = conns[slot]
        u.conn_id = _kestrel_id(conn[0])
        u.request_id = f"{u.conn_id}:{conn[1]:08X}"
        conn[1] += 1
        u.path = path
        if auth or rng.random() < 0.25:
            u.user_id = self.skewed(_CUSTOMERS)
        events: list[Event] = []
        health = pattern == "/health"
        if not health and rng.random() < 0.24:
            events.append(
                self.simple(
                    u,
                    T_ENDPOINT,
                    "Debug",
                    {"EndpointName": endpoint},
                    "Microsoft.AspNetCore.Routing.EndpointMiddleware",
                    _ENDPOINT_EVENT,
                )
            )
        if auth and rng.random() < 0.45:
            events.append(
                self.simple(
                    u,
                    T_AUTHZ,
                    "Debug",
                    {},
                    "Microsoft.AspNetCore.Authorization.DefaultAuthorizationService",
                    _AUTHZ_EVENT,
                )
            )
        vals = self._sql_vals(u, path)
        sqls = _ROUTE_SQL.get(pattern, [])
        if app_name == "billing":
            sqls = ["order", "insert_payment"] if method == "POST" else ["order"]
        error_x: str | None = None
        failed_sql = status >= 500 and bool(sqls) and rng.random() < 0.3
        if app_name == "auth" and method == "POST" and pattern != "/account/logout":
            for which in sqls:
                events.append(self.ef(u, which, vals))
            ok = status < 400 and rng.random() < 0.85
            name = _user_name(vals["c"])
            ip = (
                f"{rng.choice((10, 172, 192))}.{rng.randrange(256)}.{rng.randrange(256)}."
                f"{rng.randrange(1, 255)}"
            )
            if ok:
                events.append(
                    self.simple(
                        u,
                        T_LOGIN,
                        None,
                        {
                            "UserName": name,
                            "UserId": vals["c"],
                            "ClientIp": ip,
                            "AuthMethod": rng.choice(
                                (
                                    "password",
                                    "password",
                                    "refresh_token",
                                    "authorization_code",
                                    "passkey",
                                )
                            ),
                        },
                        "Shop.Identity.Services.SignInService",
                    )
                )
            else:
                events.append(
                    self.simple(
                        u,
                        T_LOGIN_FAIL,
                        "Warning",
                        {
                            "UserName": name,
                            "ClientIp": ip,
                            "Reason": rng.choice(
                                (
                                    "invalid password",
                                    "invalid password",
                                    "account locked out",
                                    "unknown user",
                                    "email not confirmed",
                                )
                            ),
                        },
                        "Shop.Identity.Services.SignInService",
                    )
                )
        else:
            keys = self._cache_keys(pattern, vals)
            for i, key in enumerate(keys):
                ev, hit = self.cache(u, key)
                events.append(ev)
                if not hit and i < len(sqls):
                    events.append(self.ef(u, sqls[i], vals))
            if not keys or rng.random() < 0.85:
                for which in sqls[len(keys) :]:
                    if failed_sql and which == sqls[-1]:
                        break
                    events.append(self.ef(u, which, vals))
            if failed_sql:
                events.append(self.ef(u, sqls[-1], vals, failed=True))
            if pattern in ("/api/v2/orders", "/checkout") and method == "POST" and status < 400:
                events.append(self.order_placed(u, vals))
        if not health:
            p = rng.random()
            if p < 0.026:
                events.append(self.retry(u))
            elif p < 0.0305:
                events.append(self.upstream_timeout(u))
        ms = self.elapsed(3.0 if health else 14.0, 0.4 if health else 1.1)
        level: str | None = None
        if status >= 500:
            level = "Error"
            error_x = self.exception(app)
        elif status >= 400 and app_name == "api":
            level = "Warning"  # the api's GetLevel maps client errors to Warning
        ev = self._head_r(T_HTTP, f"{ms:.4f}", u, level)
        if error_x is not None:
            ev = self._with_x(ev, error_x)
        ev["RequestMethod"] = method
        ev["RequestPath"] = path
        ev["StatusCode"] = status
        ev["Elapsed"] = ms
        ev["SourceContext"] = _REQUEST_SOURCE
        ev["RequestId"] = u.request_id
        ev["ConnectionId"] = u.conn_id
        if u.user_id is not None:
            ev["UserId"] = u.user_id
        events.append(self._tail(ev, u))
        return events

    def _sql_vals(self, u: _Unit, path: str) -> dict[str, Any]:
        rng = self.rng
        parts = path.rsplit("/", 2)
        o = self.next_order - self.skewed(_RECENT_ORDERS)
        p = self.skewed(_PRODUCTS)
        s = rng.choice(_SLUGS)
        for part in parts:
            if part.isdigit():
                o = p = int(part)
        if "/category/" in path or "/brands/" in path:
            s = parts[-1]
        c = u.user_id if u.user_id is not None else self.skewed(_CUSTOMERS)
        return {
            "o": o,
            "p": p,
            "c": c,
            "s": s,
            "a": c * 3 + 1,
            "n": rng.randrange(1, 40),
            "w": rng.randrange(1, 5),
            "rv": rng.randrange(1, 1 << 31),
            "rv2": rng.randrange(1, 1 << 31),
            "g": self.guid(),
            "now": f"{self.now}.{rng.randrange(10_000_000):07d}+00:00",
            "amount": f"{rng.randrange(500, 90_000) / 100:.2f}",
            "provider": "stripe",
            "ref": f"pi_{self.hex64()}{self.hex64()[:8]}",
            "inv": f"INV-{self.next_invoice}",
            "channel": "email",
            "recipient": "",
            "template": "",
            "email_upper": f"{_user_name(c).upper()}@EXAMPLE.COM",
        }

    def _cache_keys(self, pattern: str, vals: dict[str, Any]) -> list[str]:
        rng = self.rng
        if pattern in ("/health", "/account/logout", "/api/v2/orders", "/checkout"):
            return []
        keys: list[str] = []
        if "{p}" in pattern or pattern == "/cart/items":
            keys.append(f"product:{vals['p']}:v3")
        elif "{o}" in pattern:
            keys.append(f"order:{vals['o']}")
        elif "{c}" in pattern or pattern in ("/cart", "/connect/userinfo"):
            keys.append(f"customer:{vals['c']}")
        elif "{s}" in pattern or pattern in ("/", "/search", "/api/v2/products", "/api/v2/search"):
            keys.append(f"listing:{vals['s']}:page:{rng.randrange(1, 4)}")
        elif "{k}" in pattern:
            keys.append(f"stock:{vals['p']}")
        else:
            keys.append(f"session:{self.hex64()}")
        if rng.random() < 0.1:
            keys.append(
                rng.choice(
                    (
                        "feature-flags",
                        "exchange-rates:EUR",
                        "navigation:menu",
                        "pricing-rules:v12",
                        f"customer:{vals['c']}",
                    )
                )
            )
        return keys

    def order_placed(self, u: _Unit, vals: dict[str, Any]) -> Event:
        rng = self.rng
        self.next_order += 1
        oid = self.next_order
        vals["o"] = oid
        lines = []
        total = 0.0
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            price = rng.randrange(299, 25_000) / 100
            qty = rng.choice((1, 1, 1, 2, 3))
            total += price * qty
            lines.append(
                {
                    "$type": "OrderLine",
                    "Sku": f"SKU-{self.skewed(_PRODUCTS):06d}",
                    "Quantity": qty,
                    "UnitPrice": price,
                }
            )
        order = {
            "$type": "Order",
            "Id": oid,
            "CustomerId": vals["c"],
            "Lines": lines,
            "Total": round(total, 2),
            "Currency": "EUR",
            "ShippingMethod": rng.choice(("Standard", "Standard", "Express", "Pickup")),
        }
        return self.simple(
            u,
            T_ORDER,
            None,
            {"OrderId": oid, "CustomerId": vals["c"], "Order": order},
            f"{u.app.ns}.Orders.OrderService",
        )

    def _received(self, u: _Unit, mtype: str, queue: str) -> Event:
        u.message_id = self.guid()
        return self.simple(
            u,
            T_RECEIVED,
            "Debug",
            {"MessageId": u.message_id, "MessageType": mtype, "QueueName": queue},
            f"{u.app.ns}.Messaging.MessageConsumer",
        )

    def worker_message(self) -> list[Event]:
        rng = self.rng
        u = self._unit("worker")
        mtype, queue, sqls = rng.choice(
            (
                ("OrderPlaced", "orders", ["order", "order_lines", "update_stock"]),
                ("StockChanged", "inventory", ["stock", "update_stock"]),
                ("CustomerUpdated", "customers", ["customer"]),
                ("ProductIndexed", "search", ["product"]),
                ("CartAbandoned", "carts", ["cart"]),
            )
        )
        events = [self._received(u, mtype, queue)]
        vals = self._sql_vals(u, "")
        events.append(self.ef(u, "outbox", vals))
        for which in sqls:
            if rng.random() < 0.3:
                ev, hit = self.cache(u, f"{which}:{vals['p']}")
                events.append(ev)
                if hit:
                    continue
            events.append(self.ef(u, which, vals))
        p = rng.random()
        if p < 0.03:
            events.append(self.retry(u))
        elif p < 0.07:
            events.append(
                self.simple(
                    u,
                    T_UNHANDLED,
                    "Error",
                    {"MessageId": u.message_id, "MessageType": mtype},
                    f"{u.app.ns}.Messaging.MessageConsumer",
                    x=self.exception(u.app),
                )
            )
            return events
        events.append(self.ef(u, "outbox_done", vals))
        return events

    def billing_unit(self) -> list[Event]:
        rng = self.rng
        u = self._unit("billing")
        events = [self._received(u, "PaymentRequested", "payments")]
        vals = self._sql_vals(u, "")
        oid = self.next_order - rng.randrange(1, 50)
        vals["o"] = oid
        events.append(self.ef(u, "order", vals))
        provider = rng.choice(("stripe", "stripe", "stripe", "adyen", "paypal"))
        vals["provider"] = provider
        pay_id = f"pay_{self.hex64()}"
        amount = float(vals["amount"])
        p = rng.random()
        if p < 0.03:
            events.append(self.retry(u))
        if p < 0.03:
            events.append(
                self.simple(
                    u,
                    T_UNHANDLED,
                    "Error",
                    {"MessageId": u.message_id, "MessageType": "PaymentRequested"},
                    f"{u.app.ns}.Messaging.MessageConsumer",
                    x=self.exception(u.app, rng.choice(("http_refused", "http_timeout"))),
                )
            )
            return events
        if p < 0.12:
            events.append(
                self.simple(
                    u,
                    T_PAY_DECLINED,
                    "Warning",
                    {
                        "PaymentId": pay_id,
                        "OrderId": oid,
                        "Provider": provider,
                        "Reason": rng.choice(
                            (
                                "insufficient_funds",
                                "card_declined",
                                "expired_card",
                                "do_not_honor",
                                "fraudulent",
                            )
                        ),
                    },
                    f"{u.app.ns}.Payments.PaymentService",
                )
            )
            return events
        events.append(
            self.simple(
                u,
                T_PAY_OK,
                None,
                {
                    "PaymentId": pay_id,
                    "OrderId": oid,
                    "Amount": amount,
                    "Currency": "EUR",
                    "Provider": provider,
                },
                f"{u.app.ns}.Payments.PaymentService",
            )
        )
        events.append(self.ef(u, "insert_payment", vals))
        self.next_invoice += 1
        vals["inv"] = f"INV-{self.next_invoice}"
        events.append(self.ef(u, "insert_invoice", vals))
        events.append(
            self.simple(
                u,
                T_INVOICE,
                None,
                {"InvoiceId": vals["inv"], "OrderId": oid},
                f"{u.app.ns}.Invoicing.InvoiceService",
            )
        )
        return events

    def notification_unit(self) -> list[Event]:
        rng = self.rng
        u = self._unit("notifications")
        template = rng.choice(
            (
                "OrderConfirmation",
                "OrderShipped",
                "PasswordReset",
                "PaymentReceipt",
                "WelcomeEmail",
                "BackInStock",
            )
        )
        channel = rng.choice(("email", "email", "email", "sms", "push"))
        events = [self._received(u, template, "notifications")]
        c = self.skewed(_CUSTOMERS)
        recipient = (
            f"{_user_name(c)}@example.com"
            if channel == "email"
            else (f"+4477009{c:05d}" if channel == "sms" else f"device:{self.hex64()}")
        )
        ev, hit = self.cache(u, f"template:{template}:{channel}")
        events.append(ev)
        vals = self._sql_vals(u, "")
        vals.update(channel=channel, recipient=recipient, template=template, c=c)
        if not hit:
            events.append(self.ef(u, "customer", vals))
        if rng.random() < 0.03:
            kind = "smtp" if channel == "email" else "http_refused"
            events.append(
                self.simple(
                    u,
                    T_NOTIFY_FAIL,
                    "Error",
                    {"Channel": channel, "MessageId": u.message_id, "Recipient": recipient},
                    f"{u.app.ns}.Delivery.DeliveryService",
                    x=self.exception(u.app, kind),
                )
            )
            return events
        events.append(
            self.simple(
                u,
                T_NOTIFY_OK,
                None,
                {"Channel": channel, "TemplateName": template, "Recipient": recipient},
                f"{u.app.ns}.Delivery.DeliveryService",
            )
        )
        events.append(self.ef(u, "insert_notification", vals))
        return events

    def job_unit(self, app_name: str, scheduled: bool) -> list[Event]:
        rng = self.rng
        u = self._unit(app_name)
        name, cron, sqls = rng.choice(
            (
                ("ExpireStaleCarts", "*/15 * * * *", ["stale_carts"]),
                ("ReindexProducts", "0 * * * *", ["category", "product", "product"]),
                ("SyncExchangeRates", "*/5 * * * *", ["job_run"]),
                ("ReconcilePayments", "30 2 * * *", ["orders_of_customer", "insert_payment"]),
                ("SendAbandonedCartReminders", "0 */2 * * *", ["cart", "customer"]),
            )
        )
        self.next_job += 1
        job_id = f"{name}-{self.next_job}"
        src = f"{u.app.ns}.Jobs.JobRunner"
        events: list[Event] = []
        if scheduled:
            nxt = time.strftime("%Y-%m-%dT%H:00:00.0000000+00:00", time.gmtime(self.now_sec + 3600))
            events.append(
                self.simple(
                    u,
                    T_SCHEDULE,
                    None,
                    {"JobName": name, "CronExpression": cron, "NextRun": nxt},
                    f"{u.app.ns}.Scheduling.CronScheduler",
                )
            )
        events.append(self.simple(u, T_JOB_START, None, {"JobName": name, "JobId": job_id}, src))
        vals = self._sql_vals(u, "")
        for which in sqls * rng.randrange(1, 4):
            events.append(self.ef(u, which, vals))
        el = self.elapsed(800.0, 1.2)
        if rng.random() < 0.08:
            events.append(
                self.simple(
                    u,
                    T_JOB_FAIL,
                    "Error",
                    {"JobName": name, "JobId": job_id, "Elapsed": el},
                    src,
                    x=self.exception(u.app),
                    r=f"{el:.4f}",
                )
            )
        else:
            events.append(
                self.simple(
                    u,
                    T_JOB_DONE,
                    None,
                    {
                        "JobName": name,
                        "JobId": job_id,
                        "ItemsProcessed": rng.randrange(0, 5000),
                        "Elapsed": el,
                    },
                    src,
                    r=f"{el:.4f}",
                )
            )
        return events

    def queue_depth_unit(self) -> list[Event]:
        rng = self.rng
        u = self._unit(rng.choice(("worker", "worker", "billing", "notifications")), traced=False)
        queue = {"worker": "orders", "billing": "payments", "notifications": "notifications"}[
            u.app.name
        ]
        return [
            self.simple(
                u,
                T_QUEUE_DEPTH,
                "Verbose",
                {"QueueName": queue, "QueueDepth": int(rng.expovariate(1 / 40))},
                f"{u.app.ns}.Messaging.QueueMonitor",
            )
        ]

    def crash_unit(self) -> list[Event]:
        rng = self.rng
        u = self._unit(rng.choice(("worker", "web", "api", "notifications")), traced=False)
        fatal = self.simple(u, T_FATAL, "Fatal", {}, f"{u.app.ns}.Program", x=self.exception(u.app))
        started = self.simple(
            u,
            T_STARTED,
            None,
            {"EnvName": u.env, "ContentRoot": f"/app/{u.app.ns}/"},
            "Microsoft.Hosting.Lifetime",
            _LIFETIME_EVENT,
        )
        return [fatal, started]


class _Unit:
    """One unit of work in flight (a request, a message, a job)."""

    __slots__ = (
        "app",
        "conn_id",
        "env",
        "machine",
        "message_id",
        "path",
        "request_id",
        "sp",
        "thread",
        "tr",
        "user_id",
        "version",
    )

    def __init__(self, app: _App, machine: str, env: str, version: str, thread: int) -> None:
        self.app = app
        self.machine = machine
        self.env = env
        self.version = version
        self.thread = thread
        self.tr: str | None = None
        self.sp: str | None = None
        self.request_id: str | None = None
        self.conn_id: str | None = None
        self.path: str | None = None
        self.user_id: int | None = None
        self.message_id: str | None = None


_FIRST = [
    "anna",
    "ben",
    "chloe",
    "david",
    "emma",
    "felix",
    "grace",
    "hugo",
    "iris",
    "jonas",
    "kate",
    "liam",
    "mia",
    "noah",
    "olivia",
    "paul",
    "quinn",
    "rosa",
    "sam",
    "tom",
]
_LAST = [
    "smith",
    "jones",
    "muller",
    "rossi",
    "garcia",
    "dubois",
    "novak",
    "berg",
    "kowalski",
    "silva",
    "jensen",
    "wagner",
    "murphy",
    "costa",
    "weber",
    "nagy",
]


def _user_name(uid: int) -> str:
    return f"{_FIRST[uid % 20]}.{_LAST[(uid // 20) % 16]}{uid}"


def _stable_guid(n: int) -> str:
    h = f"{(n * 0x9E3779B97F4A7C15F39CC0605CEDC835) & ((1 << 128) - 1):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


def _render_exception(chain: list[tuple[str, list[str]]], rng: random.Random, web: bool) -> str:
    """Render like .NET's Exception.ToString(): headers outermost first with `` ---> `` for inner
    exceptions, then stack traces innermost first, separated by "End of inner exception" lines;
    async frames are separated by "End of stack trace from previous location"."""
    lines = [chain[0][0]]
    lines.extend(" ---> " + head for head, _ in chain[1:])
    for depth in range(len(chain) - 1, -1, -1):
        frames = list(chain[depth][1])
        frames = frames[: rng.randrange(2, 6) if depth == 0 else rng.randrange(1, 5)]
        if depth == 0 and web:
            frames = frames + _ASPNET_FRAMES[: rng.randrange(1, 4)]
        for i, frame in enumerate(frames):
            if i and i % 2 == 0 and rng.random() < 0.5:
                lines.append("--- End of stack trace from previous location ---")
            lines.append(frame)
        if depth:
            lines.append("   --- End of inner exception stack trace ---")
    return "\n".join(lines)


def _accumulate(values: Iterable[float]) -> Iterator[float]:
    total = 0.0
    for v in values:
        total += v
        yield total


def _bisect(cum: list[float], x: float) -> int:
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] > x:
            hi = mid
        else:
            lo = mid + 1
    return lo


# -------------------------------------------------------------------------------------------------
# Public API


def generate(n: int, seed: int) -> Iterator[bytes]:
    """Yield ``n`` CLEF lines (``bytes``, each ending in ``b"\\n"``) for ``seed``.

    The output is a pure function of ``(n, seed)``; a prefix of a longer corpus with the same seed
    is the shorter corpus.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    gen = _Generator(seed)
    rng = gen.rng
    clock = random.Random(seed ^ 0x5EC0FA57)  # separate stream: timing never shifts content
    dumps = orjson.dumps
    expo = clock.expovariate
    units: list[list[Event]] = []
    for _ in range(_CONCURRENCY):
        unit = gen.new_unit()
        unit.reverse()
        units.append(unit)

    ticks = _START_SECONDS * _TICKS_PER_SECOND + clock.randrange(_TICKS_PER_SECOND)
    last_sec = -1
    prefix = ""
    rate = _MEAN_RATE
    burst_left = 0
    two_pi_over_period = 2 * math.pi / _RATE_PERIOD_SECONDS
    start_sec = _START_SECONDS
    for i in range(n):
        if not i & 255:
            phase = (ticks / _TICKS_PER_SECOND - start_sec) * two_pi_over_period
            rate = _MEAN_RATE * (1.0 + 0.5 * math.sin(phase))
            if burst_left > 0:
                rate *= 8.0
        if burst_left > 0:
            burst_left -= 1
        elif clock.random() < _BURST_PROBABILITY:
            burst_left = clock.randrange(1_000, 6_000)
        ticks += int(expo(rate) * _TICKS_PER_SECOND) + 1
        sec, frac = divmod(ticks, _TICKS_PER_SECOND)
        if sec != last_sec:
            last_sec = sec
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))
            gen.now_sec = sec
            gen.now = prefix
        slot = rng.randrange(_CONCURRENCY)
        unit = units[slot]
        ev = unit.pop()
        if not unit:
            unit = gen.new_unit()
            unit.reverse()
            units[slot] = unit
        ev["@t"] = f"{prefix}.{frac:07d}Z"
        yield dumps(ev, option=orjson.OPT_APPEND_NEWLINE)


def write_corpus(path: str | os.PathLike[str], n: int, seed: int) -> Path:
    """Write ``n`` events for ``seed`` to ``path`` (atomically: temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            _write_lines(f, generate(n, seed))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def corpus_path(n: int, seed: int, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """Return the cached corpus for ``(n, seed)``, generating it first if needed."""
    base = Path(data_dir) if data_dir is not None else DATA_DIR
    path = base / f"clef-v{GENERATOR_VERSION}-n{n}-s{seed}.ndjson"
    if not path.exists():
        write_corpus(path, n, seed)
    return path


def _write_lines(f: BinaryIO, lines: Iterable[bytes]) -> None:
    buf: list[bytes] = []
    for line in lines:
        buf.append(line)
        if len(buf) >= 4096:
            f.write(b"".join(buf))
            buf.clear()
    if buf:
        f.write(b"".join(buf))


def corpus_stats(lines: Iterable[bytes]) -> dict[str, Any]:
    """Shape of a corpus: sizes, level / application / template / status mixes, ids, time span."""
    n = 0
    total = 0
    sizes: list[int] = []
    levels: Counter[str] = Counter()
    apps: Counter[str] = Counter()
    templates: Counter[str] = Counter()
    template_bytes: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    names: set[str] = set()
    traces: set[str] = set()
    paths: set[str] = set()
    exceptions = 0
    exception_chars = 0
    first_t = last_t = ""
    for line in lines:
        n += 1
        size = len(line)
        total += size
        sizes.append(size)
        ev = orjson.loads(line)
        levels[ev.get("@l", "Information")] += 1
        apps[ev.get("Application", "?")] += 1
        mt = ev["@mt"]
        templates[mt] += 1
        template_bytes[mt] += size
        names.update(ev)
        if "@x" in ev:
            exceptions += 1
            exception_chars += len(ev["@x"])
        if "@tr" in ev:
            traces.add(ev["@tr"])
        if mt == T_HTTP:
            statuses[f"{ev['StatusCode'] // 100}xx"] += 1
            paths.add(ev["RequestPath"])
        if not first_t:
            first_t = ev["@t"]
        last_t = ev["@t"]
    sizes.sort()

    def pct(c: Counter[str], d: int) -> dict[str, float]:
        return {k: round(100.0 * v / d, 3) for k, v in c.most_common()}

    return {
        "events": n,
        "bytes": total,
        "bytes_per_event": round(total / n, 1) if n else 0.0,
        "p50_bytes": sizes[n // 2] if n else 0,
        "p99_bytes": sizes[min(n - 1, n * 99 // 100)] if n else 0,
        "levels_pct": pct(levels, n),
        "applications_pct": pct(apps, n),
        "templates": len(templates),
        "templates_pct": pct(templates, n),
        "template_avg_bytes": {k: round(template_bytes[k] / v) for k, v in templates.items()},
        "http_status_pct": pct(statuses, sum(statuses.values()) or 1),
        "http_requests": sum(statuses.values()),
        "distinct_request_paths": len(paths),
        "distinct_trace_ids": len(traces),
        "property_names": len(names),
        "exceptions": exceptions,
        "exception_mean_chars": round(exception_chars / exceptions) if exceptions else 0,
        "first_t": first_t,
        "last_t": last_t,
    }


def _read_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        yield from f


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write N seeded, realistic CLEF events (Serilog CompactJsonFormatter output) "
        "to stdout or a file. The output depends only on N, SEED and the generator version "
        f"(currently {GENERATOR_VERSION}).",
    )
    parser.add_argument("n", type=int, metavar="N", help="number of events")
    parser.add_argument(
        "seed", type=int, metavar="SEED", nargs="?", default=1, help="random seed (default 1)"
    )
    parser.add_argument("-o", "--output", type=Path, help="write to this file instead of stdout")
    parser.add_argument(
        "--cached",
        action="store_true",
        help="generate into bench/.data/ (once) and print the file's path",
    )
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print the corpus' shape as JSON to stderr (and time generation)",
    )
    args = parser.parse_args(argv)
    if args.n < 0:
        parser.error("N must be >= 0")

    t0 = time.perf_counter()
    if args.cached:
        path = corpus_path(args.n, args.seed)
        print(path)
    elif args.output is not None:
        path = write_corpus(args.output, args.n, args.seed)
    else:
        path = None
        out = sys.stdout.buffer
        try:
            _write_lines(out, generate(args.n, args.seed))
            out.flush()
        except BrokenPipeError:  # e.g. piped into `head`: stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    elapsed = time.perf_counter() - t0
    if args.stats:
        lines: Iterable[bytes] = _read_lines(path) if path else generate(args.n, args.seed)
        stats = corpus_stats(lines)
        stats["generation_seconds"] = round(elapsed, 3)
        stats["generation_events_per_second"] = round(args.n / elapsed) if elapsed else None
        sys.stderr.write(orjson.dumps(stats, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
