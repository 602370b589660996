# Convenience targets; each script installs what it needs (see scripts/setup.sh).
.PHONY: run test bench bench-trainer image lint
run:    ## the main job
	bash scripts/run.sh
test:   ## lint, types and the whole test suite (what CI runs)
	bash scripts/test.sh
bench:  ## sandbox benchmark (HumanEval, ratios against baselines measured in the same run)
	bash -c 'source scripts/setup.sh && setup_all && python bench/bench_sandbox.py --rounds 3 --docker-run-sample 24'
bench-trainer:  ## our GRPO step against TRL's GRPOTrainer, same settings, one script
	bash -c 'source scripts/setup.sh && setup_all && python bench/bench_trainer.py'

image:  ## build the sandbox image (idempotent)
	bash -c 'source scripts/setup.sh && ensure_system_packages && ensure_venv && ensure_docker && ensure_image'
lint:
	.venv/bin/ruff check sandboxes reward_server reward_api trainer_client tests bench && .venv/bin/mypy
