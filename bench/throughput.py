"""The throughput benchmark: training images/s of each model kind under each speed configuration,
against a textbook ``reference`` measured in the same run, plus the input pipeline alone, the
fraction of the machine's matmul peak, and memory.

    python bench/throughput.py                        # every kind, every configuration
    python bench/throughput.py --kinds vae,dcgan      # a subset
    python bench/throughput.py --smoke                # VAE, small data: a check that it runs
    python bench/throughput.py --threads              # only: TF's thread settings (VAE)

One JSON line per (kind, configuration) on stdout:

- ``train_images_per_s``: median over ``--rounds`` epochs, after one warm-up epoch per
  configuration; the configurations are INTERLEAVED (round 1: A B C ..., round 2: B C ... A) so
  drift on a shared machine hits them alike (throughput swings +-30% here);
- ``speedup``: median over rounds of this configuration's rate / the reference's rate in the
  same round;
- ``cpu_ms_per_image`` and ``cpu_speedup``: median CPU time per training image and the
  reference's over this configuration's — the work an option saves, unaffected by the host
  pausing the process; ``best_round_speedup``: fastest round over the reference's fastest;
- ``pipeline_images_per_s``: the same configuration's input pipeline iterated alone, and
  ``pipeline_ratio`` = pipeline / training (>= 5: the input is never the bottleneck);
- ``loss_epoch1`` and ``loss_rel_diff``: the losses after the warm-up epoch (same seed, same
  initial weights, same data order) and their largest relative difference from the reference;
- ``gflops_per_s`` and ``fraction_of_matmul_peak``: conv/matmul FLOPs of one training step
  (counted from the traced step's graph) times the step rate, over a float32 2048x2048 matmul's
  rate measured in the same process (``bf16_matmul_peak_gflops``: the same matmul in bfloat16,
  the ceiling a ``mixed_bfloat16`` step works under);

Then per kind one ``"config": "memory"`` line: peak RSS of a training run with the default
configuration and RSS after each epoch (epoch 2 vs epoch 10 must be within 10%).

The ``reference`` is the plain custom ``train_step`` the textbook way: float32, no XLA, one step
per execution, and a pipeline without prefetch or parallel map (cached in memory, like the
numpy arrays the keras-io examples feed to ``fit``). Each kind runs in its own process, so its
memory figures are its own.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "pipelines" / "configs"

REFERENCE = ["train.steps_per_execution=1", "train.jit_compile=false",
             "train.mixed_precision=none", "data.prefetch=false", "data.parallel_map=false"]
# Each option alone on top of the reference, the shipped defaults, and all the options that
# helped together ("tuned"): the candidate for a default.
CONFIGURATIONS = {
    "reference": REFERENCE,
    "default": [],
    "prefetch": [*REFERENCE, "data.prefetch=true", "data.parallel_map=true"],
    "spe16": [*REFERENCE, "train.steps_per_execution=16"],
    "bf16": [*REFERENCE, "train.mixed_precision=mixed_bfloat16"],
    "xla": [*REFERENCE, "train.jit_compile=true"],
    # The defaults with mixed precision off: what ``mixed_precision: auto`` adds on this machine.
    "default_f32": ["train.mixed_precision=none"],
    "tuned": ["data.prefetch=true", "data.parallel_map=true", "train.steps_per_execution=16",
              "train.mixed_precision=mixed_bfloat16", "train.jit_compile=false"],
}
THREAD_SETTINGS = [(0, 0), (2, 1), (1, 1), (2, 2)]  # (intra_op, inter_op); 0 = TF's choice


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kinds", default="", help="comma-separated kinds (default: all; --smoke: vae)")
    p.add_argument("--configs", default=",".join(CONFIGURATIONS),
                   help=f"comma-separated, from {list(CONFIGURATIONS)}")
    p.add_argument("--rounds", type=int, default=5, help="timed epochs per configuration")
    p.add_argument("--limit", type=int, default=0, help="training images (0 = all 8,000)")
    p.add_argument("--memory-epochs", type=int, default=10)
    p.add_argument("--threads", action="store_true",
                   help="instead: sweep TF's thread settings (VAE, default configuration)")
    p.add_argument("--smoke", action="store_true", help="VAE, 1,024 images, 2 rounds, 4 memory epochs")
    p.add_argument("--child", choices=["speed", "memory", "threads"], help=argparse.SUPPRESS)
    p.add_argument("--intra", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--inter", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.smoke:
        args.kinds = args.kinds or "vae"
        args.rounds, args.limit, args.memory_epochs = 2, args.limit or 1024, 4
    unknown = set(args.configs.split(",")) - set(CONFIGURATIONS)
    if unknown:
        p.error(f"unknown configuration(s) {sorted(unknown)}; choose from {list(CONFIGURATIONS)}")
    return args


# ----------------------------------------------------------------------------------------------
# Parent: one child process per (kind, measurement)
# ----------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    if args.kinds:
        kinds = args.kinds.split(",")
    else:
        from gen_keras.models import model_kinds

        kinds = model_kinds()
    common = ["--rounds", str(args.rounds), "--limit", str(args.limit),
              "--memory-epochs", str(args.memory_epochs), "--configs", args.configs]
    failed = False
    for kind in kinds if not args.threads else []:
        for what in ("speed", "memory"):
            failed |= not run_child([*common, "--kinds", kind, "--child", what])
    if args.threads:
        # A thread pool is fixed when TF starts: one process per setting, the sequence repeated
        # so each setting gets several (non-interleavable) samples.
        for _ in range(2):
            for intra, inter in THREAD_SETTINGS:
                failed |= not run_child([*common, "--kinds", "vae", "--child", "threads",
                                         "--intra", str(intra), "--inter", str(inter)])
    return 1 if failed else 0


def run_child(extra: list[str]) -> bool:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, __file__, *extra], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("{"):
            print(line, flush=True)
    if proc.returncode:
        sys.stderr.write(f"child {extra} failed ({proc.returncode}):\n{proc.stderr[-3000:]}\n")
    return proc.returncode == 0


# ----------------------------------------------------------------------------------------------
# Child: measurements inside one process
# ----------------------------------------------------------------------------------------------
def child(args) -> int:
    from gen_keras.distribute import configure_threads

    threads = configure_threads(args.intra, args.inter)  # before TF runs anything
    kind = args.kinds
    if args.child == "memory":
        emit(measure_memory(kind, args))
        return 0
    names = ["default"] if args.child == "threads" else args.configs.split(",")
    if "reference" not in names:
        names = ["reference", *names]
    for line in measure_speed(kind, names, args):
        if args.child == "threads":
            if line["config"] != "default":
                continue
            line["config"] = f"threads={args.intra}/{args.inter}"
            line["threads_in_effect"] = list(threads)
        emit(line)
    return 0


def emit(line: dict) -> None:
    print(json.dumps(line), flush=True)


def run_config(kind: str, overrides: list[str], limit: int):
    from gen_keras.config_loader import load_config

    path = CONFIGS / f"{kind}_mnist10k.yaml"
    base = [f"model.kind={kind}"] if not path.is_file() else []
    sets = [*base, *overrides, "train.progress=false"]
    if limit:
        sets.append(f"data.limit_train={limit}")
    return load_config(path if path.is_file() else None, sets)


def data_and_model(cfg):
    """Pipelines and model + optimizer(s) in the order training makes them (the global seed
    first: the seeded shuffle depends on it), so every configuration starts from the same
    weights and sees the same batches."""
    import keras

    from gen_keras.data import make_datasets
    from gen_keras.models import build_model
    from gen_keras.plan import resolve_plan

    keras.utils.set_random_seed(cfg.train.seed)
    data = make_datasets(cfg)
    plan = resolve_plan(cfg)
    model = build_model(cfg.model, precision=plan.precision)
    model.compile_for_training(plan)
    return data, model


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def epoch(model, dataset, cpu: list | None = None) -> tuple[float, dict]:
    """Wall seconds of one epoch (its CPU seconds appended to ``cpu``) and its last logs."""
    t, c = time.perf_counter(), cpu_seconds()
    history = model.fit(dataset, epochs=1, verbose=0).history
    if cpu is not None:
        cpu.append(cpu_seconds() - c)
    return time.perf_counter() - t, {k: float(v[-1]) for k, v in history.items()}


def pipeline_seconds(dataset) -> float:
    t = time.perf_counter()
    for _ in dataset:
        pass
    return time.perf_counter() - t


def measure_speed(kind: str, names: list[str], args) -> list[dict]:
    from gen_keras import precision

    peak = matmul_peak_gflops()
    runs = {}
    for name in names:
        cfg = run_config(kind, CONFIGURATIONS[name], args.limit)
        data, model = data_and_model(cfg)
        # Same start for every configuration (reported, so a reader can check it).
        start = {"weights_l1": round(sum(float(abs(w).sum()) for w in model.get_weights()), 3),
                 "first_batch_sum": round(float(next(iter(data.train))[0].numpy().sum()), 3)}
        seconds, logs = epoch(model, data.train)  # warm-up: tracing, cache filling
        runs[name] = {"cfg": cfg, "data": data, "model": model, "loss_epoch1": logs, "start": start,
                      "images": None, "rates": [], "speedups": [], "pipeline": [], "cpu": []}
    for name, run in runs.items():  # images per epoch = full global batches
        n = sum(int(x.shape[0]) for x, _ in run["data"].train)
        run["images"] = n
    order = list(runs)
    for r in range(args.rounds):
        rotated = order[r % len(order):] + order[:r % len(order)]
        rates = {}
        for name in rotated:
            seconds, _ = epoch(runs[name]["model"], runs[name]["data"].train, runs[name]["cpu"])
            rates[name] = runs[name]["images"] / seconds
            runs[name]["rates"].append(rates[name])
        for name in order:
            runs[name]["speedups"].append(rates[name] / rates["reference"])
    for _ in range(3):
        for name in order:
            runs[name]["pipeline"].append(runs[name]["images"] / pipeline_seconds(runs[name]["data"].train))
    peak = statistics.median([peak, matmul_peak_gflops()])  # before and after, same process
    # The bfloat16 rate of the same matmul (what a mixed_bfloat16 step could at best approach).
    peak_bf16 = matmul_peak_gflops(dtype="bfloat16")
    flops = train_step_flops(runs["reference"]["model"], runs["reference"]["cfg"])
    ref_loss = runs["reference"]["loss_epoch1"]
    lines = []
    for name in order:
        run = runs[name]
        cfg = run["cfg"]
        rate = statistics.median(run["rates"])
        pipe = statistics.median(run["pipeline"])
        gflops = rate * flops / cfg.train.batch_size / 1e9
        losses = {k: v for k, v in run["loss_epoch1"].items() if "loss" in k}
        lines.append({
            "kind": kind, "config": name,
            "train_images_per_s": round(rate, 1),
            "train_images_per_s_rounds": [round(x, 1) for x in run["rates"]],
            "speedup": round(statistics.median(run["speedups"]), 3),
            # Wall-clock-free figures: CPU time per image and its ratio to the reference's.
            # Immune to the machine pausing the process (seen here: whole epochs stretched to
            # ~2.55 s instead of ~1.27 s at the same CPU seconds), but blind to parallelism.
            "cpu_ms_per_image": round(1e3 * statistics.median(run["cpu"]) / run["images"], 4),
            "cpu_speedup": round(statistics.median(runs["reference"]["cpu"])
                                 / statistics.median(run["cpu"]), 3),
            "best_round_speedup": round(max(run["rates"]) / max(runs["reference"]["rates"]), 3),
            "pipeline_images_per_s": round(pipe, 1),
            "pipeline_ratio": round(pipe / rate, 2),
            "loss_epoch1": {k: round(v, 4) for k, v in losses.items()},
            "loss_rel_diff": round(max(abs(v - ref_loss[k]) / max(abs(ref_loss[k]), 1e-12)
                                       for k, v in losses.items()), 5),
            "gflops_per_s": round(gflops, 1),
            "matmul_peak_gflops": round(peak, 1),
            "fraction_of_matmul_peak": round(gflops / peak, 3),
            "bf16_matmul_peak_gflops": round(peak_bf16, 1),
            "settings": {"steps_per_execution": cfg.train.steps_per_execution,
                         "jit_compile": cfg.train.jit_compile,
                         "mixed_precision": precision.resolve(cfg.train.mixed_precision),
                         "prefetch": cfg.data.prefetch, "parallel_map": cfg.data.parallel_map,
                         "cache": cfg.data.cache, "batch_size": cfg.train.batch_size},
            "images_per_epoch": run["images"], "rounds": args.rounds, "start": run["start"],
        })
    return lines


def matmul_peak_gflops(n: int = 2048, reps: int = 10, dtype: str = "float32") -> float:
    """Median GFLOP/s of an n x n matmul (2 n^3 FLOPs) in ``dtype``, after a warm-up."""
    import tensorflow as tf

    a = tf.cast(tf.random.normal([n, n], seed=1), dtype)
    b = tf.cast(tf.random.normal([n, n], seed=2), dtype)
    matmul = tf.function(lambda: tf.reduce_sum(tf.linalg.matmul(a, b)[:1, :1]))
    matmul().numpy()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        matmul().numpy()
        times.append(time.perf_counter() - t)
    return 2 * n ** 3 / statistics.median(times) / 1e9


def train_step_flops(model, cfg) -> float:
    """Conv and matmul FLOPs of one training step on one global batch, counted from the
    traced step's graph (2 multiply-adds per MAC; forward, backward and transposed convs)."""
    import numpy as np
    import tensorflow as tf

    b = cfg.train.batch_size
    spec = (tf.TensorSpec([b, *cfg.model.image_shape], tf.float32), tf.TensorSpec([b], tf.int32))
    graph = tf.function(lambda x, y: model.train_step((x, y))).get_concrete_function(*spec).graph

    def dims(t):
        return [int(d) for d in t.shape]

    total = 0
    for op in graph.get_operations():
        if op.type == "MatMul":
            m, n = dims(op.outputs[0])
            a = dims(op.inputs[0])
            k = a[0] if op.get_attr("transpose_a") else a[1]
            total += 2 * m * n * k
        elif op.type == "Conv2D":
            kh, kw, cin, _ = dims(op.inputs[1])
            total += 2 * int(np.prod(dims(op.outputs[0]))) * kh * kw * cin
        elif op.type == "Conv2DBackpropInput":
            kh, kw, cin, _ = dims(op.inputs[1])
            total += 2 * int(np.prod(dims(op.inputs[2]))) * kh * kw * cin
        elif op.type == "Conv2DBackpropFilter":
            kh, kw, cin, _ = dims(op.outputs[0])
            total += 2 * int(np.prod(dims(op.inputs[2]))) * kh * kw * cin
    return float(total)


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2 ** 20


def measure_memory(kind: str, args) -> dict:
    """RSS after every epoch of a default-configuration training run, and the peak."""
    import keras

    cfg = run_config(kind, CONFIGURATIONS["default"], args.limit)
    data, model = data_and_model(cfg)
    after = []

    class Rss(keras.callbacks.Callback):
        def on_epoch_end(self, epoch_, logs=None):
            after.append(round(rss_mb(), 1))

    model.fit(data.train, epochs=args.memory_epochs, verbose=0, callbacks=[Rss()])
    last = len(after)
    growth = after[last - 1] / after[1] - 1.0 if last >= 2 else 0.0
    return {"kind": kind, "config": "memory",
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "rss_after_epoch_mb": after,
            f"growth_epoch2_to_{last}": round(growth, 4),
            "within_10pct": abs(growth) <= 0.10}


if __name__ == "__main__":
    sys.exit(main())
