# The Capillary worker image, for one PCGR release from catalogue/pcgr_releases.yml.
#
#   packer build -var-file=packer/releases/2.3.2.pkrvars.hcl -only=amazon-ebs.worker packer/worker.pkr.hcl
#   PATH=$PWD/packer/bin:$PATH packer build -var-file=... -only=docker.local packer/worker.pkr.hcl
#
# Written for Packer 1.6.6 (Debian's package): no `packer init`, no `required_plugins` here (see
# plugins.pkr.hcl.example for newer Packer). Both sources are built by the same single ansible
# provisioner (playbooks/provision.yml), which ends with the image_hygiene gate.

# --- the release (packer/releases/<version>.pkrvars.hcl, generated from the catalogue) --------
variable "pcgr_version" {
  type        = string
  description = "PCGR release baked into the image (a catalogue version, e.g. 2.3.2)."
}

variable "bundle_version" {
  type        = string
  description = "PCGR reference bundle date (YYYYMMDD) of the release."
}

variable "vep_version" {
  type        = number
  description = "Ensembl VEP version the release needs."
}

variable "root_volume_size" {
  type        = number
  description = "Root volume size in GiB."
}

variable "data_volume_size" {
  type        = number
  description = "Reference data volume size in GiB (bundle and VEP cache)."
}

# --- what is being built and by whom ---------------------------------------------------------
variable "capillary_version" {
  type        = string
  default     = "0.0.0"
  description = "Capillary package version installed in the image."
}

variable "capillary_commit" {
  type        = string
  default     = "unknown"
  description = "Git commit of the Capillary checkout the image is built from."
}

variable "deployment" {
  type        = string
  default     = "demo"
  description = "capillary_deployment the image is tagged for."
}

variable "output_dir" {
  type        = string
  default     = "out/packer"
  description = "Directory for the manifest and version-info.json brought back from the build."
}

variable "provision_extra_vars" {
  type        = string
  default     = "{}"
  description = "JSON extra vars for playbooks/provision.yml (engine, artifact mirrors, roles to skip)."
}

variable "ansible_playbook" {
  type        = string
  default     = "ansible-playbook"
  description = "ansible-playbook executable (the project venv's)."
}

# --- amazon-ebs ------------------------------------------------------------------------------
variable "aws_region" {
  type        = string
  default     = "eu-west-1"
  description = "Region the AMI is built and registered in."
}

variable "base_os" {
  type        = string
  default     = "debian-12"
  description = "Base image family: debian-12 (owner 136693071363) or ubuntu-24.04 (owner 099720109477)."
}

variable "source_ami_owner" {
  type        = string
  default     = ""
  description = "Owner of the base image, overriding base_os's (a private mirror; tests)."
}

variable "source_ami_name" {
  type        = string
  default     = ""
  description = "Name pattern of the base image, overriding base_os's."
}

variable "spot_instance_types" {
  type        = list(string)
  default     = ["m6i.large", "m5.large", "m5a.large", "t3.large"]
  description = "Instance types the spot build may use (cheapest available)."
}

variable "instance_type" {
  type        = string
  default     = ""
  description = "On-demand build instance type; leave empty for a spot build over spot_instance_types."
}

variable "spot_price" {
  type        = string
  default     = "auto"
  description = "Spot price for the build instance; \"auto\" bids the on-demand price."
}

variable "subnet_id" {
  type        = string
  default     = ""
  description = "Subnet of the build instance (empty: the default VPC)."
}

variable "ssh_username" {
  type        = string
  default     = "admin"
  description = "Login user of the base image (admin on Debian, ubuntu on Ubuntu)."
}

variable "ssh_host" {
  type        = string
  default     = ""
  description = "Override of the build instance's address (tests point it at a local SSH target)."
}

variable "ssh_keypair_name" {
  type        = string
  default     = ""
  description = "Existing EC2 key pair for the build (empty: Packer creates a temporary one)."
}

variable "ssh_private_key_file" {
  type        = string
  default     = ""
  description = "Private key of ssh_keypair_name."
}

variable "ssh_port" {
  type        = number
  default     = 22
  description = "SSH port of the build instance."
}

variable "aws_endpoint" {
  type        = string
  default     = ""
  description = "EC2 endpoint override (a local AWS endpoint in tests); empty for AWS."
}

variable "aws_skip_validation" {
  type        = bool
  default     = false
  description = "Skip region/credential/metadata checks (only against a local AWS endpoint)."
}

# --- local container source ------------------------------------------------------------------
variable "local_base_image" {
  type        = string
  default     = "localhost/capillary-bookworm:latest"
  description = "Bookworm base image booting systemd (scripts/build-base-image.sh)."
}

variable "local_network" {
  type        = string
  default     = "bridge"
  description = "Network of the build container: bridge (podman's default, NAT to the internet) or host (it reaches servers on the host's loopback, e.g. the tests' artifact server)."
}

variable "build_key" {
  type        = string
  default     = ""
  description = "Key of everything the image is built from (playbooks/bake.yml), labelled so a cached image is reused only for the same inputs."
}

variable "local_repository" {
  type        = string
  default     = "localhost/capillary-worker"
  description = "Repository of the local worker image; the tag is the PCGR release."
}

locals {
  build_time = formatdate("YYYYMMDD'T'hhmmss'Z'", timestamp())
  image_name = "capillary-worker-${var.pcgr_version}-${local.build_time}"
  source_ami_filters = {
    "debian-12"    = { owner = "136693071363", name = "debian-12-amd64-*" }
    "ubuntu-24.04" = { owner = "099720109477", name = "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*" }
  }
  source_ami = {
    owner = var.source_ami_owner != "" ? var.source_ami_owner : local.source_ami_filters[var.base_os].owner
    name  = var.source_ami_name != "" ? var.source_ami_name : local.source_ami_filters[var.base_os].name
  }
  # Where the amazon-ebs build attaches the data volume; provision.yml is told the same name and
  # looks up the volume id mapped there (data_volume finds the volume by id, whatever its NVMe name).
  data_volume_device = "/dev/sdf"
  # The build container's name: the ansible podman connection reaches it by this name.
  build_container = "capillary-bake-${replace(var.pcgr_version, ".", "-")}-${local.build_time}"
  tags = {
    "Name"                 = local.image_name
    "capillary:deployment" = var.deployment
    "capillary:release"    = var.pcgr_version
    "capillary:bundle"     = var.bundle_version
    "capillary:vep"        = "${var.vep_version}"
    "capillary:commit"     = var.capillary_commit
    "capillary:version"    = var.capillary_version
    "capillary:build-time" = local.build_time
    "capillary:base-os"    = var.base_os
  }
}

source "amazon-ebs" "worker" {
  region          = var.aws_region
  ami_name        = local.image_name
  ami_description = "Capillary worker, PCGR ${var.pcgr_version}, bundle ${var.bundle_version}, VEP ${var.vep_version}"

  source_ami_filter {
    filters = {
      name                = local.source_ami.name
      architecture        = "x86_64"
      virtualization-type = "hvm"
      root-device-type    = "ebs"
    }
    owners      = [local.source_ami.owner]
    most_recent = true
  }

  # Build on spot: the cheapest of several types, at most the on-demand price.
  instance_type       = var.instance_type
  spot_price          = var.spot_price
  spot_instance_types = var.spot_instance_types
  subnet_id           = var.subnet_id

  # Packer 1.6.6 knows neither `metadata_options` (IMDSv2-only build instance) nor
  # `imds_support = "v2.0"` (IMDSv2 for every instance launched from the AMI): both are in
  # plugins.pkr.hcl.example for newer Packer. With 1.6.6, provision.yml makes the build instance
  # IMDSv2-only before any role runs, and playbooks/bake.yml sets the AMI's ImdsSupport to v2.0
  # after the build (EC2 ModifyImageAttribute).

  encrypt_boot = true
  launch_block_device_mappings {
    device_name           = "/dev/xvda"
    volume_size           = var.root_volume_size
    volume_type           = "gp3"
    throughput            = 125
    iops                  = 3000
    encrypted             = true
    delete_on_termination = true
  }
  launch_block_device_mappings {
    device_name           = local.data_volume_device
    volume_size           = var.data_volume_size
    volume_type           = "gp3"
    throughput            = 125
    iops                  = 3000
    encrypted             = true
    delete_on_termination = true
  }

  communicator              = "ssh"
  ssh_username              = var.ssh_username
  ssh_host                  = var.ssh_host
  ssh_port                  = var.ssh_port
  ssh_keypair_name          = var.ssh_keypair_name
  ssh_private_key_file      = var.ssh_private_key_file
  ssh_interface             = var.ssh_host == "" ? "public_ip" : ""
  ssh_timeout               = "10m"
  ssh_clear_authorized_keys = true

  custom_endpoint_ec2        = var.aws_endpoint
  skip_region_validation     = var.aws_skip_validation
  skip_credential_validation = var.aws_skip_validation
  skip_metadata_api_check    = var.aws_skip_validation

  tags          = merge(local.tags, { "capillary:source-ami" = "{{ .SourceAMI }}" })
  snapshot_tags = merge(local.tags, { "capillary:source-ami" = "{{ .SourceAMI }}" })
  run_tags      = { "Name" = "packer-${local.image_name}", "capillary:role" = "bake" }
}

# The local "AMI": a container image booting systemd, built by the same provisioning. Packer's
# docker builder drives `docker`; packer/bin/docker hands that to podman.
source "docker" "local" {
  image  = var.local_base_image
  pull   = false
  commit = true
  # systemd as PID 1 (the consumer unit is enabled against a real systemd), named so the
  # ansible podman connection can reach it.
  run_command = [
    "-d", "--name", local.build_container, "--systemd=always", "--tmpfs", "/tmp",
    "--network", var.local_network, "--entrypoint", "/sbin/init", "{{ .Image }}",
  ]
  changes = [
    "ENTRYPOINT []",
    "CMD [\"/sbin/init\"]",
    "STOPSIGNAL SIGRTMIN+3",
    "ENV container=podman",
    "LABEL org.capillary.release=${var.pcgr_version}",
    "LABEL org.capillary.bundle=${var.bundle_version}",
    "LABEL org.capillary.vep=${var.vep_version}",
    "LABEL org.capillary.commit=${var.capillary_commit}",
    "LABEL org.capillary.build-key=${var.build_key}",
    "LABEL org.capillary.build-time=${local.build_time}",
  ]
}

build {
  name    = "worker"
  sources = ["source.amazon-ebs.worker", "source.docker.local"]

  provisioner "ansible" {
    playbook_file = "${path.root}/../playbooks/provision.yml"
    command       = var.ansible_playbook
    user          = var.ssh_username
    # Ansible connects itself (ssh to the instance, podman to the container) instead of through
    # Packer 1.6.6's SSH proxy, whose ssh-rsa-only host key modern OpenSSH refuses.
    use_proxy = false
    extra_arguments = [
      "--extra-vars", var.provision_extra_vars,
      "--extra-vars", "capillary_release=${var.pcgr_version} capillary_commit=${var.capillary_commit}",
      "--extra-vars", "capillary_packer_source=${source.type}",
      # amazon-ebs only (the local override below has no data volume): where the data volume is
      # attached, and where the controller describes the build instance to find its id.
      "--extra-vars", jsonencode({
        capillary_build_data_volume_device = local.data_volume_device
        capillary_build_aws_region         = var.aws_region
        capillary_build_aws_endpoint       = var.aws_endpoint
      }),
    ]
    ansible_env_vars = [
      "ANSIBLE_CONFIG=${path.root}/../ansible.cfg",
      "ANSIBLE_HOST_KEY_CHECKING=False",
      "ANSIBLE_NOCOLOR=1",
    ]
    override = {
      local = {
        inventory_directory = "${path.root}/inventory/local"
        extra_arguments = [
          "--extra-vars", var.provision_extra_vars,
          "--extra-vars", "capillary_release=${var.pcgr_version} capillary_commit=${var.capillary_commit}",
          "--extra-vars", "capillary_packer_source=docker",
          "--extra-vars", "capillary_build_container=${local.build_container}",
        ]
      }
    }
  }

  provisioner "file" {
    direction   = "download"
    source      = "/etc/capillary/version-info.json"
    destination = "${var.output_dir}/version-info-${source.name}.json"
  }

  post-processor "manifest" {
    output     = "${var.output_dir}/manifest.json"
    strip_path = true
    custom_data = {
      release          = var.pcgr_version
      bundle           = var.bundle_version
      vep              = "${var.vep_version}"
      capillary_commit = var.capillary_commit
      build_time       = local.build_time
    }
  }
}
