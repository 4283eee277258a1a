#!/usr/bin/env bash
# .venv-eval: a small venv holding only NumPy and OpenCV's contrib wheel (CSRT, KCF, MIL
# trackers) for the classical baselines of the evaluation. It is separate from .venv
# because the contrib wheel and opencv-python-headless both provide `cv2`
# (requirements/eval-classical.txt). Idempotent; a re-run with nothing changed is instant.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv-eval"
py="$venv/bin/python"
requirements="$root/requirements/eval-classical.txt"
stamp="$venv/.requirements.sha"

log() { printf '[setup-eval] %s\n' "$*"; }

want="$(sha256sum "$requirements" | cut -d' ' -f1)"
if [ -x "$py" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$py" ]; then
  log "creating $venv"
  python3 -m venv "$venv"
fi
log "installing pinned requirements (requirements/eval-classical.txt)"
"$py" -m pip install --quiet --disable-pip-version-check -r "$requirements" 2>&1 \
  | { grep -v "^WARNING: Location .* is ignored" || true; }
"$py" -c 'import cv2; cv2.TrackerCSRT.create; cv2.TrackerKCF.create; cv2.TrackerMIL.create'
echo "$want" > "$stamp"
log "ready: $venv"
