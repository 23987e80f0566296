#!/usr/bin/env bash
# Set up the project: a cached dependency environment keyed by the dependency pins, plus a
# per-clone overlay `.venv` that holds the editable `idv` install and sees the cached packages.
# The stack is ~6 GB, so one build is shared by every clone with the same pins; a clone with no
# cache (a new machine) builds it from nothing. Safe to run repeatedly; a no-op when up to date.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
py=${IDV_PYTHON:-python3.11}
command -v "$py" >/dev/null || { echo "setup: $py not found (set IDV_PYTHON to a Python >= 3.11)" >&2; exit 1; }

# Hash of everything that decides the dependency set: pins, extras, interpreter, this recipe.
key=$("$py" - <<'PY'
import hashlib, json, platform, sys, tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
recipe = {
    "deps": project["dependencies"],
    "extras": project.get("optional-dependencies", {}),
    "python": sys.version.split()[0],
    "machine": platform.machine(),
    "recipe": 1,
}
print(hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16])
PY
)
cache=${IDV_VENV_CACHE:-$HOME/.cache/idv/venvs}
deps="$cache/deps-$key"
mkdir -p "$cache"

# Silence the machine's harmless "Location ... is ignored" index warnings, keep real errors.
quiet_pip() {
  local rc
  set +e
  "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory"
  rc=${PIPESTATUS[0]}
  set -e
  return "$rc"
}

(
  flock 9
  if [ ! -f "$deps/.complete" ]; then
    echo "setup: building dependency environment $deps (first time on this machine: a few minutes)"
    start=$SECONDS
    rm -rf "$deps"
    "$py" -m venv "$deps"
    reqs=$("$py" - <<'PY'
import tomllib
p = tomllib.load(open("pyproject.toml", "rb"))["project"]
print("\n".join(p["dependencies"] + [d for ds in p.get("optional-dependencies", {}).values() for d in ds]))
PY
)
    # shellcheck disable=SC2086
    quiet_pip "$deps/bin/pip" install --quiet --upgrade pip setuptools wheel
    # shellcheck disable=SC2086
    quiet_pip "$deps/bin/pip" install --quiet $reqs
    "$deps/bin/pip" check
    touch "$deps/.complete"
    echo "setup: dependency environment built in $((SECONDS - start)) s"
  fi
) 9>"$cache/.lock-$key"

# Overlay venv: tiny, per clone; a .pth line puts the cached site-packages behind its own.
venv="$root/.venv"
site=$("$deps/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if [ ! -x "$venv/bin/python" ] || ! grep -qs "$site" "$venv"/lib/python3*/site-packages/_idv_deps.pth; then
  rm -rf "$venv"
  "$py" -m venv --without-pip "$venv"
  vsite=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$site')" > "$vsite/_idv_deps.pth"
  # Command-line tools of the dependencies (dvc, pytest, ruff, wandb...) run with the overlay's
  # interpreter so that they see the editable idv package.
  for tool in "$deps"/bin/*; do
    name=$(basename "$tool")
    case "$name" in python*|pip*|activate*|Activate*) continue ;; esac
    if head -c 200 "$tool" | head -1 | grep -q "^#!$deps/bin/python"; then
      { echo "#!$venv/bin/python"; tail -n +2 "$tool"; } > "$venv/bin/$name"
      chmod +x "$venv/bin/$name"
    else
      ln -sf "$tool" "$venv/bin/$name"
    fi
  done
fi
quiet_pip "$venv/bin/python" -m pip install --quiet --no-deps --no-build-isolation -e "$root"
"$venv/bin/python" -m pip check
echo "setup: ready ($venv -> $deps)"
