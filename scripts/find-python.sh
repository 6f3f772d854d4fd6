# find_python VERSION: the path of a working pythonVERSION, from PATH or from pyenv.
# Sourced by tests/run, scripts/runtime-venv and tests/install-check.

find_python() {  # find_python 3.12 -> path of a python3.12, from PATH or pyenv
  local version=$1 candidate
  candidate=$(command -v "python$version" 2>/dev/null || true)
  if [ -n "$candidate" ] && "$candidate" -c 'import sys' >/dev/null 2>&1; then
    echo "$candidate"; return
  fi
  if command -v pyenv >/dev/null 2>&1; then
    local full
    full=$(pyenv versions --bare 2>/dev/null | grep -E "^${version//./\\.}\.[0-9]+$" | sort -V | tail -n 1 || true)
    if [ -n "$full" ] && [ -x "$(pyenv root)/versions/$full/bin/python" ]; then
      echo "$(pyenv root)/versions/$full/bin/python"; return
    fi
  fi
  return 1
}
