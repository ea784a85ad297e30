"""Subjects per minute of ``python -m raysys.synthesise`` (Ray Data, actor pool) with 1 vs 2 actors.

    python bench/synthesise_throughput.py [--subjects 8] [--actors 1 2] [--model small|tiny]

A phantom cohort at 2 mm (generated and converted to a 64x64 store once, cached as the data
benches do), an untrained mmhvae saved with that store's preprocessing record, each subject's
t2 and flair left out so both are synthesised. One local Ray for all runs; each run starts its
own actor pool (model build included in the time, as a real run pays it). ``--model small``
(default): 2 levels of 4 channels at 32x32 inside the model (its input is resampled), so the
bench measures the pipeline (read, preprocess, map back, write) more than the network; ``tiny``:
the tiny preset at 64x64. Prints one JSON object and writes it to bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_common import DEFAULT_ROOT, cohort, store  # noqa: E402

MODELS = {"small": {"image_size": 32, "channels": [4, 4], "levels": 2, "disc_layers": 2}, "tiny": {"image_size": 64}}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--subjects", type=int, default=8)
    p.add_argument("--actors", type=int, nargs="+", default=[1, 2])
    p.add_argument("--model", choices=sorted(MODELS), default="small")
    args = p.parse_args(argv)
    import torch

    from raysys.data import open_store
    from raysys.models import build_model
    from raysys.predict.pipeline import connect_ray
    from raysys.predict.synthesis import synthesise
    from raysys.registry import save_model_dir
    from raysys.registry.format import preprocessing_record

    source = cohort(DEFAULT_ROOT, subjects=args.subjects, resolution=2)
    url = store(source, (64, 64))
    st = open_store(url)
    work = Path(tempfile.mkdtemp(prefix="bench-synthesise-"))
    inputs = work / "in"
    for subject in st.subjects:           # drop t2 and flair: two modalities to synthesise per subject
        (inputs / subject).mkdir(parents=True)
        for path in (source / subject).iterdir():
            if not path.name.endswith(("_t2.nii.gz", "_flair.nii.gz")):
                shutil.copy(path, inputs / subject / path.name)
    torch.manual_seed(0)
    config = MODELS[args.model]
    model = save_model_dir(work / "model", "mmhvae", "tiny", st.modalities, config,
                           build_model("mmhvae", "tiny", st.modalities, **config).state_dict(), {"bench": True},
                           training={"preprocessing": preprocessing_record(st.attrs)})
    connect_ray(num_cpus=max(args.actors))
    results = {"machine": f"{platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
               "subjects": len(st.subjects), "slices": int(st.subject_start[-1]), "model": args.model,
               "grid": "2 mm phantom -> 64x64 slices", "runs": {}}
    for actors in args.actors:
        out = work / f"out-{actors}"
        began = time.perf_counter()
        report = synthesise(str(model), str(inputs), str(out), actors=actors)
        seconds = time.perf_counter() - began
        assert not report.errors, report.errors
        results["runs"][str(actors)] = {"seconds": round(seconds, 2), "files": report.written,
                                        "subjects_per_minute": round(60 * len(st.subjects) / seconds, 2)}
    runs = results["runs"]
    if "1" in runs and "2" in runs:
        results["speedup_2_vs_1"] = round(runs["2"]["subjects_per_minute"] / runs["1"]["subjects_per_minute"], 2)
    text = json.dumps(results, indent=1)
    print(text)
    out_dir = Path(__file__).resolve().parent / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "synthesise_throughput.json").write_text(text)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
