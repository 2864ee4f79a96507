"""Runtime settings, all read from ``LOYALTY_*`` environment variables."""

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from loyalty.ratelimit import parse_rate


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LOYALTY_", extra="ignore")

    database_url: str = "sqlite+aiosqlite:///./loyalty.db"
    secret_key: str | None = Field(
        default=None,
        min_length=32,
        description="Signs member tokens; when unset a key is generated once and kept in the DB.",
    )
    debug: bool = False
    log_format: Literal["json", "text"] | None = Field(
        default=None, description="json or text; unset: text on a terminal, else json."
    )
    page_size_max: int = Field(default=100, ge=1, le=1000)
    member_token_ttl_seconds: int = Field(default=3600, ge=60)
    db_pool_size: int = Field(default=20, ge=1)
    db_pgbouncer: bool = Field(
        default=False, description="Connect through a PgBouncer older than 1.21 (transaction mode)."
    )
    listen_database_url: str | None = Field(
        default=None,
        description="PostgreSQL URL of the LISTEN connection for live updates; unset: the "
        "database URL. Point it at PostgreSQL itself when that URL goes through a PgBouncer "
        "in transaction mode, which cannot LISTEN.",
    )
    sqlite_busy_timeout_seconds: float = Field(default=30.0, gt=0)
    max_query_depth: int = Field(default=10, ge=2)
    max_aliases: int = Field(default=30, ge=1)
    max_tokens: int = Field(default=2000, ge=100)
    max_fields: int = Field(
        default=1000, ge=10, description="Fields a document may select, fragments expanded."
    )
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_json_depth: int = Field(
        default=32, ge=4, description="How deeply a request body's JSON may nest."
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    rate_limit_member: str = "120/minute"
    redis_url: str | None = Field(default=None, description="Shares rate-limit counts.")
    redis_key_prefix: str = "loyalty"
    webhook_allow_http: bool = Field(
        default=False, description="Allow http:// and loopback/private webhook receivers."
    )
    webhook_max_attempts: int = Field(default=10, ge=1, description="Then a delivery FAILS.")
    webhook_retry_base_seconds: float = Field(
        default=5.0, ge=0, description="First retry's delay; doubles per attempt, jittered."
    )
    webhook_retry_max_seconds: float = Field(default=3600.0, ge=0)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    webhook_disable_after_hours: float = Field(
        default=72.0, gt=0, description="An endpoint failing this long is disabled."
    )
    webhook_delivery_retention_days: int = Field(
        default=30, ge=1, description="Delivered deliveries are kept this long (retention job)."
    )

    @field_validator("rate_limit_member")
    @classmethod
    def _valid_rate(cls, value: str) -> str:
        parse_rate(value)
        return value


@lru_cache
def get_settings() -> Settings:
    return Settings()
