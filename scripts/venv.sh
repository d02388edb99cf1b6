# Sourced (not run) by scripts/run.sh and scripts/test.sh: gives the project its own virtual
# environment, so the packages never land in the system's Python. Debian 12 and 13 mark their Python
# as externally managed (PEP 668) and refuse `pip install` there; a pyenv or conda interpreter first
# on the PATH works too, it only serves to create the environment.
#
#   UMO_VENV    where the environment lives (default: .venv in the repository)
#   UMO_PYTHON  the interpreter to create it with (default: the first Python 3.11-3.13 on the PATH)

UMO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UMO_VENV=${UMO_VENV:-$UMO_ROOT/.venv}
# A value inherited from the old test.sh, or from a user's shell, must not reach the venv's pip:
# pip inside a venv never needs it, and outside one it would write into the system's Python.
unset PIP_BREAK_SYSTEM_PACKAGES PIP_USER
export PIP_DISABLE_PIP_VERSION_CHECK=1

umo_say() { printf '%s\n' "$*" >&2; }
umo_die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The pinned binary packages (torch 2.13.0, onnxruntime, dlib-bin, ...) publish wheels for CPython
# 3.11, 3.12 and 3.13; with another version pip would try to compile them or find nothing.
umo_python_ok() {
  "$1" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] <= (3, 13)))' >/dev/null 2>&1
}

umo_python_version() { "$1" --version 2>&1 | head -n 1; }

# Prints the interpreter that creates the environment. A too-old python3 first on the PATH (an old
# conda base, say) must not hide a usable python3.12 or Debian's own /usr/bin/python3 further on.
umo_find_python() {
  local candidate path
  if [ -n "${UMO_PYTHON:-}" ]; then
    path=$(command -v "$UMO_PYTHON" 2>/dev/null) || umo_die "UMO_PYTHON=$UMO_PYTHON: no such program."
    umo_python_ok "$path" || umo_die "UMO_PYTHON=$UMO_PYTHON is $(umo_python_version "$path"); this project needs Python 3.11, 3.12 or 3.13."
    printf '%s\n' "$path"; return
  fi
  for candidate in python3 python3.13 python3.12 python3.11 /usr/bin/python3; do
    path=$(command -v "$candidate" 2>/dev/null) || continue
    if umo_python_ok "$path"; then printf '%s\n' "$path"; return; fi
  done
  if path=$(command -v python3 2>/dev/null); then
    umo_die "this project needs Python 3.11, 3.12 or 3.13, but python3 is $(umo_python_version "$path") ($path) and no python3.11-3.13 is on the PATH. Install one (Debian 12 and 13 ship 3.11 and 3.13: apt-get install python3 python3-venv) or point UMO_PYTHON at one."
  fi
  umo_die "no python3 on the PATH; this project needs Python 3.11, 3.12 or 3.13 (Debian: apt-get install python3 python3-venv)."
}

# Runs a command as root: directly when we are root, else through sudo.
umo_as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else umo_die "'$*' needs root; run it as root, or install sudo."
  fi
}

# Debian ships venv's pip bootstrap (ensurepip) in its own package, python3.X-venv; without it
# `python3 -m venv` stops after creating a half environment with no pip in it.
umo_install_venv_package() {
  local python=$1 package
  package="python$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
  if [ "$("$python" -c 'import sys; print(sys.base_prefix)')" != /usr ] || ! command -v apt-get >/dev/null 2>&1; then
    umo_die "'$python -m venv' failed (output above). This Python is not Debian's, so apt cannot fix it: repair its venv/ensurepip module, or point UMO_PYTHON at another Python 3.11-3.13."
  fi
  umo_say "Installing Debian's $package (python3 -m venv needs it) ..."
  umo_as_root apt-get update -qq || umo_die "apt-get update failed (output above)."
  umo_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null \
    || umo_die "apt-get install $package failed (output above)."
}

umo_venv_usable() {
  [ -x "$UMO_VENV/bin/python" ] && umo_python_ok "$UMO_VENV/bin/python" \
    && "$UMO_VENV/bin/python" -m pip --version >/dev/null 2>&1
}

umo_create_venv() {
  local python
  python=$(umo_find_python) || exit 1
  if [ -e "$UMO_VENV" ]; then
    # Left half-made by a failed creation, or made by an interpreter that is gone (a removed pyenv
    # version): start again, but only over something that is a venv.
    [ -f "$UMO_VENV/pyvenv.cfg" ] || umo_die "$UMO_VENV exists and is not a virtual environment; move it away or set UMO_VENV."
    umo_say "$UMO_VENV is not usable (no working Python 3.11-3.13 with pip in it); making it again."
    rm -rf "$UMO_VENV"
  fi
  umo_say "Creating the virtual environment $UMO_VENV with $python ($(umo_python_version "$python")) ..."
  if ! "$python" -m venv "$UMO_VENV"; then
    rm -rf "$UMO_VENV"
    umo_install_venv_package "$python"
    "$python" -m venv "$UMO_VENV" || umo_die "'$python -m venv $UMO_VENV' failed (output above)."
  fi
  umo_venv_usable || umo_die "the new virtual environment $UMO_VENV has no working pip."
}

# What a requirements file was installed as: its text and the venv's Python (implementation and
# 3.X, what wheels are built for; a Debian point update of the same 3.X must not cause a reinstall),
# so an edited file or an environment remade with another Python both lead to a new install.
umo_stamp_of() {
  { "$UMO_VENV/bin/python" -c 'import sys; print(sys.implementation.name, *sys.version_info[:2])'; cat "$1"; } \
    | sha256sum | cut -d' ' -f1
}

# umo_venv_ready REQUIREMENTS_FILE... : creates the environment when missing or broken, installs the
# files when any of them changed since the last install into it, and puts it first on the PATH.
umo_venv_ready() {
  local file stale=0 args=()
  if ! umo_venv_usable; then umo_create_venv; fi
  for file in "$@"; do
    [ -f "$file" ] || umo_die "$file: no such requirements file."
    args+=(-r "$file")
    [ "$(cat "$UMO_VENV/.umo-installed-$(basename "$file")" 2>/dev/null)" = "$(umo_stamp_of "$file")" ] || stale=1
  done
  if [ "$stale" = 1 ]; then
    # Installed together so pip resolves them as one set, as the Space does for requirements.txt.
    umo_say "Installing ${*##*/} into $UMO_VENV (the first time: up to about 3 GB of downloads, several minutes) ..."
    "$UMO_VENV/bin/python" -m pip install "${args[@]}" >&2 || umo_die "pip install into $UMO_VENV failed (output above)."
    for file in "$@"; do
      umo_stamp_of "$file" > "$UMO_VENV/.umo-installed-$(basename "$file")"
    done
  fi
  export VIRTUAL_ENV=$UMO_VENV PATH="$UMO_VENV/bin:$PATH"
  unset PYTHONHOME
  hash -r
}
