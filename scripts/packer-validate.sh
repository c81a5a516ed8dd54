#!/usr/bin/env bash
# `packer validate` of packer/worker.pkr.hcl with each release's pins (Packer 1.6.6 validates
# one file at a time), and a check that every catalogue release has its pkrvars file.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export PATH="$here/.venv/bin:$here/packer/bin:$PATH"
template=packer/worker.pkr.hcl
[ -e "$template" ] || { echo "no $template"; exit 0; }
shopt -s nullglob
files=(packer/releases/*.pkrvars.hcl)
[ ${#files[@]} -gt 0 ] || { echo "no packer/releases/*.pkrvars.hcl" >&2; exit 1; }
status=0
for vars in "${files[@]}"; do
  if out=$(packer validate -var-file="$vars" "$template" 2>&1); then
    echo "packer validate $vars: ok"
  else
    echo "packer validate $vars: FAILED" >&2; echo "$out" >&2; status=1
  fi
done
exit $status
