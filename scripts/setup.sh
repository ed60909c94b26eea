#!/usr/bin/env bash
# One-command set-up (called by `make setup`, hence by `make test` and `make reproduce`).
# Idempotent: system packages are installed only when missing, the venv only when absent, and
# pip runs again only when pyproject.toml changed (a stamp keyed by its hash), so a second run
# takes seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

# chromium + chromium-driver: the headless browser of tests/test_demo_page.py
APT_PACKAGES=(libfluidsynth3 fluid-soundfont-gm musescore-general-soundfont-small csound-soundfont opl3-soundfont libsndfile1 ffmpeg chromium chromium-driver)
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "setup: installing system packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: missing system packages: ${missing[*]}" >&2
        echo "setup: install them with:  sudo apt-get install ${missing[*]}" >&2
        exit 1
    fi
fi

"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' || {
    echo "setup: Python >= 3.11 is required (found $("$PYTHON" --version))" >&2; exit 1; }
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"

stamp="$VENV/.guitarsep-setup-$(cat pyproject.toml | sha256sum | cut -c1-16)"
if [ ! -f "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --upgrade pip
    # torch first and pinned: an unpinned torch pulls a multi-GB CUDA build.
    "$VENV/bin/python" -m pip install -q torch==2.13.0
    "$VENV/bin/python" -m pip install -q -e '.[dev]'
    rm -f "$VENV"/.guitarsep-setup-*
    touch "$stamp"
fi
echo "setup: ok ($VENV)"
