# The two things a new user does. Each target sets up its own environment first (idempotent).
.PHONY: setup demo test bench

setup:
	bash scripts/setup_env.sh

## Run the pose-based and RGB-driven workflows headless in real ComfyUI; results in ./outputs/
demo: setup
	.venv/bin/python scripts/run_workflows.py --out outputs

## The lint (ruff, pinned in requirements-dev.txt) and the whole test suite (unit tests, real ComfyUI,
## real frontend in Chromium)
test: setup
	.venv/bin/ruff check .
	.venv/bin/python -m pytest tests -q -p no:cacheprovider

bench: setup
	for b in bench/*.py; do .venv/bin/python $$b || exit 1; done
