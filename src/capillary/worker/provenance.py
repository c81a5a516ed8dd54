"""What a run record says beyond the pipeline's own facts: where and on what the sample ran, what
the instance cost, and the same facts as W3C PROV terms for tools that read those.

- The instance: IMDS (`imds.IMDSClient.identity`: id, type, image, zone, purchase option, launch
  time from the identity document's `pendingTime`).
- The spot price in force at launch: `DescribeSpotPriceHistory` for the instance's type and zone,
  Linux/UNIX, with StartTime = EndTime = launch (AWS answers the newest observation at or before
  it). Asked once per daemon (the launch does not move); a failed lookup is asked again with the
  next sample. A lookup never fails a sample: the record says `price: null` and `price_reason`.
- The release: the catalogue's facts (bundle, VEP) for the release the configuration runs; the
  summary engine runs none, and the record says so.
- The cost: `contract.cost.sample_cost`, its method stated in the record.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from capillary.contract.times import as_utc
from capillary.release.catalogue import CatalogueError, load_catalogue
from capillary.worker.config import ConsumerConfig
from capillary.worker.engines import section_of

log = logging.getLogger("capillary.worker.daemon")

PRODUCT = "Linux/UNIX"
PRICE_SOURCE = "ec2:DescribeSpotPriceHistory"
PROV_CONTEXT = {
    "prov": "http://www.w3.org/ns/prov#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "capillary": "urn:capillary:terms:",
}


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PriceLookupError(RuntimeError):
    """The price history could not be read this time (it may be readable next time)."""


def spot_price_at_launch(ec2: Any, identity: Mapping[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """(the price block, None), or (None, why there is none); PriceLookupError when the API
    could not be asked."""
    purchase = identity.get("purchase_option")
    if not purchase:
        return None, "the instance's purchase option is unknown (no IMDS, or not on EC2)"
    if purchase != "spot":
        return None, (
            f"a {purchase} instance: only spot prices are looked up (the on-demand list price is "
            "in the Price List API, which the worker does not call)"
        )
    missing = [k for k in ("instance_type", "availability_zone", "launch_time") if not identity.get(k)]
    if missing:
        return None, f"IMDS did not give the instance's {', '.join(missing)}"
    itype, zone = identity["instance_type"], identity["availability_zone"]
    try:
        launch = as_utc(identity["launch_time"])
    except ValueError:
        return None, f"the launch time {identity['launch_time']!r} is not an ISO 8601 time"
    try:
        rows = ec2.describe_spot_price_history(
            InstanceTypes=[itype],
            AvailabilityZone=zone,
            ProductDescriptions=[PRODUCT],
            StartTime=launch,
            EndTime=launch,
        ).get("SpotPriceHistory", [])
    except (BotoCoreError, ClientError) as exc:
        raise PriceLookupError(f"{PRICE_SOURCE} failed: {exc}") from exc
    seen = [
        r
        for r in rows
        if r.get("InstanceType") == itype
        and r.get("AvailabilityZone") == zone
        and as_utc(r["Timestamp"]) <= launch
    ]
    if not seen:
        return None, f"no {PRODUCT} spot price for {itype} in {zone} at or before {_iso(launch)}"
    newest = max(seen, key=lambda r: as_utc(r["Timestamp"]))
    return {
        "usd_per_hour": float(newest["SpotPrice"]),
        "observed_at": _iso(as_utc(newest["Timestamp"])),
        "launch_time": _iso(launch),
        "instance_type": itype,
        "availability_zone": zone,
        "product_description": PRODUCT,
        "source": PRICE_SOURCE,
    }, None


def _runs_pcgr(engine: str) -> bool:
    """Whether `engine` runs the PCGR install (reads the `[pcgr]` section: pcgr, cpsr)."""
    return section_of(engine) == "pcgr"


def release_facts(cfg: ConsumerConfig, engine: str) -> tuple[dict[str, Any] | None, str | None]:
    """(the release block, None), or (what is known, why the rest is not)."""
    if not _runs_pcgr(engine):
        return None, f"the {engine} engine runs no PCGR release"
    try:
        release = load_catalogue().release(cfg.pcgr.release)
    except CatalogueError as exc:
        return {"version": cfg.pcgr.release}, f"the catalogue does not know it: {exc}"
    return {
        "version": release.version,
        "bundle": release.bundle.version,
        "bundle_installed": cfg.pcgr.bundle_version or None,
        "vep": release.vep.version,
        "confirmed": release.confirmed,
        "container_image": release.install.image,
        "container_digest": release.install.digest or None,
    }, None


def image_facts(
    cfg: ConsumerConfig, engine: str, identity: Mapping[str, str], release: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The machine image (its id: an AMI has no digest) and, for a containerised engine, the
    container image and its digest where the reference pins one (or the catalogue does: `release`
    is `release_facts`' block for this engine)."""
    container = cfg.pcgr.container_image if _runs_pcgr(engine) and cfg.pcgr.method == "container" else ""
    digest: str | None = None
    if "@sha256:" in container:
        digest = container.split("@", 1)[1]
    elif container and release and release.get("container_image") == container:
        digest = release.get("container_digest")
    return {
        "image_id": identity.get("image_id"),
        "container_image": container or None,
        "container_digest": digest,
    }


class Provenance:
    """The launch facts of one worker (asked once) and the record's blocks built from them."""

    def __init__(
        self, cfg: ConsumerConfig, identity: Callable[[], dict[str, str]], ec2: Callable[[], Any]
    ) -> None:
        self.cfg = cfg
        self.identity = identity
        self._ec2 = ec2
        self._price: tuple[dict[str, Any] | None, str | None] | None = None
        self._releases: dict[str, tuple[dict[str, Any] | None, str | None]] = {}
        self._lock = threading.Lock()

    def release(self, engine: str) -> tuple[dict[str, Any] | None, str | None]:
        """`release_facts` for `engine`, read once (the catalogue and the install do not change
        under a daemon; the catalogue is a YAML file, not to be parsed again for each sample)."""
        with self._lock:
            if engine not in self._releases:
                self._releases[engine] = release_facts(self.cfg, engine)
            return self._releases[engine]

    def price(self) -> tuple[dict[str, Any] | None, str | None]:
        with self._lock:
            if self._price is not None:
                return self._price
            try:
                found = spot_price_at_launch(self._ec2(), self.identity())
                self._price = found  # an answer, or a reason no retry changes
            except (PriceLookupError, BotoCoreError, ClientError, ValueError, KeyError) as exc:
                found = (None, str(exc))  # asked again with the next sample
            if found[0] is None:
                log.warning("no spot price for the run record: %s", found[1], extra={"phase": "provenance"})
            return found

    def prov(
        self,
        *,
        run_id: str,
        started: str,
        ended: str,
        used: list[dict[str, Any]],
        generated: list[dict[str, Any]],
        engine: str,
        release: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """The run as a PROV activity in JSON-LD: what it used and generated, who carried it out."""
        identity = self.identity()
        agents: list[dict[str, Any]] = [
            {"@id": f"urn:capillary:engine:{engine}", "@type": "prov:SoftwareAgent", "rdfs:label": engine}
        ]
        if release:
            agents[0]["capillary:release"] = release.get("version")
        if identity.get("instance_id"):
            region, zone = identity.get("region", ""), identity.get("availability_zone", "")
            agents.append(
                {
                    "@id": f"urn:aws:ec2:{region}:instance/{identity['instance_id']}",
                    "@type": "prov:Agent",
                    "rdfs:label": f"{identity.get('instance_type', '')} in {zone}",
                }
            )
        if release and release.get("bundle"):
            used = [
                *used,
                entity(
                    f"urn:pcgr:release:{release.get('version')}:bundle:{release.get('bundle')}",
                    label=f"PCGR {release.get('version')} reference bundle {release.get('bundle')}, "
                    f"VEP {release.get('vep')}",
                ),
            ]
        return {
            "@context": PROV_CONTEXT,
            "@id": run_id,
            "@type": "prov:Activity",
            "prov:startedAtTime": {"@value": started, "@type": "xsd:dateTime"},
            "prov:endedAtTime": {"@value": ended, "@type": "xsd:dateTime"},
            "prov:used": used,
            "prov:generated": generated,
            "prov:wasAssociatedWith": agents,
        }


def entity(iri: str, sha256: str | None = None, label: str | None = None) -> dict[str, Any]:
    """A PROV entity: an object or file by IRI, with its sha256 where known."""
    out: dict[str, Any] = {"@id": iri, "@type": "prov:Entity"}
    if label:
        out["rdfs:label"] = label
    if sha256:
        out["capillary:sha256"] = sha256
    return out
