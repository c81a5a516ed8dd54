"""A local AWS endpoint: moto's server on a loopback port, with seedable spot price history.

moto's server answers every DescribeSpotPriceHistory with a constant 0.00001, and its prices
cannot be set over HTTP. Where a test or the local run needs real prices, `seed_spot_prices`
stores a series in this process and the server answers from it, with AWS's semantics for
filters, the time window (the price in force at StartTime is included) and pagination.

moto stores a Lambda function's asynchronous invocation configuration but appends on every
PutFunctionEventInvokeConfig and answers GetFunctionEventInvokeConfig with the first one ever
written, where AWS overwrites it; the endpoint here overwrites, as AWS does.

moto accepts ModifyImageAttribute's ImdsSupport and drops it; the endpoint here keeps it, as AWS
does: DescribeImages shows it, DescribeImageAttribute(imdsSupport) answers it, and, as in AWS,
"v2.0" is the only value and cannot be taken back.

moto's CreateFleet launches its spot instances without the launch template's block device
mappings (each gets one default root volume); the endpoint here launches them with the
template's volumes, as AWS does, so a spot build's data volume is where it was asked for.

moto's Auto Scaling differs from AWS where `up.yml` and `down.yml` depend on it (workers are an
Auto Scaling group per deployment and release, docs/spot-workers.md); the endpoint here behaves
as AWS does:

- a group's capacity changes one request at a time (moto's threaded server lets two
  SetDesiredCapacity calls count the same instances and both launch);
- CreateAutoScalingGroup with the name of an existing group answers AlreadyExists (moto replaces
  the group, orphaning its instances);
- SetDesiredCapacity and UpdateAutoScalingGroup refuse a desired capacity outside [MinSize,
  MaxSize], and a lower MaxSize lowers the desired capacity with it (moto accepts any number);
- TerminateInstanceInAutoScalingGroup refuses to decrement the desired capacity below MinSize,
  and answers a ValidationError for an instance in no group (moto goes below, or answers 500);
- UpdateAutoScalingGroup without MixedInstancesPolicy keeps the group's policy (moto drops it);
- a group launches from its launch template and mixed instances policy: the first override's
  instance type, the subnet of the zone with the fewest of its instances, spot or on-demand as
  the instances distribution says, the template's metadata options, instance profile, volumes
  (and no extra default root volume), instance and volume tags; a spot instance shuts down into
  termination, as a one-time spot instance does (moto launches the template's instance type,
  none here, in the first subnet, on-demand, with default metadata options and no profile);
- an instance terminated outside the group (TerminateInstances) is replaced only while the group
  is below its desired capacity (moto always replaces it).

Used by the pytest fixtures (tests/conftest.py), the benchmarks and `make demo`:

    python -m capillary.local.endpoint --port 0 --seed-spot tests/data/spot/eu-west-1.json
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import json
import logging
import os
import signal
import threading
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moto.autoscaling.exceptions import AutoscalingClientError
from moto.autoscaling.exceptions import ValidationError as AutoScalingValidationError
from moto.autoscaling.models import (
    ASG_NAME_TAG,
    AutoScalingBackend,
    FakeAutoScalingGroup,
    InstanceState,
    TerminateInstanceActivity,
)
from moto.autoscaling.responses import AutoScalingResponse
from moto.awslambda.models import EventInvokeConfig, LambdaBackend
from moto.core.responses import ActionResult
from moto.core.types import Base64EncodedString
from moto.ec2.exceptions import InvalidParameterValueError
from moto.ec2.models.amis import AmiBackend
from moto.ec2.models.instances import Instance
from moto.ec2.models.spot_requests import SpotInstanceRequest
from moto.ec2.responses.amis import AmisResponse
from moto.ec2.responses.instances import InstanceResponse
from moto.ec2.responses.spot_instances import SpotInstances
from moto.ec2.utils import convert_tag_spec
from moto.server import ThreadedMotoServer

from capillary.contract.times import as_utc

DEFAULT_REGION = "eu-west-1"
# DescribeSpotPriceHistory filter names and the SpotPrice attribute each one matches.
_PRICE_FILTERS = {
    "availability-zone": "availability_zone",
    "instance-type": "instance_type",
    "product-description": "product_description",
}


@dataclass(frozen=True)
class SpotPrice:
    """One observation, as AWS reports it in DescribeSpotPriceHistory."""

    instance_type: str
    availability_zone: str
    price: float
    timestamp: dt.datetime
    product_description: str = "Linux/UNIX"

    @property
    def region(self) -> str:
        return self.availability_zone[:-1]

    def as_api(self) -> dict[str, str]:
        return {
            "InstanceType": self.instance_type,
            "ProductDescription": self.product_description,
            "SpotPrice": f"{self.price:.6f}",
            "AvailabilityZone": self.availability_zone,
            "Timestamp": self.timestamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        }

    @classmethod
    def from_api(cls, row: Mapping[str, Any]) -> SpotPrice:
        ts = row["Timestamp"]
        if isinstance(ts, str):
            ts = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
        return cls(
            instance_type=row["InstanceType"],
            availability_zone=row["AvailabilityZone"],
            price=float(row["SpotPrice"]),
            timestamp=ts,
            product_description=row.get("ProductDescription", "Linux/UNIX"),
        )


_seeded: dict[str, list[SpotPrice]] = {}
_seed_lock = threading.Lock()
_original_describe = SpotInstances.describe_spot_price_history


def _as_datetime(value: Any) -> dt.datetime | None:
    if value is None or value == "":
        return None
    return as_utc(value)


def select_prices(
    series: Iterable[SpotPrice],
    instance_types: list[str],
    product_descriptions: list[str],
    filters: Mapping[str, Any],  # name -> list of values (moto's querystring parse)
    start: dt.datetime | None,
    end: dt.datetime | None,
) -> list[SpotPrice]:
    """Rows AWS would return, newest first: those inside [start, end] plus, for each
    (type, zone, product), the price in force at `start`."""
    end = end or dt.datetime.now(dt.UTC)
    rows = [
        p
        for p in series
        if (not instance_types or p.instance_type in instance_types)
        and (not product_descriptions or p.product_description in product_descriptions)
        and all(
            getattr(p, _PRICE_FILTERS[name]) in values
            for name, values in filters.items()
            if name in _PRICE_FILTERS
        )
        and p.timestamp <= end
    ]
    rows.sort(key=lambda p: p.timestamp, reverse=True)
    if start is None:
        return rows
    selected: list[SpotPrice] = []
    in_force_taken: set[tuple[str, str, str]] = set()
    for p in rows:
        ident = (p.instance_type, p.availability_zone, p.product_description)
        if p.timestamp >= start:
            selected.append(p)
        elif ident not in in_force_taken:
            in_force_taken.add(ident)
            selected.append(p)
    return selected


def _describe_spot_price_history(self: SpotInstances) -> ActionResult:
    with _seed_lock:
        series = list(_seeded.get(self.region, []))
    if not series:
        return _original_describe(self)
    max_results = int(self._get_param("MaxResults") or 1000)
    offset = int(self._get_param("NextToken") or 0)
    rows = select_prices(
        series,
        instance_types=list(self._get_param("InstanceTypes", []) or []),
        product_descriptions=list(self._get_param("ProductDescriptions", []) or []),
        filters=self._filters_from_querystring(),
        start=_as_datetime(self._get_param("StartTime")),
        end=_as_datetime(self._get_param("EndTime")),
    )
    page = rows[offset : offset + max_results]
    result: dict[str, Any] = {"SpotPriceHistory": [p.as_api() for p in page]}
    if offset + max_results < len(rows):
        result["NextToken"] = str(offset + max_results)
    return ActionResult(result)


SpotInstances.describe_spot_price_history = _describe_spot_price_history  # type: ignore[method-assign]


def _put_function_event_invoke_config(
    self: LambdaBackend, function_name: str, config: dict[str, Any]
) -> dict[str, Any]:
    """PutFunctionEventInvokeConfig as AWS documents it: the new configuration replaces the old."""
    fn = self.get_function(function_name)
    event_config = EventInvokeConfig(fn.function_arn, fn.last_modified, config)
    fn.event_invoke_config = [event_config]
    response: dict[str, Any] = event_config.response()
    return response


LambdaBackend.put_function_event_invoke_config = _put_function_event_invoke_config  # type: ignore[method-assign]


_original_modify_image_attribute = AmisResponse.modify_image_attribute
_original_describe_image_attribute = AmiBackend.describe_image_attribute


def _modify_image_attribute(self: AmisResponse) -> Any:
    """ModifyImageAttribute with ImdsSupport stored on the image (moto ignores it)."""
    value = (self._get_param("ImdsSupport") or {}).get("Value")
    if value is not None:
        if value != "v2.0":
            raise InvalidParameterValueError(value)  # AWS: "v2.0" is the only value
        image = self.ec2_backend.describe_images(ami_ids=[self._get_param("ImageId")])[0]
        self.error_on_dryrun()
        image.imds_support = value
    return _original_modify_image_attribute(self)


def _describe_image_attribute(self: AmiBackend, ami_id: str, attribute_name: str) -> Any:
    if attribute_name == "imds":  # moto's name for imdsSupport, which it never stores
        return getattr(self.describe_images(ami_ids=[ami_id])[0], "imds_support", None)
    return _original_describe_image_attribute(self, ami_id, attribute_name)


AmisResponse.modify_image_attribute = _modify_image_attribute  # type: ignore[method-assign]
AmiBackend.describe_image_attribute = _describe_image_attribute  # type: ignore[method-assign]


_original_launch_spot_instance = SpotInstanceRequest.launch_instance


def _launch_spot_instance(self: SpotInstanceRequest) -> Instance:
    """A fleet's spot instance, launched with its launch template (and so its volumes)."""
    template = getattr(getattr(self, "launch_spec", None), "launch_template_spec", None)
    if not template:
        return _original_launch_spot_instance(self)
    spec = self.launch_specification
    mappings = self.ec2_backend._get_template_from_args(template).data.get("BlockDeviceMappings")
    reservation = self.ec2_backend.run_instances(
        image_id=spec.image_id,
        count=1,
        user_data=self.user_data,
        instance_type=spec.instance_type,
        is_instance_type_default=not spec.instance_type,
        subnet_id=spec.subnet_id,
        key_name=spec.key_name,
        security_group_names=[],
        security_group_ids=spec.groups,
        spot_fleet_id=self.spot_fleet_id,
        tags=self.all_tags,
        lifecycle="spot",
        launch_template=template,
        # given, not read from the template, so moto adds no default root volume beside them
        **({"block_device_mappings": mappings} if mappings else {}),
    )
    instance: Instance = reservation.instances[0]
    return instance


SpotInstanceRequest.launch_instance = _launch_spot_instance  # type: ignore[method-assign]


# --- Auto Scaling, as AWS does it -----------------------------------------------------------------
# One lock for every Auto Scaling request and for EC2's TerminateInstances (which moto routes into
# the groups): AWS applies a group's capacity changes one at a time.
_autoscaling_lock = threading.RLock()
_original_autoscaling_call = AutoScalingResponse.call_action
_original_terminate_instances = InstanceResponse.terminate_instances
_original_group_update = FakeAutoScalingGroup.update
_original_create_group = AutoScalingBackend.create_auto_scaling_group


def _autoscaling_call(self: AutoScalingResponse) -> Any:
    with _autoscaling_lock:
        return _original_autoscaling_call(self)


def _terminate_instances(self: InstanceResponse) -> ActionResult:
    with _autoscaling_lock:
        return _original_terminate_instances(self)


def _create_group(self: AutoScalingBackend, name: str, *args: Any, **kwargs: Any) -> FakeAutoScalingGroup:
    if name in self.autoscaling_groups:
        raise AutoscalingClientError(
            "AlreadyExists",
            f"AutoScalingGroup by this name already exists - A group with the name {name} already exists",
        )
    group: FakeAutoScalingGroup = _original_create_group(self, name, *args, **kwargs)
    return group


def _check_desired(desired: int, min_size: int | None, max_size: int | None) -> None:
    if max_size is not None and desired > max_size:
        raise AutoScalingValidationError(
            f"New SetDesiredCapacity value {desired} is above max value {max_size} for the AutoScalingGroup."
        )
    if min_size is not None and desired < min_size:
        raise AutoScalingValidationError(
            f"New SetDesiredCapacity value {desired} is below min value {min_size} for the AutoScalingGroup."
        )


def _set_desired_capacity(self: AutoScalingBackend, group_name: str, desired_capacity: int | None) -> None:
    group = self.autoscaling_groups.get(group_name)
    if group is None:
        raise AutoScalingValidationError(f"AutoScalingGroup name not found - {group_name}")
    if desired_capacity is not None:
        _check_desired(desired_capacity, group.min_size, group.max_size)
    group.set_desired_capacity(desired_capacity)
    self.update_attached_elbs(group_name)


def _group_update(self: FakeAutoScalingGroup, *args: Any, **kwargs: Any) -> None:
    """UpdateAutoScalingGroup: unspecified settings stay; the desired capacity stays within the sizes."""
    if (
        kwargs.get("mixed_instances_policy") is None
        and not kwargs.get("launch_template")
        and self.mixed_instances_policy
    ):
        # moto stores the template's id and name, and refuses a specification carrying both
        kept = copy.deepcopy(self.mixed_instances_policy)
        spec = kept["LaunchTemplate"]["LaunchTemplateSpecification"]
        spec.pop("LaunchTemplateName" if spec.get("LaunchTemplateId") else "LaunchTemplateId", None)
        kwargs["mixed_instances_policy"] = kept
    min_size = kwargs["min_size"] if kwargs.get("min_size") is not None else self.min_size
    max_size = kwargs["max_size"] if kwargs.get("max_size") is not None else self.max_size
    desired = kwargs.get("desired_capacity")
    if desired is not None:
        if (max_size is not None and desired > max_size) or (min_size is not None and desired < min_size):
            raise AutoScalingValidationError(
                f"Desired capacity:{desired} must be between the specified min size:{min_size}"
                f" and max size:{max_size}"
            )
    elif max_size is not None and (self.desired_capacity or 0) > max_size:
        kwargs["desired_capacity"] = max_size  # AWS: a MaxSize below the desired capacity lowers it
    elif min_size is not None and (self.desired_capacity or 0) < min_size:
        kwargs["desired_capacity"] = min_size
    _original_group_update(self, *args, **kwargs)


def _terminate_group_instance(
    self: AutoScalingBackend, instance_id: str, should_decrement: bool
) -> TerminateInstanceActivity:
    group = next(
        (
            g
            for g in self.autoscaling_groups.values()
            if any(state.instance.id == instance_id for state in g.instance_states)
        ),
        None,
    )
    if group is None:
        raise AutoScalingValidationError(
            f"Instance Id not found - No managed instance found for instance ID: {instance_id}"
        )
    if should_decrement and (group.desired_capacity or 0) <= (group.min_size or 0):
        raise AutoScalingValidationError(
            f"Currently, desiredSize equals minSize ({group.min_size or 0}). Terminating instance"
            " without replacement will violate group's min size constraint. Either set"
            " shouldDecrementDesiredCapacity flag to false or lower group's min size."
        )
    original_size = group.desired_capacity
    instance = next(s.instance for s in group.instance_states if s.instance.id == instance_id)
    self.detach_instances(group.name, [instance_id], should_decrement)
    self.ec2_backend.terminate_instances([instance_id])
    return TerminateInstanceActivity(instance, original_size or 0)


def _notify_terminate_instances(self: AutoScalingBackend, instance_ids: list[str]) -> None:
    """Instances terminated from EC2 leave their groups; a group below its desired capacity refills."""
    for name, group in self.autoscaling_groups.items():
        before = len(group.instance_states)
        group.instance_states = [s for s in group.instance_states if s.instance.id not in instance_ids]
        missing = (group.desired_capacity or 0) - len(group.active_instances())
        if len(group.instance_states) < before and missing > 0:
            group.replace_autoscaling_group_instances(missing, group.get_propagated_tags())
            self.update_attached_elbs(name)


def _least_used_subnet(group: FakeAutoScalingGroup, subnet_ids: list[str]) -> str | None:
    """The group's subnet in the zone with the fewest of its instances (AWS balances the zones)."""
    if not subnet_ids:
        return None
    zone_of = {s.id: s.availability_zone for s in group.ec2_backend.describe_subnets(subnet_ids=subnet_ids)}
    in_zone: dict[str, int] = {}
    for state in group.active_instances():
        zone = str(state.instance.placement.zone)
        in_zone[zone] = in_zone.get(zone, 0) + 1
    return min(subnet_ids, key=lambda sid: (in_zone.get(zone_of[sid], 0), subnet_ids.index(sid)))


def _next_is_on_demand(group: FakeAutoScalingGroup, distribution: Mapping[str, Any]) -> bool:
    """Whether the group's next instance is on-demand: the base first, then the percentage above it."""
    active = group.active_instances()
    on_demand = sum(1 for s in active if s.instance.lifecycle != "spot")
    total = len(active) + 1
    base = int(distribution.get("OnDemandBaseCapacity", 0) or 0)
    percent = int(distribution.get("OnDemandPercentageAboveBaseCapacity", 100) or 0)
    wanted = min(total, base) + -(-max(total - base, 0) * percent // 100)
    return on_demand < wanted


def _launch_group_instances(
    self: FakeAutoScalingGroup, count_needed: int, propagated_tags: dict[str, str]
) -> None:
    """A group's scale-out as AWS launches it from a launch template and mixed instances policy."""
    if self.ec2_launch_template is None:
        _original_replace_group_instances(self, count_needed, propagated_tags)
        return
    version = self.ec2_launch_template.get_version(self.launch_template_version)
    data = version.data
    policy = self.mixed_instances_policy or {}
    overrides = (policy.get("LaunchTemplate") or {}).get("Overrides") or []
    instance_type = overrides[0]["InstanceType"] if overrides else data.get("InstanceType") or "m1.small"
    distribution = policy.get("InstancesDistribution") or {}
    tag_specs = convert_tag_spec(data.get("TagSpecifications", []))
    instance_tags = {**tag_specs.get("instance", {}), **propagated_tags, ASG_NAME_TAG: self.name}
    subnet_ids = self.vpc_zone_identifier.split(",") if self.vpc_zone_identifier else []
    profile = data.get("IamInstanceProfile") or {}
    user_data = data.get("UserData")
    if isinstance(user_data, str):  # moto's CreateLaunchTemplateVersion keeps it as it came
        user_data = Base64EncodedString(user_data)
    for _ in range(count_needed):
        spot = bool(policy) and not _next_is_on_demand(self, distribution)
        subnet_id = _least_used_subnet(self, subnet_ids)
        reservation = self.ec2_backend.run_instances(
            version.image_id,
            1,
            user_data,
            [],
            instance_type=instance_type,
            is_instance_type_default=False,
            region_name=self.region,
            subnet_id=subnet_id,
            placement=None if subnet_id else self.availability_zones[0],
            security_group_ids=list(data.get("SecurityGroupIds", []) or []),
            key_name=data.get("KeyName"),
            tags={"instance": instance_tags, "volume": tag_specs.get("volume", {})},
            launch_template={"LaunchTemplateId": self.ec2_launch_template.id, "Version": str(version.number)},
            metadata_options=data.get("MetadataOptions", {}),
            lifecycle="spot" if spot else None,
            # A one-time spot instance cannot stop: a shutdown from inside terminates it.
            instance_initiated_shutdown_behavior="terminate" if spot else None,
            # given, not read from the template, so moto adds no default root volume beside them
            **(
                {"block_device_mappings": data["BlockDeviceMappings"]}
                if data.get("BlockDeviceMappings")
                else {}
            ),
        )
        instance = reservation.instances[0]
        if profile.get("Name") or profile.get("Arn"):
            self.ec2_backend.associate_iam_instance_profile(
                instance_id=instance.id,
                iam_instance_profile_name=profile.get("Name"),
                iam_instance_profile_arn=profile.get("Arn"),
            )
        instance.autoscaling_group = self  # type: ignore[attr-defined]  # moto's own back-reference
        self.instance_states.append(
            InstanceState(instance, protected_from_scale_in=self.new_instances_protected_from_scale_in)
        )


_original_replace_group_instances = FakeAutoScalingGroup.replace_autoscaling_group_instances
AutoScalingResponse.call_action = _autoscaling_call  # type: ignore[method-assign]
InstanceResponse.terminate_instances = _terminate_instances  # type: ignore[method-assign]
AutoScalingBackend.create_auto_scaling_group = _create_group  # type: ignore[method-assign]
AutoScalingBackend.set_desired_capacity = _set_desired_capacity  # type: ignore[method-assign]
AutoScalingBackend.terminate_instance = _terminate_group_instance  # type: ignore[method-assign]
AutoScalingBackend.notify_terminate_instances = _notify_terminate_instances  # type: ignore[method-assign]
FakeAutoScalingGroup.update = _group_update  # type: ignore[method-assign]
FakeAutoScalingGroup.replace_autoscaling_group_instances = _launch_group_instances  # type: ignore[method-assign]


class LocalAWS:
    """moto's ThreadedMotoServer on 127.0.0.1, with the environment a client needs to use it."""

    def __init__(self, region: str = DEFAULT_REGION, port: int = 0) -> None:
        self.region = region
        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        self.endpoint_url = ""

    def start(self) -> LocalAWS:
        # One line per request is noise for a person watching a run (and floods test output).
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint_url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.stop()
        self.clear_spot_prices()

    @property
    def env(self) -> dict[str, str]:
        """What a boto3 client, an `ansible-playbook` run or a worker needs to reach the endpoint."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",  # moto's fixed dummy key; nothing secret
            "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
            "NO_PROXY": "127.0.0.1,localhost",
        }

    def reset(self) -> None:
        """Forget every resource (moto's reset API) and every seeded price."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()
        self.clear_spot_prices()

    def set_iam_enforcement(self, initial_no_auth_actions: int | None) -> None:
        """Switch moto's IAM enforcement on after N unauthenticated calls (None switches it off)."""
        value = "inf" if initial_no_auth_actions is None else str(initial_no_auth_actions)
        req = urllib.request.Request(
            f"{self.endpoint_url}/moto-api/reset-auth",
            data=value.encode(),
            method="POST",
            headers={"Content-Type": "text/plain"},  # a form body would hide it from moto
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            resp.read()

    @staticmethod
    def seed_spot_prices(prices: Iterable[SpotPrice]) -> int:
        """Add observations to the series the endpoint answers with; returns how many."""
        count = 0
        with _seed_lock:
            for p in prices:
                _seeded.setdefault(p.region, []).append(p)
                count += 1
        return count

    @staticmethod
    def clear_spot_prices() -> None:
        with _seed_lock:
            _seeded.clear()

    def client(self, service: str, **kwargs: Any) -> Any:
        """A client of the endpoint with its test keys, from a session of the current environment.

        boto3's default session reads the config files once per process; a test that points
        AWS_CONFIG_FILE/AWS_PROFILE elsewhere later would meet the old profile map there.
        """
        return _session().client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=kwargs.pop("region_name", self.region),
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            **kwargs,
        )


_SESSION_ENV = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE")
_sessions: dict[tuple[str | None, ...], Any] = {}
_session_lock = threading.Lock()


def _session() -> Any:
    import boto3

    key = tuple(os.environ.get(name) for name in _SESSION_ENV)
    with _session_lock:
        if key not in _sessions:
            _sessions[key] = boto3.session.Session()
        return _sessions[key]


@contextlib.contextmanager
def running(region: str = DEFAULT_REGION) -> Iterator[LocalAWS]:
    aws = LocalAWS(region).start()
    try:
        yield aws
    finally:
        aws.stop()


def load_spot_series(path: Path) -> list[SpotPrice]:
    """Read a JSON file shaped like DescribeSpotPriceHistory's `SpotPriceHistory` list."""
    return [SpotPrice.from_api(row) for row in json.loads(path.read_text())]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", DEFAULT_REGION))
    parser.add_argument("--seed-spot", type=Path, action="append", default=[])
    parser.add_argument("--env-file", type=Path, help="write the client environment here")
    args = parser.parse_args()
    aws = LocalAWS(args.region, args.port).start()
    for path in args.seed_spot:
        aws.seed_spot_prices(load_spot_series(path))
    env = "".join(f"export {k}={v}\n" for k, v in aws.env.items())
    if args.env_file:
        args.env_file.write_text(env)
    print(env, end="", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    aws.stop()


if __name__ == "__main__":
    main()
