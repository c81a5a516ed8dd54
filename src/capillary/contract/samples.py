"""The sample key contract: the one place that knows how a sample is named in the bucket.

    inputs/{batch}-{uuid}-{kind}.tar.gz          the upload (triggers intake)
    outputs/{batch}-{uuid}-{kind}-output.tar.gz  the result
    outputs/{batch}-{uuid}-{kind}-error.json     the error report, when there is no result
    outputs/{batch}-{uuid}-{kind}-run.json       the result's provenance and cost record (written
                                                 after the result, never without it)
    rejected/{whatever was uploaded}.json        why an upload under inputs/ was refused

`uuid` is 6 lowercase hex characters, `kind` is `somatic` or `normal`, and `batch` may itself
contain hyphens, so keys are parsed from the right. Every refusal is a `SampleKeyError` whose
`reason` is a sentence a person can act on.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote_plus

INPUT_PREFIX = "inputs/"
OUTPUT_PREFIX = "outputs/"
REJECTED_PREFIX = "rejected/"
EXTENSION = ".tar.gz"
OUTPUT_SUFFIX = "-output.tar.gz"
ERROR_SUFFIX = "-error.json"
RUN_SUFFIX = "-run.json"
KINDS: tuple[str, ...] = ("somatic", "normal")
UUID_LENGTH = 6
BATCH_MAX_LENGTH = 100
# S3's limit on an object key, in bytes of UTF-8.
KEY_MAX_BYTES = 1024
REPORT_EXTENSION = ".json"
_REPORT_HASH_CHARS = 16

_UUID = re.compile(r"[0-9a-f]{6}")
# Letters, digits and a few separators; starts and ends with a letter or digit so that
# "batch--abc123-somatic" or " batch-..." never parse into a surprising batch name.
_BATCH = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._+ -]*[A-Za-z0-9])?")
# Extensions people type instead of ".tar.gz", with the advice that goes with each.
_EXTENSION_TYPOS: tuple[tuple[str, str], ...] = (
    ("-tar.gz", "a hyphen where the dot belongs"),
    ("_tar.gz", "an underscore where the dot belongs"),
    (".tar.gz.tar.gz", "the extension twice"),
    (".tgz", "use the long form .tar.gz"),
    (".tar.bz2", "bzip2 is not accepted; compress with gzip"),
    (".tar.xz", "xz is not accepted; compress with gzip"),
    (".tar", "an uncompressed tar; compress it with gzip"),
    (".gz", "a gzip file that is not a tar archive"),
    (".TAR.GZ", "the extension must be lowercase"),
    (".tar.GZ", "the extension must be lowercase"),
)

Kind = Literal["somatic", "normal"]
OutputKind = Literal["output", "error", "run"]


class SampleKeyError(ValueError):
    """A key that does not follow the contract; `reason` says which rule it broke."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key!r}: {reason}")
        self.key = key
        self.reason = reason


def _check_batch(key: str, batch: str) -> None:
    if not batch:
        raise SampleKeyError(key, "missing batch: expected {batch}-{uuid}-{kind}.tar.gz")
    if len(batch) > BATCH_MAX_LENGTH:
        raise SampleKeyError(key, f"batch is {len(batch)} characters long; the limit is {BATCH_MAX_LENGTH}")
    if not _BATCH.fullmatch(batch):
        raise SampleKeyError(
            key,
            f"batch {batch!r} may hold only letters, digits, '.', '_', '+', '-' and spaces, "
            "and must start and end with a letter or digit",
        )


def _check_kind(key: str, kind: str) -> None:
    if kind not in KINDS:
        hint = " (kinds are lowercase)" if kind.lower() in KINDS else ""
        raise SampleKeyError(key, f"unknown kind {kind!r}: expected 'somatic' or 'normal'{hint}")


def _check_uuid(key: str, uuid: str) -> None:
    if not _UUID.fullmatch(uuid):
        raise SampleKeyError(
            key, f"malformed uuid {uuid!r}: expected {UUID_LENGTH} lowercase hexadecimal characters"
        )


def _extension_reason(name: str) -> str:
    for typo, advice in _EXTENSION_TYPOS:
        if name.endswith(typo):
            return f"extension must be .tar.gz (found {typo!r}: {advice})"
    dot = name.rfind(".")
    found = name[dot:] if dot > 0 else "no extension"
    return f"extension must be .tar.gz (found {found!r})"


def _split_stem(key: str, stem: str) -> tuple[str, str, str]:
    """Split `{batch}-{uuid}-{kind}` from the right, naming the missing part when one is."""
    parts = stem.rsplit("-", 2)
    if len(parts) == 1:
        raise SampleKeyError(key, f"name {stem!r} is not {{batch}}-{{uuid}}-{{kind}}: no hyphens found")
    if len(parts) == 2:
        first, kind = parts
        _check_kind(key, kind)
        if _UUID.fullmatch(first):
            raise SampleKeyError(key, "missing batch: expected {batch}-{uuid}-{kind}.tar.gz")
        raise SampleKeyError(key, f"missing uuid: expected {{batch}}-{{uuid}}-{kind}.tar.gz")
    batch, uuid, kind = parts
    _check_kind(key, kind)
    if not _UUID.fullmatch(uuid):
        raise SampleKeyError(
            key,
            f"missing or malformed uuid: expected {UUID_LENGTH} lowercase hexadecimal characters "
            f"before '-{kind}' (found {uuid!r})",
        )
    _check_batch(key, batch)
    return batch, uuid, kind


@dataclass(frozen=True)
class SampleKey:
    """One sample's identity; every key in the bucket for it derives from these three fields."""

    batch: str
    uuid: str
    kind: str

    def __post_init__(self) -> None:
        shown = f"{self.batch}-{self.uuid}-{self.kind}"
        _check_batch(shown, self.batch)
        _check_uuid(shown, self.uuid)
        _check_kind(shown, self.kind)

    @classmethod
    def parse(cls, key: str) -> SampleKey:
        """Parse an `inputs/…tar.gz` object key (already decoded)."""
        if not key:
            raise SampleKeyError(key, "empty key")
        if not key.startswith(INPUT_PREFIX):
            slash = key.find("/")
            found = repr(key[: slash + 1]) if slash >= 0 else "no prefix"
            raise SampleKeyError(key, f"wrong prefix: samples are uploaded under 'inputs/' (found {found})")
        name = key[len(INPUT_PREFIX) :]
        if "/" in name:
            raise SampleKeyError(
                key, f"samples sit directly under 'inputs/' (found folder {name.rsplit('/', 1)[0] + '/'!r})"
            )
        if not name.endswith(EXTENSION) or name.endswith(".tar.gz.tar.gz"):
            raise SampleKeyError(key, _extension_reason(name))
        stem = name[: -len(EXTENSION)]
        if not stem:
            raise SampleKeyError(key, "missing name: expected {batch}-{uuid}-{kind}.tar.gz")
        batch, uuid, kind = _split_stem(key, stem)
        return cls(batch=batch, uuid=uuid, kind=kind)

    @classmethod
    def from_event_key(cls, raw: str) -> SampleKey:
        """Parse a key as S3 puts it in an event record: URL-encoded, decoded exactly once."""
        return cls.parse(unquote_plus(raw))

    @classmethod
    def new(cls, batch: str, kind: str = "somatic") -> SampleKey:
        """A fresh identity for an upload: a random 6-hex uuid under the given batch."""
        return cls(batch=batch, uuid=secrets.token_hex(UUID_LENGTH // 2), kind=kind)

    @property
    def name(self) -> str:
        return f"{self.batch}-{self.uuid}-{self.kind}"

    @property
    def input_key(self) -> str:
        return f"{INPUT_PREFIX}{self.name}{EXTENSION}"

    @property
    def output_key(self) -> str:
        return f"{OUTPUT_PREFIX}{self.name}{OUTPUT_SUFFIX}"

    @property
    def error_key(self) -> str:
        return f"{OUTPUT_PREFIX}{self.name}{ERROR_SUFFIX}"

    @property
    def run_key(self) -> str:
        """The output's provenance and cost record (a copy of the output's own `run.json`)."""
        return f"{OUTPUT_PREFIX}{self.name}{RUN_SUFFIX}"


def rejected_key(raw_key: str) -> str:
    """Where the rejection report for an upload under `inputs/` goes (`rejected/<rest>.json`).

    Not under `inputs/` or `outputs/`, so a report never triggers intake or a notification.
    Always a key S3 can store (at most `KEY_MAX_BYTES` of UTF-8): when `<rest>` is too long for
    that, it is cut (on a character boundary) and ends in `~` and a hash of the whole key, so two
    long keys never share a report.
    """
    rest = raw_key[len(INPUT_PREFIX) :] if raw_key.startswith(INPUT_PREFIX) else raw_key
    # A lone surrogate (a hand-made event can hold one) cannot be stored: it becomes '?'.
    rest = rest.strip("/").encode("utf-8", "replace").decode("utf-8") or "_empty_"
    key = f"{REJECTED_PREFIX}{rest}{REPORT_EXTENSION}"
    if len(key.encode("utf-8")) <= KEY_MAX_BYTES:
        return key
    digest = hashlib.sha256(raw_key.encode("utf-8", "surrogatepass")).hexdigest()[:_REPORT_HASH_CHARS]
    budget = KEY_MAX_BYTES - len(REJECTED_PREFIX) - len(REPORT_EXTENSION) - 1 - len(digest)
    kept = rest.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return f"{REJECTED_PREFIX}{kept}~{digest}{REPORT_EXTENSION}"


def parse_output_key(key: str) -> tuple[SampleKey, OutputKind]:
    """Parse `outputs/{name}-output.tar.gz`, `-error.json` or `-run.json` (already decoded)."""
    if not key.startswith(OUTPUT_PREFIX):
        raise SampleKeyError(key, "wrong prefix: outputs live under 'outputs/'")
    name = key[len(OUTPUT_PREFIX) :]
    if "/" in name:
        raise SampleKeyError(key, "outputs sit directly under 'outputs/'")
    what: OutputKind
    if name.endswith(OUTPUT_SUFFIX):
        stem, what = name[: -len(OUTPUT_SUFFIX)], "output"
    elif name.endswith(ERROR_SUFFIX):
        stem, what = name[: -len(ERROR_SUFFIX)], "error"
    elif name.endswith(RUN_SUFFIX):
        stem, what = name[: -len(RUN_SUFFIX)], "run"
    else:
        raise SampleKeyError(key, "an output ends in '-output.tar.gz', '-error.json' or '-run.json'")
    batch, uuid, kind = _split_stem(key, stem)
    return SampleKey(batch=batch, uuid=uuid, kind=kind), what
