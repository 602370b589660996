"""Sampling speed: vLLM against transformers' `generate` (the baseline, in the same run), on the
same model, prompts, G and completion length, plus the weight-sync time per step.

    .venv/bin/python bench/bench_sampling.py [--prompts 2] [--group-size 4] [--max-tokens 64] [--repeats 2]

Both samplers are the trainer's own (`HFSampler`, `VLLMSampler`), fp32 on CPU (bf16 on a
GPU), temperature 1, EOS honoured (lengths vary run to run, so tokens/s counts the tokens
actually produced). The first call of each sampler is a warm-up and is not timed. Weight sync
is timed after a real optimizer step on the trainer's copy of the model.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

INSTRUCTIONS = [
    "Write a Python function `add(a, b)` that returns the sum of two numbers.",
    "Write a Python function `is_palindrome(s)` that tells whether a string reads the same backwards.",
    "Write a Python function `fizzbuzz(n)` that returns the FizzBuzz list up to n.",
    "Write a Python function `flatten(xs)` that flattens a list of lists.",
]


def tokens_per_s(sampler: Any, instructions: list[str], group_size: int, repeats: int) -> tuple[float, int, float]:
    sampler.sample(instructions, group_size)  # warm-up
    tokens, seconds = 0, 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        groups = sampler.sample(instructions, group_size)
        seconds += time.perf_counter() - started
        tokens += sum(len(c.completion_ids) for g in groups for c in g)
    return tokens / seconds, tokens, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--prompts", type=int, default=2)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--syncs", type=int, default=3)
    args = parser.parse_args()

    import torch

    from trainer_client.model import load_model, resolve_model
    from trainer_client.sampling import HFSampler
    from trainer_client.vllm_sampler import VLLMSampler

    device = "cuda" if torch.cuda.is_available() else "cpu"
    instructions = (INSTRUCTIONS * args.prompts)[: args.prompts]
    path = resolve_model(args.model)
    model, tokenizer = load_model(path, device=device)
    model.eval()
    hf = HFSampler(model, tokenizer, max_new_tokens=args.max_tokens)
    hf_rate, hf_tokens, hf_s = tokens_per_s(hf, instructions, args.group_size, args.repeats)

    started = time.perf_counter()
    vllm = VLLMSampler(
        path, tokenizer, max_new_tokens=args.max_tokens, dtype="float32" if device == "cpu" else "bfloat16", max_model_len=1024
    )
    startup = time.perf_counter() - started
    v_rate, v_tokens, v_s = tokens_per_s(vllm, instructions, args.group_size, args.repeats)

    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    syncs = []
    for _ in range(args.syncs):
        model.train()
        optimizer.zero_grad()
        batch = tokenizer(instructions, return_tensors="pt", padding=True).to(device)
        model(**batch, labels=batch["input_ids"]).loss.backward()
        optimizer.step()
        started = time.perf_counter()
        handed = vllm.sync_weights(model)
        syncs.append(time.perf_counter() - started)
    vllm.close()

    result = {
        "device": torch.cuda.get_device_name() if device == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
        "prompts": args.prompts,
        "group_size": args.group_size,
        "max_tokens": args.max_tokens,
        "hf_tokens_per_s": round(hf_rate, 1),
        "hf": {"tokens": hf_tokens, "seconds": round(hf_s, 2)},
        "vllm_tokens_per_s": round(v_rate, 1),
        "vllm": {"tokens": v_tokens, "seconds": round(v_s, 2), "startup_s": round(startup, 1)},
        "vllm_over_hf": round(v_rate / hf_rate, 2),
        "weight_sync_s": [round(s, 3) for s in syncs],
        "weight_sync_mb": round(handed / 2**20, 1),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
