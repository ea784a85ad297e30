"""MMHVAE train-step speed at batch 8 for the tiny and cpu presets (one JSON object).

Per preset: median wall time of ``MMHVAEFamily.train_step`` (B = 8, all 4 modalities observed,
the preset's T subsets, GAN not yet active as in the first 80 % of training), FLOPs of one step
(forward + backward, ``torch.utils.flop_counter``: convolutions and matmuls), the achieved
GFLOP/s, and this machine's fp32 matmul peak measured here (2048^3 matmul) for comparison.

Usage: python bench/mmhvae_step.py [--threads 1] [--steps 10] [--presets tiny cpu] [--compile]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from raysys.models import DEFAULT_MODALITIES, build_family
from raysys.models.family import StepContext

BATCH = 8


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Best of ``repeats`` fp32 n x n x n matmuls, in GFLOP/s (2 n^3 FLOPs each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def phantom_batch(size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """B = 8 z-scored-looking slices: a disc of foreground with noise, background 0 (the store's value)."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    mask = (xx**2 + yy**2 < 0.7).expand(BATCH, size, size)
    images = torch.randn(BATCH, len(DEFAULT_MODALITIES), size, size, generator=generator)
    images = torch.where(mask[:, None], images, torch.zeros_like(images))
    return {"images": images, "mask": mask, "available": torch.ones(BATCH, len(DEFAULT_MODALITIES), dtype=torch.bool)}


def measure(preset: str, steps: int, compile_model: bool) -> dict[str, float | int | str]:
    torch.manual_seed(0)
    family = build_family("mmhvae", preset, overrides={"data_range": (-5.0, 5.0), "compile_model": compile_model})
    family.configure_optimizers(total_epochs=1, steps_per_epoch=1000)
    cfg = family.config
    batch = phantom_batch(cfg.image_size, torch.Generator().manual_seed(0))

    def step(i: int) -> float:
        ctx = StepContext(epoch=0, total_epochs=100, global_step=i, device=torch.device("cpu"))
        start = time.perf_counter()
        family.train_step(batch, ctx)
        return time.perf_counter() - start

    first = step(0)  # includes torch.compile's compilation when enabled
    step(1)
    times = [step(2 + i) for i in range(steps)]
    with FlopCounterMode(display=False) as counter:
        step(2 + steps)
    flops = counter.get_total_flops()
    median = statistics.median(times)
    return {
        "preset": preset,
        "batch": BATCH,
        "subsets_per_step": cfg.subsets_per_step,
        "compile_model": compile_model,
        "first_step_s": round(first, 2),
        "step_ms_median": round(median * 1000, 1),
        "step_ms_min": round(min(times) * 1000, 1),
        "gflop_per_step": round(flops / 1e9, 2),
        "achieved_gflops": round(flops / median / 1e9, 2),
        "params_generator": sum(p.numel() for p in family.modules["model"].parameters()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--presets", nargs="+", default=["tiny", "cpu"])
    parser.add_argument("--compile", action="store_true", help="also measure with torch.compile")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    peak = matmul_peak_gflops()
    out: dict[str, object] = {
        "machine": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "threads": args.threads,
        "matmul_peak_gflops": round(peak, 1),
        "results": [],
    }
    for preset in args.presets:
        for compile_model in ([False, True] if args.compile else [False]):
            result = measure(preset, args.steps, compile_model)
            result["fraction_of_matmul_peak"] = round(result["achieved_gflops"] / peak, 4)
            out["results"].append(result)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
