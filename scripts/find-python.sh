#!/usr/bin/env bash
# Print the interpreter for the controller venv: Python >= 3.12 where one exists (ansible 14,
# ansible-core 2.21), else Python 3.11, the floor (ansible 12, ansible-core 2.19).
set -euo pipefail
for candidate in python3.12 python3.13 "$HOME"/.pyenv/versions/3.12*/bin/python3.12 \
                 "$HOME"/.pyenv/versions/3.13*/bin/python3.13 python3.11 python3; do
  path=$(command -v "$candidate" 2>/dev/null) || continue
  # pyenv shims exist for versions that are not active: ask the interpreter itself.
  if "$path" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
    echo "$path"
    exit 0
  fi
done
echo "no Python >= 3.11 found" >&2
exit 1
