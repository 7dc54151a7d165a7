"""Server configuration: one frozen model, filled by the CLI from flags and TUSSERVER_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from storage_backends.azure.layout import UNCOMMITTED_LIFETIME
from tusserver.coordination.hooks.events import DEFAULT_ENABLED, HookEvent
from tusserver.coordination.redis_url import check_redis_url
from tusserver.protocol.urls import TrustedProxies

__all__ = ["Settings"]

MiB = 1024 * 1024
GiB = 1024 * MiB


# hide_input_in_errors: a refused setting must not print the secrets beside it (a JWT key, an Azure account key).
class Settings(BaseModel, frozen=True, hide_input_in_errors=True):
    """Everything that configures a tusserver app; the defaults are the embedded setup.

    Attributes:
        host: interface to listen on (CLI only).
        port: TCP port (CLI only).
        base_path: URL path of the creation endpoint; uploads live below it.
        api_path: URL path of the status API (`<api_path>/uploads`, `<api_path>/openapi.json`); None serves none.
        data_dir: where upload files and the state database go.
        max_size: the largest upload in bytes (Tus-Max-Size), None for no limit.
        cors_origins: origins allowed by CORS; "*" allows any.
        cors_expose_headers: response headers browsers may read besides tus's own (those hooks add).
        trusted_proxies: IPs or CIDR networks whose Forwarded / X-Forwarded-* headers are believed;
            "*" trusts every peer.
        lock_timeout: seconds a request waits for a busy upload before 423 Locked.
        read_timeout: seconds a request body may stall before the server stops reading.
        min_body_rate: bytes per second a request body must average, 0 for no bound: a body starts with
            `read_timeout` seconds of allowance, waiting for the client uses it up, and every `min_body_rate`
            bytes received give one second back (never past `read_timeout`); when none is left, the body
            ends as on a read timeout. Only waiting counts, not time the server spends storing.
        header_timeout: seconds a connection may take to send a request line and headers, from its opening
            or from a later head's first byte; a slow head gets 408, a silent connection is closed. Shorter
            than nginx's 60 s: real clients send a head in one packet, and a slot held by a client that
            sends nothing is a slot other clients cannot have (see also `limit_concurrency`).
        checkpoint_size: a PATCH records its progress after this many bytes (synced first with fsync), so
            a crash mid-PATCH loses at most this much (or `checkpoint_interval` seconds) of it.
        checkpoint_interval: seconds after which a PATCH records its progress, whatever it received.
        fsync: sync data and state to disk before acknowledging (survives power loss).
        require_tus_resumable_on_head: answer HEAD without Tus-Resumable with 412 (PROTOCOL.md item 4).
        log_level: Python logging level name for the CLI.
        server: the ASGI server the CLI runs: "uvicorn" or "granian".
        limit_concurrency: the most connections served at once, so that memory stays bounded however many
            clients connect: at the limit uvicorn first closes the connections idle longest (kept alive, or
            still without a complete head), then answers further requests 503; granian accepts no more until
            one closes (CLI only).
        downloads: serve GET downloads of finished uploads.
        ui: serve the upload page (Uppy's Dashboard; `tusserver.ui`) at `ui_path`; off by default, and so in an
            app that mounts this one unless asked.
        ui_path: URL path of the upload page; its files are below it.
        max_concat_parts: the most partial uploads one final upload may list (concatenation); bounds
            how many bytes one small POST can make the server write.
        expiration: seconds after which an unfinished upload expires, counted from its creation or its
            last successful PATCH; None never expires (and drops the expiration extension).
        retention: seconds a finished upload is kept after completion; None keeps it until deleted. Partial
            uploads (concatenation) expire `expiration` after completion instead: finals copy their bytes.
        tombstone_retention: seconds the record of an upload whose bytes are removed (terminated, expired, or
            rejected and swept) is kept, so the status API can say what became of it; None removes it with them.
        cleanup_interval: seconds between the server's own sweeps of expired uploads; None for no sweep
            (run `tusserver cleanup` from cron instead).
        redis_url: keep upload state and locks in Redis (redis://, rediss:// or unix://, or through
            Redis Sentinel: redis+sentinel://host:port[,host:port...]/service_name[/db]), shared by
            every instance; None keeps them in this process (SQLite state, in-process locks).
        redis_prefix: the prefix of every Redis key.
        lock_ttl: seconds a Redis lock outlives its holder's last renewal (a crashed instance's locks).
        storage: where upload bytes go: "local" files under data_dir, "s3" or "azure".
        s3_bucket: the existing S3 bucket (required with storage "s3").
        s3_prefix: prepended to every object key.
        s3_endpoint: URL of an S3-compatible store (path-style addressing); None for AWS.
        s3_region: the bucket's region; None takes it from the AWS configuration.
        s3_part_size: preferred part size; grows for uploads that would need over 10,000 parts.
        s3_deferred_part_size: part size of deferred-length uploads (which caps them at 10,000 parts).
        s3_part_concurrency: parts one request uploads at once.
        azure_container: the existing Azure Blob container (required with storage "azure").
        azure_prefix: prepended to every blob name.
        azure_connection_string: the storage account's connection string (an account key or SAS in it).
        azure_account_url: the account's blob endpoint, instead of a connection string: with
            `azure_account_key`, `azure_sas_token`, or neither for DefaultAzureCredential (Entra ID).
        azure_account_key: the account's shared key (with `azure_account_url`).
        azure_sas_token: a SAS token for the account or container (with `azure_account_url`).
        azure_block_size: preferred block size; grows for uploads that would need over 50,000 blocks.
        azure_deferred_block_size: block size of deferred-length uploads (which caps them at 50,000 blocks).
        azure_block_concurrency: blocks one request stages at once.
        buffer_budget: bytes all requests together may hold in buffered parts (object stores).
        storage_timeout: seconds the object store may take to connect, to answer a request's head or
            between two reads of an answer; each call's whole deadline adds time for its bytes (at
            1 MiB/s). A call past it ends the request with 503 and Retry-After, and frees the upload.
        hooks_module: a Python module (`package.module`) whose async functions named after events
            (`pre_create`, `post_finish`, ...) are in-process hooks.
        hooks_http: the URL every enabled event is POSTed to, in tusd's JSON format.
        hooks_http_forward_headers: client request headers copied onto each HTTP hook request.
        hooks_http_timeout: seconds one HTTP hook attempt may take.
        hooks_http_retry: how often a failed HTTP hook is tried again.
        hooks_http_backoff: seconds between HTTP hook attempts.
        hooks_dir: a directory of executables named after events (tusd's file hooks).
        hooks_enabled_events: the events sent; tusd's default is every event but pre-finish and
            pre-terminate.
        hooks_progress_interval: seconds between post-receive events of one PATCH.
        hooks_max_age: seconds post-create, post-finish and post-terminate are tried again (with a growing
            backoff) before an undelivered one is dropped.
        auth_jwt_secret: the HS256 key bearer tokens are signed with (at least 32 bytes); authorization on.
        auth_jwt_public_key: a PEM file with the public key (RSA: RS256..., EC: ES256...) tokens are signed with.
        auth_jwks_url: where the token issuer publishes its keys (a JWKS, by `kid`); fetched when first needed,
            again for an unknown `kid` (at most every 30 s) and every 10 min.
        auth_jwt_audience: the `aud` a token must carry; None accepts tokens without one only.
        auth_jwt_issuer: the `iss` a token must carry; None checks none.
        auth_admins: principals (a token's `sub`, or a pre-access hook's) that reach every upload.
        auth_admin_claim: the claim that makes a token's principal an admin: `NAME=VALUE` (the claim is VALUE,
            or a list holding it; NAME may be a dotted path into nested claims) or `NAME` (the claim is true).
        metrics_path: URL path of the Prometheus metrics (`tusserver_*`); None serves none.
        shutdown_timeout: seconds running requests may take to finish once SIGTERM asked the server to stop;
            then their bodies end as on a disconnect (bytes stored, offsets recorded, locks released) (CLI only).
        log_format: "text" lines, or "json": one object per line (CLI only).
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    base_path: str = "/files/"
    api_path: str | None = "/api"
    data_dir: Path = Path("data")
    max_size: int | None = Field(default=None, ge=0)
    cors_origins: tuple[str, ...] = ("*",)
    cors_expose_headers: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()
    lock_timeout: float = Field(default=10.0, gt=0)
    read_timeout: float = Field(default=60.0, gt=0)
    min_body_rate: int = Field(default=1024, ge=0)
    header_timeout: float = Field(default=10.0, gt=0)
    checkpoint_size: int = Field(default=64 * MiB, ge=1)
    checkpoint_interval: float = Field(default=10.0, gt=0)
    fsync: bool = False
    require_tus_resumable_on_head: bool = True
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    server: Literal["uvicorn", "granian"] = "uvicorn"
    limit_concurrency: int = Field(default=1024, ge=1)
    downloads: bool = True
    ui: bool = False
    ui_path: str = "/"
    max_concat_parts: int = Field(default=100, ge=1, le=1000)  # 1000: the Upload-Concat parser's own bound
    expiration: float | None = Field(default=7 * 86400, gt=0)
    retention: float | None = Field(default=None, gt=0)
    tombstone_retention: float | None = Field(default=7 * 86400, gt=0)
    cleanup_interval: float | None = Field(default=None, gt=0)
    redis_url: str | None = None
    redis_prefix: str = "tus:"
    lock_ttl: float = Field(default=10.0, gt=0)
    storage: Literal["local", "s3", "azure"] = "local"
    s3_bucket: str | None = None
    s3_prefix: str = ""
    s3_endpoint: str | None = None
    s3_region: str | None = None
    s3_part_size: int = Field(default=8 * MiB, ge=5 * MiB, le=5 * GiB)
    s3_deferred_part_size: int = Field(default=16 * MiB, ge=5 * MiB, le=5 * GiB)
    s3_part_concurrency: int = Field(default=4, ge=1, le=64)
    azure_container: str | None = None
    azure_prefix: str = ""
    azure_connection_string: str | None = Field(default=None, repr=False)
    azure_account_url: str | None = None
    azure_account_key: str | None = Field(default=None, repr=False)
    azure_sas_token: str | None = Field(default=None, repr=False)
    azure_block_size: int = Field(default=8 * MiB, ge=MiB, le=4000 * MiB)
    azure_deferred_block_size: int = Field(default=16 * MiB, ge=MiB, le=4000 * MiB)
    azure_block_concurrency: int = Field(default=4, ge=1, le=64)
    buffer_budget: int = Field(default=256 * MiB, ge=5 * MiB)
    storage_timeout: float = Field(default=30.0, gt=0)
    hooks_module: str | None = None
    hooks_http: str | None = None
    hooks_http_forward_headers: tuple[str, ...] = ()
    hooks_http_timeout: float = Field(default=15.0, gt=0)
    hooks_http_retry: int = Field(default=3, ge=0)
    hooks_http_backoff: float = Field(default=1.0, ge=0)
    hooks_dir: Path | None = None
    hooks_enabled_events: tuple[HookEvent, ...] = DEFAULT_ENABLED
    hooks_progress_interval: float = Field(default=1.0, gt=0)
    hooks_max_age: float = Field(default=86400.0, gt=0)
    auth_jwt_secret: str | None = Field(default=None, repr=False)
    auth_jwt_public_key: Path | None = None
    auth_jwks_url: str | None = None
    auth_jwt_audience: str | None = None
    auth_jwt_issuer: str | None = None
    auth_admins: tuple[str, ...] = ()
    auth_admin_claim: str | None = None
    metrics_path: str | None = "/metrics"
    shutdown_timeout: float = Field(default=30.0, ge=0)
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _storage_configured(self) -> Settings:
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError("--storage s3 needs --s3-bucket")
        if self.storage == "azure":
            self._azure_configured()
        return self

    def _azure_configured(self) -> None:
        if not self.azure_container:
            raise ValueError("--storage azure needs --azure-container")
        if (self.azure_connection_string is None) == (self.azure_account_url is None):
            raise ValueError("--storage azure needs --azure-connection-string or --azure-account-url (one of them)")
        if self.azure_connection_string is not None and (self.azure_account_key or self.azure_sas_token):
            raise ValueError("--azure-account-key and --azure-sas-token go with --azure-account-url")
        # Azure drops uncommitted blocks about a week after a blob's last Put Block: an unfinished upload that
        # rests longer would lose its bytes while its record still counts them.
        if self.expiration is None or self.expiration > UNCOMMITTED_LIFETIME:
            raise ValueError(
                "--storage azure needs --expiration of at most 7d: Azure drops the uncommitted blocks of an "
                "unfinished upload after about 7 days"
            )

    @model_validator(mode="after")
    def _auth_configured(self) -> Settings:
        keys = [self.auth_jwt_secret, self.auth_jwt_public_key, self.auth_jwks_url]
        if sum(key is not None for key in keys) > 1:
            raise ValueError("--auth-jwt-secret, --auth-jwt-public-key and --auth-jwks-url exclude each other")
        token_options = {"--auth-jwt-audience": self.auth_jwt_audience, "--auth-jwt-issuer": self.auth_jwt_issuer}
        token_options["--auth-admin-claim"] = self.auth_admin_claim
        for flag, value in token_options.items():
            if value is not None and all(key is None for key in keys):
                raise ValueError(f"{flag} needs --auth-jwt-secret, --auth-jwt-public-key or --auth-jwks-url")
        # RFC 7518 §3.2: an HS256 key at least as long as the hash; a shorter one is a guessable password.
        if self.auth_jwt_secret is not None and len(self.auth_jwt_secret.encode()) < 32:
            raise ValueError("--auth-jwt-secret must be at least 32 bytes long (e.g. openssl rand -hex 32)")
        if self.auth_jwks_url is not None and not self.auth_jwks_url.startswith(("https://", "http://")):
            raise ValueError("--auth-jwks-url must be an http(s) URL")
        return self

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if value is not None:
            check_redis_url(value)  # ValueError: an unknown scheme, or a malformed Sentinel URL
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        TrustedProxies.parse(value)  # raises ValueError on an entry that is no IP, network or "*"
        return value

    @field_validator("base_path")
    @classmethod
    def _slashed(cls, value: str) -> str:
        # "/files" and "files/" both mean "/files/": uploads are always one segment below it.
        return "/" + value.strip("/") + "/" if value.strip("/") else "/"

    @field_validator("api_path")
    @classmethod
    def _api_path(cls, value: str | None) -> str | None:
        # "api/" and "/api" both mean "/api". Not the root: its paths would be taken for uploads' with base "/".
        if value is not None and not value.strip("/"):
            raise ValueError("--api-path must name a path of its own, e.g. /api (or off)")
        return None if value is None else "/" + value.strip("/")

    @field_validator("metrics_path")
    @classmethod
    def _metrics_path(cls, value: str | None) -> str | None:
        return None if value is None else "/" + value.strip("/")

    @field_validator("ui_path")
    @classmethod
    def _ui_path(cls, value: str) -> str:
        return "/" + value.strip("/") + "/" if value.strip("/") else "/"

    @model_validator(mode="after")
    def _ui_apart(self) -> Settings:
        # The page answers GET below ui_path, before the routes: it must not hide the uploads or the status API.
        taken = [self.base_path] + ([] if self.api_path is None else [self.api_path + "/"])
        if self.ui and any(self.ui_path.startswith(path) for path in taken):
            raise ValueError("--ui-path must differ from --base-path and --api-path, and not be below them")
        return self

    @model_validator(mode="after")
    def _api_apart(self) -> Settings:
        # "/files/uploads" would be the upload with id "uploads": the API must not be the upload collection.
        if self.api_path is not None and self.api_path + "/" == self.base_path:
            raise ValueError("--api-path must differ from --base-path")
        return self
