"""The typed model of infra/stack.yaml: every section and key typed, unknown keys rejected.

`load_declaration` reads the file, applies the overrides of one environment and validates the
result as a whole (every environment's result, so a typo in `environments.aws` fails locally too).
A YAML syntax error names the file and line; every missing, unknown or mistyped key is named at
once, with its line. To add a section: write a `Section` subclass below and add a field of that
type to `StackDeclaration` (its name is the YAML key); nothing else reads the schema.
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sales_cdc.settings import ENVIRONMENTS, SettingsError


class Section(BaseModel):
    """One section of stack.yaml: strict types, no unknown keys."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TableSection(Section):
    name: str
    key: str
    billing_mode: Literal["PAY_PER_REQUEST", "PROVISIONED"]
    stream_view_type: Literal["NEW_AND_OLD_IMAGES", "NEW_IMAGE", "OLD_IMAGE", "KEYS_ONLY"]
    point_in_time_recovery: bool


class StreamSection(Section):
    name: str
    shard_count: int = Field(ge=1)
    retention_hours: int = Field(ge=24, le=8760)


class PipeSection(Section):
    name: str
    starting_position: Literal["TRIM_HORIZON", "LATEST"]
    batch_size: int = Field(ge=1, le=10000)
    maximum_batching_window_seconds: int = Field(ge=0, le=300)
    partition_key: str
    # Pipes API (PipeSourceDynamoDBStreamParameters): -1 means infinite for both.
    maximum_retry_attempts: int = Field(ge=-1, le=10000)
    maximum_record_age_seconds: int = Field(ge=-1, le=604800)
    on_partial_batch_item_failure: Literal["AUTOMATIC_BISECT"] | None
    dead_letter_queue: str
    dead_letter_retention_seconds: int = Field(ge=60, le=1209600)


class TransformSection(Section):
    function_name: str
    source_dir: str
    handler: str
    runtime: str
    memory_mb: int = Field(ge=128, le=10240)
    timeout_seconds: int = Field(ge=1, le=900)
    artifact_prefix: str


class DeliverySection(Section):
    name: str
    prefix: str
    error_output_prefix: str
    compression: Literal["UNCOMPRESSED", "GZIP", "ZIP", "Snappy", "HADOOP_SNAPPY"]
    buffering_size_mb: int = Field(ge=1, le=128)
    buffering_interval_seconds: int = Field(ge=0, le=900)
    processor_buffer_size_mb: int = Field(ge=1, le=3)
    processor_buffer_interval_seconds: int = Field(ge=0, le=900)
    processor_retries: int = Field(ge=0, le=300)
    dynamic_partitioning_retry_seconds: int = Field(ge=0, le=7200)
    log_group: str
    log_stream: str
    log_retention_days: int = Field(ge=1)


class LakeSection(Section):
    bucket: str
    raw_prefix: str
    errors_prefix: str
    errors_archive_prefix: str
    curated_prefix: str
    athena_results_prefix: str


class CatalogSection(Section):
    database: str
    raw_table: str
    crawler: str
    update_behavior: Literal["UPDATE_IN_DATABASE", "LOG"]
    delete_behavior: Literal["LOG", "DELETE_FROM_DATABASE", "DEPRECATE_IN_DATABASE"]


class AthenaSection(Section):
    workgroup: str
    bytes_scanned_cutoff_per_query: int = Field(ge=10_000_000)


class RolesSection(Section):
    pipe: str
    firehose: str
    transform: str
    crawler: str


class SchedulesSection(Section):
    generator_cron: str
    generator_running: bool
    crawler_cron: str
    crawler_running: bool
    reconcile_cron: str
    reconcile_running: bool


class FreshnessSection(Section):
    landing_minutes: int = Field(ge=1)


class LandingSection(Section):
    error_rate_threshold: float = Field(ge=0, le=1)
    sensor_interval_seconds: int = Field(ge=1)
    max_objects_per_tick: int = Field(ge=1)


class AnalyticsSection(Section):
    partitions_start: dt.date
    sensor_interval_seconds: int = Field(default=30, ge=1)

    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class RuntimeSection(Section):
    checkpoint_table: str


class TeardownSection(Section):
    require_confirmation: bool


class GeneratorSection(Section):
    history_days: int = Field(ge=0)
    history_orders_per_day: int = Field(ge=0)


class MaintenanceSection(Section):
    cron: str
    running: bool
    snapshot_retention_hours: int = Field(ge=1)
    retain_last_snapshots: int = Field(ge=1)


class StackDeclaration(Section):
    """infra/stack.yaml after one environment's overrides: the whole stack."""

    table: TableSection
    stream: StreamSection
    pipe: PipeSection
    transform: TransformSection
    delivery: DeliverySection
    lake: LakeSection
    catalog: CatalogSection
    athena: AthenaSection
    roles: RolesSection
    schedules: SchedulesSection
    freshness: FreshnessSection
    landing: LandingSection
    analytics: AnalyticsSection
    runtime: RuntimeSection
    teardown: TeardownSection
    maintenance: MaintenanceSection
    generator: GeneratorSection


# -- loading -----------------------------------------------------------------------------------


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with `override` applied key by key (nested mappings merged)."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _key_lines(node: yaml.Node, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    """The 1-based line of every mapping key, by its path."""
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, str(key.value))
            lines[child] = key.start_mark.line + 1
            lines.update(_key_lines(value, child))
    return lines


_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    text = path.read_text()
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()  # one pass: the node tree gives the key lines
            declared = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise SettingsError(
            f"{where}: YAML syntax error: {problem}. Fix the file (the stack is not loaded)."
        ) from exc
    if not isinstance(declared, dict):
        raise SettingsError(f"{path}: the stack declaration must be a mapping of sections.")
    return declared, _key_lines(node) if node is not None else {}


def _problems(
    declared: dict[str, Any], lines: dict[tuple[str, ...], int], path: Path
) -> dict[str, str]:
    """Every problem of every environment's declaration: {location: message}."""
    problems: dict[str, str] = {}
    environments = declared.get("environments") or {}
    if not isinstance(environments, dict):
        problems[f"{path}:{lines.get(('environments',), '?')}: environments"] = (
            "must map an environment (local, aws) to its overrides"
        )
        environments = {}
    for env in environments:
        if env not in ENVIRONMENTS:
            line = lines.get(("environments", str(env)), "?")
            problems[f"{path}:{line}: environments.{env}"] = (
                f"unknown environment (expected one of {', '.join(ENVIRONMENTS)})"
            )
    base = {k: v for k, v in declared.items() if k != "environments"}
    for env in ENVIRONMENTS:
        overrides = environments.get(env) or {}
        if not isinstance(overrides, dict):
            problems[f"{path}:{lines.get(('environments', env), '?')}: environments.{env}"] = (
                "must be a mapping of section overrides"
            )
            continue
        try:
            StackDeclaration.model_validate(merge(base, overrides))
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(str(part) for part in error["loc"])
                key = ".".join(loc)
                # Point at the override when the environment set the key, else at the base file.
                line = lines.get(("environments", env, *loc)) or lines.get(loc)
                if line is None:  # a missing key: the line of its section
                    line = lines.get(loc[:-1], "?")
                origin = f"environments.{env}." if ("environments", env, *loc) in lines else ""
                message = error["msg"]
                if error["type"] == "missing":
                    message = "missing (required)"
                elif error["type"] == "extra_forbidden":
                    message = "unknown key (not part of the stack declaration)"
                elif "input" in error and error["type"] != "model_type":
                    message = f"{message} (got {error['input']!r})"
                where = f"{path}:{line}" if line != "?" else str(path)
                problems.setdefault(f"{where}: {origin}{key}", message)
    return problems


def load_declaration(env: str, path: Path) -> dict[str, Any]:
    """The validated declaration of `env` as plain data (sections of str/int/bool/float)."""
    if not path.exists():
        raise SettingsError(
            f"SALES_CDC_INFRA_DIR={str(path.parent)!r} has no stack.yaml. "
            "Unset SALES_CDC_INFRA_DIR to use the repository's infra/ folder."
        )
    stat = path.stat()
    # Several modules load it; one validation per version of the file (a copy per caller).
    return copy.deepcopy(_validated(env, str(path.resolve()), stat.st_mtime_ns, stat.st_size))


@functools.lru_cache(maxsize=32)
def _validated(env: str, resolved: str, mtime_ns: int, size: int) -> dict[str, Any]:
    path = Path(resolved)
    declared, lines = _parse(path)
    problems = _problems(declared, lines, path)
    if problems:
        listed = "\n".join(f"  {where}: {message}" for where, message in sorted(problems.items()))
        raise SettingsError(
            f"{path} is not a valid stack declaration ({len(problems)} problem(s)); "
            f"fix these and load again (nothing was created):\n{listed}"
        )
    environments = declared.get("environments") or {}
    base = {k: v for k, v in declared.items() if k != "environments"}
    model = StackDeclaration.model_validate(merge(base, environments.get(env) or {}))
    return model.model_dump(mode="json")
