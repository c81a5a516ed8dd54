"""The consumer's configuration: one TOML file written by its role, plus `CAPILLARY_*` overrides.

Parsed once at start into `ConsumerConfig`. Anything wrong fails there, naming the field and the
reason, so a worker with a bad config never takes a message. AWS endpoints are not configured
here: boto3 reads the standard `AWS_ENDPOINT_URL*` variables itself.

Environment overrides use the field name in upper case: `CAPILLARY_QUEUE_URL`,
`CAPILLARY_ENGINE_TIMEOUT_S`, `CAPILLARY_ENGINE_NORMAL`; fields of the `[pcgr]` and `[summary]`
tables take their table as a prefix: `CAPILLARY_PCGR_RELEASE`, `CAPILLARY_SUMMARY_BCFTOOLS`. A
list takes its items comma-separated: `CAPILLARY_PCGR_ASSEMBLIES=grch37,grch38`.

A worker image is the same for every deployment, so a worker learns its deployment at launch:
`CAPILLARY_SSM_CONFIG=/capillary/<d>/config` (written by the launch into
/etc/capillary/launch.env, nothing secret) makes the parameters under that path, written by
`roles/intake`, a layer between the file and the environment.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capillary.contract.assemblies import ASSEMBLIES
from capillary.contract.layout import STATE_FILE, WorkerLayout
from capillary.contract.samples import KINDS
from capillary.worker.engines import available as available_engines
from capillary.worker.engines import section_of
from capillary.worker.engines.pcgr import PcgrConfig
from capillary.worker.engines.summary import SummaryConfig

DEFAULT_CONFIG = Path("/etc/capillary/consumer.toml")
ENV_PREFIX = "CAPILLARY_"
# SQS keeps a received message invisible for at most 12 hours after it was received.
SQS_MAX_VISIBILITY_S = 43200
# SQS delays a sent message at most 15 minutes.
SQS_MAX_DELAY_S = 900


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the field and the reason."""


@dataclass(frozen=True)
class ConsumerConfig:
    queue_url: str
    bucket: str = ""
    # Empty: boto3's own chain (AWS_REGION / AWS_DEFAULT_REGION, the config file, IMDS).
    region: str = ""
    workdir: Path = Path(WorkerLayout().workspace)
    state_file: Path = Path(STATE_FILE)
    engine: str = "summary"
    # The engine per kind of sample (the key's `-normal` / `-somatic`); empty: `engine`. A PCGR
    # deployment sets engine_normal = "cpsr" so germline samples get CPSR's report (issue 21).
    engine_normal: str = ""
    engine_somatic: str = ""
    engine_timeout_s: int = 36000
    poll_wait_s: int = 20
    # How long the consumer holds a message at a time: the visibility it asks for at receive and
    # that each heartbeat (every heartbeat_s) grants again. A worker that dies holding a message
    # gives it back within this window; a restarted consumer gives it back at once.
    visibility_extension_s: int = 300
    heartbeat_s: int = 60
    # The work queue's own visibility timeout (roles/intake: engine timeout + margin, published in
    # Parameter Store): only the net under a consumer that never heartbeats. This consumer never
    # extends by it; it is logged and recorded in the state file. 0: not known.
    visibility_timeout_s: int = 0
    retry_backoff_s: int = 60
    idle_minutes: float = 15.0
    # The sample's failures allowed before the consumer moves its message to the dead-letter
    # queue (the queue's redrive maxReceiveCount, which stays the net under dying consumers).
    max_receive_count: int = 3
    # Empty: read from the work queue's redrive policy when a message must go there.
    dead_letter_queue_url: str = ""
    # How long an output upload is retried (with backoff, the message kept invisible) before the
    # attempt fails; the engine's output is kept meanwhile.
    upload_retry_s: int = 600
    # Refuse to start unless the systemd unit's filesystem sandbox is in effect (the unit sets it).
    require_sandbox: bool = False
    imds_url: str = "http://169.254.169.254"
    imds_enabled: bool = True
    spot_poll_s: float = 5.0
    error_backoff_max_s: float = 60.0
    log_tail_lines: int = 60
    max_tarball_bytes: int = 64 * 1024**3
    pcgr: PcgrConfig = field(default_factory=PcgrConfig)
    summary: SummaryConfig = field(default_factory=SummaryConfig)


# Each engine's section, the dataclass its module defines (the engines never import this module).
_NESTED: dict[str, type[Any]] = {"pcgr": PcgrConfig, "summary": SummaryConfig}


def _coerce(name: str, annotation: Any, value: Any, from_env: bool = False) -> Any:
    """`value` (from TOML, or a string from the environment) as the field's type, or ConfigError."""
    target = {"str": str, "int": int, "float": float, "bool": bool, "Path": Path}.get(
        str(annotation), annotation
    )
    if target is bool:
        if isinstance(value, bool):
            return value
        if from_env and value.lower() in ("1", "true", "yes", "on"):
            return True
        if from_env and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected a boolean, got {value!r}")
    if target is int:
        if isinstance(value, bool):
            raise ConfigError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if from_env:
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if target is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if from_env:
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if target is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{name}: expected a path, got {value!r}")
        return Path(value)
    if target is str:
        if not isinstance(value, str):
            raise ConfigError(f"{name}: expected a string, got {value!r}")
        return value
    if typing.get_origin(target) is tuple:  # tuple[str, ...]: a TOML array, or "a,b" from the environment
        if from_env and isinstance(value, str):
            value = [item.strip() for item in value.split(",") if item.strip()]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{name}: expected a list of strings, got {value!r}")
        return tuple(value)
    raise ConfigError(f"{name}: unsupported type {annotation!r}")  # pragma: no cover


def _build(cls: type[Any], prefix: str, table: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ConfigError(f"{prefix}{unknown[0]}: unknown setting (known: {', '.join(sorted(known))})")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        name = f"{prefix}{f.name}"
        env_name = ENV_PREFIX + name.replace(".", "_").upper()
        if f.name in _NESTED:
            sub = table.get(f.name, {})
            if not isinstance(sub, Mapping):
                raise ConfigError(f"{name}: expected a table, got {sub!r}")
            values[f.name] = _build(_NESTED[f.name], f"{name}.", sub, env)
            continue
        annotation = hints[f.name]
        if isinstance(annotation, types.UnionType):  # `X | None`: set means an X
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        if env_name in env:
            values[f.name] = _coerce(f"{name} (from {env_name})", annotation, env[env_name], from_env=True)
        elif f.name in table:
            values[f.name] = _coerce(name, annotation, table[f.name])
    try:
        return cls(**values)
    except TypeError as exc:
        missing = [
            f.name
            for f in dataclasses.fields(cls)
            if f.name not in values
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ConfigError(f"{prefix}{missing[0]}: required setting is missing") from exc
        raise ConfigError(str(exc)) from exc


def engine_for(cfg: ConsumerConfig, kind: str) -> str:
    """The engine that runs a sample of `kind` (`normal` or `somatic`): the one function that
    picks it (the consumer builds these engines at start, the pipeline asks per work item)."""
    chosen = {"normal": cfg.engine_normal, "somatic": cfg.engine_somatic}.get(kind, "")
    return chosen or cfg.engine


def engines_in_use(cfg: ConsumerConfig) -> tuple[str, ...]:
    """Every engine some kind of sample runs on, each once, in the order of KINDS."""
    return tuple(dict.fromkeys(engine_for(cfg, kind) for kind in KINDS))


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ConfigError(f"{name}: must be greater than 0, got {value!r}")


def validate(cfg: ConsumerConfig) -> ConsumerConfig:
    """Cross-field checks; returns `cfg` or raises ConfigError naming the field."""
    if not cfg.queue_url.startswith(("https://", "http://")):
        raise ConfigError(f"queue_url: expected an SQS queue URL (http[s]://…), got {cfg.queue_url!r}")
    for name in ("engine", "engine_normal", "engine_somatic"):
        chosen = getattr(cfg, name)
        if (chosen or name == "engine") and chosen not in available_engines():
            raise ConfigError(f"{name}: {chosen!r} is not one of {', '.join(available_engines())}")
    if not cfg.workdir.is_absolute():
        raise ConfigError(f"workdir: must be an absolute path, got {str(cfg.workdir)!r}")
    if not cfg.state_file.is_absolute():
        raise ConfigError(f"state_file: must be an absolute path, got {str(cfg.state_file)!r}")
    for name in (
        "engine_timeout_s",
        "visibility_extension_s",
        "heartbeat_s",
        "max_receive_count",
    ):
        _positive(name, getattr(cfg, name))
    for name in ("idle_minutes", "spot_poll_s", "error_backoff_max_s"):
        _positive(name, getattr(cfg, name))
    if not 0 <= cfg.poll_wait_s <= 20:
        raise ConfigError(f"poll_wait_s: SQS long polls last 0-20 s, got {cfg.poll_wait_s}")
    for name in ("visibility_extension_s", "visibility_timeout_s"):
        if not 0 <= getattr(cfg, name) <= SQS_MAX_VISIBILITY_S:
            raise ConfigError(f"{name}: SQS allows 0-{SQS_MAX_VISIBILITY_S}, got {getattr(cfg, name)}")
    if cfg.heartbeat_s >= cfg.visibility_extension_s:
        raise ConfigError(
            f"heartbeat_s: must be shorter than visibility_extension_s ({cfg.visibility_extension_s}) so "
            f"the message is extended before it expires, got {cfg.heartbeat_s}"
        )
    if not 0 <= cfg.retry_backoff_s <= SQS_MAX_DELAY_S:
        raise ConfigError(
            f"retry_backoff_s: a retried message is sent again with this delay, which SQS allows "
            f"0-{SQS_MAX_DELAY_S}; got {cfg.retry_backoff_s}"
        )
    if cfg.upload_retry_s < 0:
        raise ConfigError(f"upload_retry_s: must be 0 or more, got {cfg.upload_retry_s}")
    if cfg.dead_letter_queue_url and not cfg.dead_letter_queue_url.startswith(("https://", "http://")):
        raise ConfigError(
            "dead_letter_queue_url: expected an SQS queue URL (http[s]://…), "
            f"got {cfg.dead_letter_queue_url!r}"
        )
    if not cfg.imds_url.startswith(("http://", "https://")):
        raise ConfigError(f"imds_url: expected an http URL, got {cfg.imds_url!r}")
    if cfg.pcgr.method not in ("conda", "container"):
        raise ConfigError(f"pcgr.method: {cfg.pcgr.method!r} is not one of conda, container")
    pcgr_engines = [e for e in engines_in_use(cfg) if section_of(e) == "pcgr"]
    if pcgr_engines and cfg.pcgr.method == "container" and not cfg.pcgr.container_image:
        raise ConfigError("pcgr.container_image: required when pcgr.method is container")
    _check_refdata(cfg.pcgr)
    _positive("pcgr.threads", cfg.pcgr.threads)
    _positive("log_tail_lines", cfg.log_tail_lines)
    _positive("max_tarball_bytes", cfg.max_tarball_bytes)
    return cfg


def _check_refdata(pcgr: PcgrConfig) -> None:
    """The reference data layout names assemblies PCGR knows, each once."""
    known = ", ".join(sorted(ASSEMBLIES))
    if pcgr.refdata_dir is not None:
        if pcgr.refdata_dir.name not in ASSEMBLIES:
            raise ConfigError(
                f"pcgr.refdata_dir: a per-assembly directory must end in /<assembly> ({known}) so the "
                f"worker knows which assembly it serves, got {str(pcgr.refdata_dir)!r}; or set "
                "pcgr.refdata_root (the directory holding the <assembly> directories) and pcgr.assemblies"
            )
        return
    if not pcgr.refdata_root.is_absolute():
        raise ConfigError(f"pcgr.refdata_root: must be an absolute path, got {str(pcgr.refdata_root)!r}")
    if not pcgr.assemblies:
        raise ConfigError(f"pcgr.assemblies: name at least one installed assembly ({known})")
    unknown = [a for a in pcgr.assemblies if a not in ASSEMBLIES]
    if unknown:
        raise ConfigError(f"pcgr.assemblies: {unknown[0]!r} is not one of {known}")
    if len(set(pcgr.assemblies)) != len(pcgr.assemblies):
        raise ConfigError(f"pcgr.assemblies: each assembly once, got {list(pcgr.assemblies)}")


def _refdata_forms_not_mixed(table: Mapping[str, Any], env: Mapping[str, str]) -> None:
    """The per-assembly `refdata_dir` and `refdata_root`/`assemblies` describe the same thing: given
    together (a new file and an old CAPILLARY_PCGR_REFDATA_DIR, say), one would silently lose."""
    pcgr = table.get("pcgr", {})

    def given(name: str) -> bool:
        return name in pcgr or f"{ENV_PREFIX}PCGR_{name.upper()}" in env

    if given("refdata_dir"):
        other = [name for name in ("refdata_root", "assemblies") if given(name)]
        if other:
            raise ConfigError(
                f"pcgr.refdata_dir: the per-assembly form cannot be combined with pcgr.{other[0]}; "
                "keep pcgr.refdata_root and pcgr.assemblies"
            )


class ConfigUnavailableError(RuntimeError):
    """Parameter Store could not be read (yet): worth retrying, unlike a ConfigError."""


# Every parameter roles/intake writes under the deployment's SSM config path (/capillary/<d>/config;
# the role's `_intake_config_parameters`, which a unit test keeps equal to this list), and the
# consumer setting it feeds; None: written for operators and other tools, not read here.
SSM_PARAMETERS: dict[str, str | None] = {
    "platform": None,
    "bucket": "bucket",
    "work_queue_url": "queue_url",
    # Where the consumer moves a message that cannot succeed, or has failed max_receive_count times.
    "dead_letter_queue_url": "dead_letter_queue_url",
    "events_queue_url": None,
    "notify_topic_arn": None,
    # The work queue's own visibility (engine timeout + margin): the net under a consumer that never
    # heartbeats. Not the consumer's extension (visibility_extension_s, minutes).
    "visibility_timeout_s": "visibility_timeout_s",
    # Error reports say when an attempt is the last one.
    "max_receive_count": "max_receive_count",
}
SSM_SETTINGS = {name: setting for name, setting in SSM_PARAMETERS.items() if setting is not None}


def ssm_overrides(ssm_path: str, client: Any = None) -> dict[str, str]:
    """The deployment's settings under `ssm_path`, as `CAPILLARY_*` variables (lowest override)."""
    if not ssm_path.startswith("/"):
        raise ConfigError(f"ssm_config (from {ENV_PREFIX}SSM_CONFIG): expected an SSM path, got {ssm_path!r}")
    if client is None:
        import boto3

        client = boto3.client("ssm")
    from botocore.exceptions import BotoCoreError, ClientError

    found: dict[str, str] = {}
    try:
        for page in client.get_paginator("get_parameters_by_path").paginate(
            Path=ssm_path.rstrip("/"), Recursive=False, WithDecryption=False
        ):
            for parameter in page["Parameters"]:
                name = parameter["Name"].rsplit("/", 1)[-1]
                if name in SSM_SETTINGS:
                    found[ENV_PREFIX + SSM_SETTINGS[name].upper()] = parameter["Value"]
    except (BotoCoreError, ClientError) as exc:
        raise ConfigUnavailableError(f"ssm_config: cannot read {ssm_path}: {exc}") from exc
    if ENV_PREFIX + "QUEUE_URL" not in found:
        raise ConfigUnavailableError(f"ssm_config: {ssm_path}/work_queue_url does not exist (yet)")
    return found


def load_config(
    path: Path | None = None, env: Mapping[str, str] | None = None, ssm_client: Any = None
) -> ConsumerConfig:
    """Read `path` (default /etc/capillary/consumer.toml, or $CAPILLARY_CONFIG) and apply overrides:
    the file, then the deployment's SSM parameters when $CAPILLARY_SSM_CONFIG names them, then the
    environment.

    A missing file is fine when the environment supplies every required setting (tests, containers).
    """
    env = os.environ if env is None else env
    ssm_path = env.get(ENV_PREFIX + "SSM_CONFIG", "")
    if ssm_path:
        env = {**ssm_overrides(ssm_path, ssm_client), **env}
    path = path or Path(env.get(ENV_PREFIX + "CONFIG", str(DEFAULT_CONFIG)))
    table: dict[str, Any] = {}
    if path.exists():
        try:
            with path.open("rb") as fh:
                table = tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot be read: {exc.strerror}") from exc
    elif path != DEFAULT_CONFIG or ENV_PREFIX + "QUEUE_URL" not in env:
        raise ConfigError(f"{path}: configuration file not found")
    cfg: ConsumerConfig = _build(ConsumerConfig, "", table, env)
    _refdata_forms_not_mixed(table, env)
    return validate(cfg)
