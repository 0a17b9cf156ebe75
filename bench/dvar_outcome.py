"""Does DVAR stop where the embedding is done? The DVAR paper's Table 1, in the toy world,
at the learning rates people run.

For each learning rate (after scaling: the bench turns --scale_lr off, so the rate given is the
rate used) and each held-out toy concept (an erased shape in one colour, which no word
reaches), this trains a textual-inversion embedding on 5 of its images with ti-tui's own
trainer, in-process:
- one long baseline (--baseline-steps, DVAR off, L_det still evaluated after every update),
  keeping the embedding after every update (in memory, a few KB each);
- scores: every --score-every updates and at every step some stopping rule chose, each on 32
  images of "a photo of <concept>" (DPM-Solver++ 20 steps, guidance 4, fixed seed), judged by
  the toy scorer (colour and shape right);
- DVAR's stops are replayed from the baseline's L_det history with the spec's rule
  (trainer.stopping.DVAR): with a constant rate and one seed, a run that stops at step N is the
  baseline's first N updates bit for bit, so the baseline's embedding at N is the DVAR run's
  result. tests/engine/test_dvar_run.py checks that an in-loop stop equals the replayed one, and
  `--check-replay` reruns one concept per rate with DVAR on to show it again here.
Settings replayed: the paper's (window 282, threshold 0.39), the authors' later one (310,
0.15), and a small grid of other windows and thresholds, to see whether a simple rule beats
both; nothing is tuned per concept.

Interrupt it at any time: each (rate, concept) pair is saved as it finishes
(OUT/<rate>/<concept>/trajectory.pt, then scores.json) and a rerun with the same --out
continues. Progress goes to stderr. Results (drawn by bench/dvar_report.py): OUT/report.json, OUT/tables.md, OUT/plot.png (score
against updates per concept, DVAR stops marked; needs matplotlib).

    nice -n 10 .venv/bin/python bench/dvar_outcome.py --out /tmp/dvar-outcome --jobs 2
    SMOKE: .venv/bin/python bench/dvar_outcome.py --out /tmp/dvo-smoke --smoke

Prints one JSON object (the report) on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "bench"))

import torch  # noqa: E402

from dvar_report import PUBLISHED, goal_check, plot, summarise, table  # noqa: E402
from trainer.stopping import DVAR  # noqa: E402

GRID_WINDOWS = (50, 100, 150, 200, 282, 310, 400, 600)
GRID_THRESHOLDS = (0.15, 0.39)
DEFAULT_CONCEPTS = "green-star,orange-heart,blue-moon,purple-heart,yellow-star,red-moon"
PROMPT = "a photo of {}"


# --- one baseline trajectory (runs in a worker process) ------------------------------------

def ti_config(concept: str, data: Path, out: Path, *, steps: int, seed: int, lr: str,
              batch: int, early_stopping: str = "none", window: int = 282,
              threshold: float = 0.39, initializer: str = "*", device: str | None = None,
              threads: int = 1):
    """The TI settings used throughout (also the recommended demo settings, bar the steps).

    `threads` is a fixed CPU thread count: an automatic one follows the machine's load
    (trainer/core_share.py) and rounds differently, and the replay must match bit for bit."""
    from trainer import toyworld
    from trainer.config import TrainConfig

    extra = {"device": device} if device and "device" in TrainConfig.__dataclass_fields__ else {}
    return TrainConfig(
        model=str(toyworld.toy_model_dir()), root=str(out.parent), train_data_dir=str(data),
        output_dir=str(out), placeholder_token=f"<{concept}>", initializer_token=initializer,
        resolution=toyworld.SIZE, train_batch_size=batch, max_train_steps=steps,
        learning_rate=lr, scale_lr=False, lr_scheduler="constant", lr_warmup_steps=0,
        seed=seed, early_stopping=early_stopping, dvar_window=window,
        dvar_threshold=threshold, save_steps=0, checkpointing_steps=0, validation_steps=0,
        copy_to_embeddings=False, log_every=1000, cpu_threads=threads, **extra)


def _trained_rows(session) -> torch.Tensor:
    """The run's trainable [n, dim] parameter (only the placeholder rows train)."""
    for owner in (getattr(session, "spliced", None), session):
        rows = getattr(owner, "vectors", None)
        if isinstance(rows, torch.Tensor):
            return rows
    raise AttributeError("cannot find the trained vectors on the session")


def train_recording(config) -> dict:
    """Train in-process; returns the L_det history and the vectors after every update.

    The vectors are read from the trainer's own parameter when each `step` event is emitted
    (after the update and its NaN guard, before any file is written), so nothing extra is
    written to disk.
    """
    import trainer.loop as loop_module

    captured: dict = {}
    real_prepare = loop_module.prepare

    def capturing_prepare(*args, **kwargs):
        captured["session"] = session = real_prepare(*args, **kwargs)
        return session

    vectors: dict[int, torch.Tensor] = {}
    l_det: dict[int, float] = {}
    seconds: list[float] = []

    def emit(event) -> None:
        if event.type != "step":
            return
        vectors[event.step] = _trained_rows(captured["session"]).detach().to("cpu").clone()
        if getattr(event, "l_det", None) is not None:
            l_det[event.step] = float(event.l_det)
        seconds.append(float(event.step_seconds))

    loop_module.prepare = capturing_prepare
    started = time.perf_counter()
    try:
        result = loop_module.train(config, emit=emit)
    finally:
        loop_module.prepare = real_prepare
    first = _trained_rows(captured["session"])  # for step 0, see below
    return {"reason": result.reason, "steps": result.step,
            "seconds": time.perf_counter() - started,
            "step_seconds": statistics.median(seconds) if seconds else None,
            "vectors": torch.stack([vectors[s] for s in sorted(vectors)]),
            "l_det": [l_det[s] for s in sorted(l_det)], "dtype": str(first.dtype)}


def baseline_job(job: dict) -> str:
    """Worker: train one (rate, concept) baseline, then score it; returns the scores' path.

    Each step is saved as it completes (trajectory.pt, then scores.json), so an interrupted
    bench continues where it stopped.
    """
    from trainer import toyworld

    torch.set_num_threads(job["threads"])
    work = Path(job["work"])
    scores = work / "scores.json"
    if scores.is_file():
        return str(scores)
    target = work / "trajectory.pt"
    if not target.is_file():
        data = work / "data"
        toyworld.toy_concept_images(data, job["concept"], count=job["n_images"],
                                    seed=job["seed"])
        out = work / "baseline"
        if out.exists():  # an interrupted run: start this pair again (minutes at most)
            import shutil

            shutil.rmtree(out)
        got = train_recording(ti_config(job["concept"], data, out, steps=job["steps"],
                                        seed=job["seed"], lr=job["lr"], batch=job["batch"],
                                        initializer=job["initializer"], device=job["device"],
                                        threads=job["threads"]))
        got["lr"] = job["lr"]
        got["concept"] = job["concept"]
        _atomic(target, lambda tmp: torch.save(got, tmp))
    trajectory = torch.load(target, weights_only=False)
    pair = score_pair(trajectory, job["score"], _judge(job["score"]),
                      lambda message: print(message, file=sys.stderr, flush=True))
    _atomic(scores, lambda tmp: tmp.write_text(json.dumps(pair)))
    return str(scores)


def _atomic(target: Path, write) -> None:
    tmp = target.with_suffix(".tmp")
    write(tmp)
    os.replace(tmp, target)


_JUDGES: dict = {}


def _judge(settings: dict) -> Judge:
    """One scoring pipeline per worker process."""
    if "judge" not in _JUDGES:
        _JUDGES["judge"] = Judge(settings["score_images"], seed=1234)
    return _JUDGES["judge"]


# --- replaying stopping rules --------------------------------------------------------------

def replay(history: list[float], window: int, threshold: float) -> int | None:
    """The update at which DVAR(window, threshold) stops on this L_det history, or None."""
    dvar = DVAR(window, threshold)
    for k, value in enumerate(history, 1):
        if dvar.update(value):
            return k
    return None


def rules(baseline_steps: int, few_steps: int) -> dict[str, tuple[int, float] | None]:
    """Every stopping rule replayed: name -> (window, threshold), or None for fixed rules."""
    named: dict[str, tuple[int, float] | None] = {"baseline": None, "baseline_best": None,
                                                  "fixed_few": None}
    named.update(PUBLISHED)
    for window in GRID_WINDOWS:
        for threshold in GRID_THRESHOLDS:
            if (window, threshold) not in PUBLISHED.values() and window < baseline_steps:
                named[f"grid-{window}-{threshold}"] = (window, threshold)
    return named


# --- scoring -------------------------------------------------------------------------------

class Judge:
    """Scores an embedding vector: the fraction of generated images showing the concept."""

    def __init__(self, images: int, seed: int):
        import toy_scorer

        self.toy_scorer = toy_scorer
        self.pipe = toy_scorer.load_pipeline()
        self.scorer = toy_scorer.load_scorer()
        self.images = images
        self.seed = seed

    def __call__(self, concept: str, vector: torch.Tensor) -> float:
        token = f"<{concept}>"
        self.toy_scorer.set_token(self.pipe, token, vector)
        generated = self.toy_scorer.generate(self.pipe, [PROMPT.format(token)] * self.images,
                                             seed=self.seed)
        return self.toy_scorer.concept_score(self.scorer, generated, concept)

    def initializer(self, word: str) -> torch.Tensor:
        ids = self.pipe.tokenizer.encode(word, add_special_tokens=False)
        return self.pipe.text_encoder.get_input_embeddings().weight[ids[0]].detach().clone()


def score_pair(trajectory: dict, settings: dict, judge: Judge, log) -> dict:
    """Every rule's stop step and score for one (rate, concept) pair."""
    vectors, history = trajectory["vectors"], trajectory["l_det"]
    steps = trajectory["steps"]
    per_step = trajectory["seconds"] / max(steps, 1)
    cache: dict[int, float] = {}

    def score(step: int) -> float:
        if step not in cache:
            vector = (judge.initializer(settings["initializer"]) if step == 0
                      else vectors[step - 1][0])
            cache[step] = judge(trajectory["concept"], vector)
        return cache[step]

    curve = [(s, score(s)) for s in range(0, steps + 1, settings["score_every"])]
    best_step, best = max(curve, key=lambda sv: (sv[1], -sv[0]))
    result = {"curve": curve, "l_det": history, "step_seconds": trajectory["step_seconds"]}
    for name, setting in rules(settings["baseline_steps"], settings["few_steps"]).items():
        if name == "baseline":
            stop, value = steps, score(steps)
        elif name == "baseline_best":
            stop, value = best_step, best
        elif name == "fixed_few":
            stop, value = settings["few_steps"], score(settings["few_steps"])
        else:
            replayed = replay(history, *setting)
            stop = replayed if replayed is not None else steps
            value = score(stop)
        result[name] = {"steps": stop, "score": value, "seconds": per_step * stop,
                        "stopped_early": name not in ("baseline", "baseline_best",
                                                      "fixed_few") and stop < steps}
    log(f"{trajectory['lr']} {trajectory['concept']}: best {best:.2f}@{best_step}, "
        f"final {result['baseline']['score']:.2f}, v1 {result['dvar-paper-v1']['steps']}: "
        f"{result['dvar-paper-v1']['score']:.2f}, v2 {result['dvar-ti-v2']['steps']}: "
        f"{result['dvar-ti-v2']['score']:.2f}")
    return result


# --- main ----------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("/tmp/ti-tui-dvar-outcome"))
    parser.add_argument("--concepts", default=DEFAULT_CONCEPTS)
    parser.add_argument("--rates", default="5e-4,2e-3,5e-3",
                        help="learning rates as used (no scaling), comma-separated")
    parser.add_argument("--baseline-steps", type=int, default=2000)
    parser.add_argument("--few-steps", type=int, default=400)
    parser.add_argument("--score-every", type=int, default=50)
    parser.add_argument("--score-images", type=int, default=32)
    parser.add_argument("--n-images", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--initializer", default="*")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=1, help="baselines trained at once")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per job")
    parser.add_argument("--device", default=None, help="trainer device (default: the trainer's)")
    parser.add_argument("--smoke", action="store_true",
                        help="a seconds-long check: 2 concepts, 1 rate, 60 updates, 4 images")
    parser.add_argument("--check-replay", action="store_true",
                        help="also train one concept per rate with DVAR on and compare stops")
    parser.add_argument("--report-only", action="store_true",
                        help="train and score nothing: redraw the tables and the plot from "
                             "the pairs already saved under --out")
    args = parser.parse_args(argv)
    if args.smoke:
        args.concepts, args.rates = "green-star,blue-moon", "5e-3"
        args.baseline_steps, args.few_steps, args.score_every, args.score_images = 60, 20, 20, 4
    if args.baseline_steps % args.score_every or args.few_steps % args.score_every:
        parser.error("--baseline-steps and --few-steps must be multiples of --score-every")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{(time.perf_counter() - started) / 60:5.1f} min] {message}", file=sys.stderr,
              flush=True)

    concepts = [c.strip() for c in args.concepts.split(",") if c.strip()]
    rates = [r.strip() for r in args.rates.split(",") if r.strip()]
    args.out.mkdir(parents=True, exist_ok=True)
    score = {k: getattr(args, k) for k in ("score_images", "score_every", "initializer",
                                            "baseline_steps", "few_steps")}
    jobs = [{"concept": c, "lr": r, "work": str(args.out / r / c), "steps": args.baseline_steps,
             "seed": args.seed, "batch": args.batch, "initializer": args.initializer,
             "n_images": args.n_images, "threads": args.threads, "device": args.device,
             "score": score}
            for r in rates for c in concepts]
    unfinished = [j for j in jobs if not (Path(j["work"]) / "scores.json").is_file()]
    todo = [] if args.report_only else unfinished
    log(f"{len(jobs)} (rate, concept) pairs, {len(jobs) - len(unfinished)} already done; "
        f"running {len(todo)}, {args.jobs} at once")
    if args.jobs > 1 and len(todo) > 1:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=context) as pool:
            futures = {pool.submit(baseline_job, job): job for job in todo}
            for future in as_completed(futures):
                _report(future, futures[future], log)
    else:
        for job in todo:
            _report(None, job, log)
    results: dict[str, dict[str, dict]] = {}
    missing = []
    for job in jobs:
        saved = Path(job["work"]) / "scores.json"
        if not saved.is_file():
            missing.append(f"{job['lr']}/{job['concept']}")
            continue
        results.setdefault(job["lr"], {})[job["concept"]] = json.loads(saved.read_text())
    if missing:
        log(f"not done: {', '.join(missing)}; the report covers the rest (rerun to finish)")

    if not results:
        log("no pair finished yet: nothing to report")
        return 1
    replay_checks = check_replay(args, concepts, rates, results, log) if args.check_replay else {}
    report = {"command": "python bench/dvar_outcome.py " + " ".join(argv or sys.argv[1:]),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
              "published": PUBLISHED, "prompt": PROMPT.format("<concept>"),
              "machine": {"cpus": os.cpu_count(), "load_average": os.getloadavg(),
                          "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available()
                          else None, "torch": torch.__version__},
              "total_minutes": (time.perf_counter() - started) / 60, "rates": {},
              "replay_checks": replay_checks}
    tables = []
    for rate, pairs in results.items():
        rows = summarise(pairs, args.baseline_steps)
        report["rates"][rate] = {"table": rows, "goal": goal_check(rows),
                                 "concepts": {c: {k: v for k, v in p.items() if k != "l_det"}
                                              for c, p in pairs.items()}}
        tables.append(table(rate, rows, list(pairs), full=True))
    (args.out / "tables.md").write_text("\n\n".join(tables) + "\n")
    (args.out / "report.json").write_text(json.dumps(report, indent=2))
    plot(results, args.out / "plot.png")
    print(json.dumps(report, indent=2))
    log(f"done: {args.out / 'tables.md'}, {args.out / 'plot.png'}, {args.out / 'report.json'}")
    return 0


def _report(future, job: dict, log) -> None:
    """Log one finished pair; a failed pair is logged and left for a rerun, never fatal."""
    try:
        path = future.result() if future is not None else baseline_job(job)
        log(f"done {path}")
    except Exception as exc:  # noqa: BLE001 - one pair's failure must not lose the others
        log(f"FAILED {job['lr']}/{job['concept']}: {type(exc).__name__}: {exc}")


def check_replay(args, concepts, rates, results, log) -> dict:
    """Train the first concept per rate with DVAR on (paper v1) and compare with the replay."""
    checks = {}
    window, threshold = PUBLISHED["dvar-paper-v1"]
    for rate in rates:
        concept = concepts[0]
        work = args.out / rate / concept
        got = train_recording(ti_config(concept, work / "data", work / "dvar-check",
                                        steps=args.baseline_steps, seed=args.seed, lr=rate,
                                        batch=args.batch, early_stopping="dvar", window=window,
                                        threshold=threshold, initializer=args.initializer,
                                        device=args.device, threads=args.threads))
        expected = results[rate][concept]["dvar-paper-v1"]["steps"]
        checks[rate] = {"in_loop": got["steps"], "replayed": expected,
                        "agree": got["steps"] == expected}
        log(f"replay check {rate} {concept}: in-loop {got['steps']}, replayed {expected}")
    return checks


if __name__ == "__main__":
    raise SystemExit(main())
