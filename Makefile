# Convenience targets; each script installs what it needs (see scripts/setup.sh).
.PHONY: run test bench image lint
run:    ## the main job
	bash scripts/run.sh
test:   ## lint, types and the whole test suite (what CI runs)
	bash scripts/test.sh
bench:  ## sandbox benchmark (HumanEval, ratios against baselines measured in the same run)
	bash scripts/run.sh --rounds 3 --docker-run-sample 24
image:  ## build the sandbox image (idempotent)
	bash -c 'source scripts/setup.sh && ensure_system_packages && ensure_venv && ensure_docker && ensure_image'
lint:
	.venv/bin/ruff check sandboxes reward_server reward_api trainer_client tests bench && .venv/bin/mypy
