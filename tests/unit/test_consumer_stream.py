"""One pass per sample: the download is hashed on its way into the safe extractor.

A `Body` here is a stand-in for botocore's StreamingBody (`read(n)` over real tarball bytes, in
network-sized pieces, optionally failing part-way as a dropped connection does).
"""

from __future__ import annotations

import hashlib
import io
import threading
from pathlib import Path

import pytest

from capillary.contract.message import WorkMessage
from capillary.contract.samples import SampleKey
from capillary.contract.tarball import TarballError, safe_extract, safe_extract_stream
from capillary.worker.config import ConsumerConfig
from capillary.worker.fetch import HashingBody, InputFetcher
from capillary.worker.item import HandBackError, SampleFailedError, WorkItem
from tests.support.samples import make_sample_tarball


class Body:
    """`read(n)` over `data`, at most `piece` bytes at a time; raises `fail` after `fail_at` bytes."""

    def __init__(self, data: bytes, piece: int = 7000, fail_at: int = -1, fail: Exception | None = None):
        self.raw = io.BytesIO(data)
        self.piece = piece
        self.fail_at = fail_at
        self.fail = fail

    def read(self, n: int = -1) -> bytes:
        if self.fail is not None and self.raw.tell() >= self.fail_at:
            raise self.fail
        return self.raw.read(min(n, self.piece) if n >= 0 else -1)


def sample(tmp_path: Path, **kwargs: object) -> bytes:
    return make_sample_tarball(tmp_path / "s", **kwargs).read_bytes()  # type: ignore[arg-type]


def test_a_stream_unpacks_exactly_as_the_file_does(tmp_path: Path) -> None:
    # GIVEN a real sample tarball on disk and the same bytes as a stream
    data = sample(tmp_path, cna=True)
    path = tmp_path / "in.tar.gz"
    path.write_bytes(data)
    # WHEN both are extracted
    from_file = safe_extract(path, tmp_path / "file")
    stream = HashingBody(Body(data), threading.Event(), want_md5=True)
    from_stream = safe_extract_stream(stream, tmp_path / "stream", len(data))
    stream.drain()
    # THEN the members, their hashes and the options are the same, and the stream's digest is
    # the file's: every byte went through the hash once
    assert from_stream.sha256 == from_file.sha256
    assert from_stream.options == from_file.options
    assert [p.name for p in from_stream.vcfs] == [p.name for p in from_file.vcfs]
    assert stream.sha.hexdigest() == hashlib.sha256(data).hexdigest()
    assert (
        stream.md5 is not None
        and stream.md5.hexdigest() == hashlib.md5(data, usedforsecurity=False).hexdigest()
    )
    assert stream.size == len(data)


def test_a_stream_is_refused_for_what_the_file_is_refused_for(tmp_path: Path) -> None:
    data = sample(tmp_path, extra_members={"../../escape.txt": "gotcha"})
    path = tmp_path / "in.tar.gz"
    path.write_bytes(data)
    with pytest.raises(TarballError) as from_file:
        safe_extract(path, tmp_path / "file")
    with pytest.raises(TarballError) as from_stream:
        safe_extract_stream(Body(data), tmp_path / "stream", len(data))
    assert [p.code for p in from_stream.value.problems] == [p.code for p in from_file.value.problems]
    assert list((tmp_path / "stream").iterdir()) == []
    # AND a stream that is not gzip at all is named as such
    with pytest.raises(TarballError) as not_gzip:
        safe_extract_stream(Body(b"PK\x03\x04 not a tarball"), tmp_path / "zip", 22)
    assert [p.code for p in not_gzip.value.problems] == ["not_gzip"]


@pytest.mark.parametrize("size", [1, 10, 10240, 1 << 20, (1 << 20) + 3])
def test_the_hashing_body_returns_the_bytes_in_any_read_size(size: int) -> None:
    data = bytes(range(256)) * 9000
    stream = HashingBody(Body(data, piece=65536), threading.Event(), want_md5=False)
    out = bytearray()
    while chunk := stream.read(size):
        assert len(chunk) <= size
        out += chunk
    assert bytes(out) == data
    assert stream.sha.hexdigest() == hashlib.sha256(data).hexdigest() and stream.md5 is None


def fetcher(stop: threading.Event | None = None) -> InputFetcher:
    cfg = ConsumerConfig(queue_url="https://sqs.example/1/q")
    return InputFetcher(cfg, s3=None, outputs=None, stop=stop or threading.Event(), on_phase=lambda *_: None)  # type: ignore[arg-type]


def item() -> WorkItem:
    msg = WorkMessage.for_sample(SampleKey.parse("inputs/b-0a1b2c-somatic.tar.gz"), bucket="b")
    return WorkItem("m", "r", receive_count=1, received_at=0.0, bucket="b", message=msg)


def unpack(stream: HashingBody, tmp_path: Path, length: int, sha256: str) -> object:
    return fetcher()._unpack(item(), stream, tmp_path / "input", length, "e", sha256)


def test_a_digest_mismatch_discards_everything_extracted(tmp_path: Path) -> None:
    data = sample(tmp_path)
    stream = HashingBody(Body(data), threading.Event(), want_md5=False)
    with pytest.raises(SampleFailedError) as err:
        fetcher()._unpack(item(), stream, tmp_path / "input", len(data), "etag", "0" * 64)
    assert err.value.phase == "verify" and err.value.retryable
    assert not (tmp_path / "input").exists()


def test_a_refused_tarball_damaged_on_the_way_is_a_verify_failure_not_a_refusal(tmp_path: Path) -> None:
    # GIVEN the bytes of a good sample damaged in transit (the metadata has the uploaded digest)
    data = sample(tmp_path)
    damaged = data[:200] + bytes(b ^ 0xFF for b in data[200:260]) + data[260:]
    stream = HashingBody(Body(damaged), threading.Event(), want_md5=False)
    # WHEN the extractor refuses them
    with pytest.raises(SampleFailedError) as err:
        fetcher()._unpack(
            item(), stream, tmp_path / "input", len(data), "e", hashlib.sha256(data).hexdigest()
        )
    # THEN it is the download's fault, and retryable: the refusal would have been final
    assert err.value.phase == "verify" and err.value.retryable


def test_a_refusal_of_the_uploaded_bytes_is_final(tmp_path: Path) -> None:
    data = sample(tmp_path, extra_members={"../x": "y"})
    stream = HashingBody(Body(data), threading.Event(), want_md5=False)
    with pytest.raises(SampleFailedError) as err:
        fetcher()._unpack(
            item(), stream, tmp_path / "input", len(data), "e", hashlib.sha256(data).hexdigest()
        )
    assert (err.value.phase, err.value.retryable) == ("extract", False)


def test_a_connection_lost_mid_stream_is_the_networks_error_not_a_corrupt_tarball(tmp_path: Path) -> None:
    # requests' ReadTimeout (which botocore's ReadTimeoutError is) is an OSError: the tarball
    # scanner would call it a corrupt archive, and a refusal is final.
    data = sample(tmp_path, n_variants=3000)
    lost = TimeoutError("read timed out")
    stream = HashingBody(Body(data, fail_at=len(data) // 2, fail=lost), threading.Event(), want_md5=False)
    with pytest.raises(TimeoutError):
        fetcher()._unpack(
            item(), stream, tmp_path / "input", len(data), "e", hashlib.sha256(data).hexdigest()
        )
    assert list((tmp_path / "input").iterdir()) == []


def test_a_drain_during_the_download_hands_the_message_back(tmp_path: Path) -> None:
    data = sample(tmp_path)
    stop = threading.Event()
    stop.set()
    stream = HashingBody(Body(data), stop, want_md5=False)
    with pytest.raises(HandBackError):
        fetcher(stop)._unpack(item(), stream, tmp_path / "input", len(data), "e", "")
