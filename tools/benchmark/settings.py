"""The benchmark's protocol and budgets: constants, and the Settings one benchmark runs with."""

import dataclasses

SIDES = ("keras", "tltransfer")
MODES = ("scratch", "frozen", "finetune")
BATCH = 100
LR = 1e-3
EVAL_EVERY = 1000
FLOOR_STEPS = 10  # batches per bare train window: one evaluation interval of the study
STUDY_P = 0.1
# The default study (tltransfer.main with no flags): 3 seeds x 2 dropouts, each with one source
# net and 4 proportions x 3 modes of target runs, every run 60,000 samples.
STUDY_SAMPLES = 60_000
STUDY_SOURCES = 3 * 2
STUDY_TARGETS_PER_MODE = STUDY_SOURCES * 4
STUDY_RUNS = STUDY_SOURCES + STUDY_TARGETS_PER_MODE * len(MODES)
TIMING_KEYS = ("s_per_1000", "total_s", "startup_s")
MATMUL_SIZE = 2048
EVAL_CHUNKS = (256, 512, 2048)  # test images per forward pass: speed against memory
PRECISION_SEEDS = (0, 1, 2)
PRECISION_MODES = ("scratch", "finetune")
# What --sections chooses from, in the order they are measured and shown:
#   inrun   both sides' per-run figures, the floors, the machine's compute, the study estimate
#   whole   whole processes, each run a fresh process, and the ratio the floor allows
#   memory  one long process of tltransfer runs: peak memory, time outside compiled calls
#   chunks  evaluation chunk sizes
#   jobs    one grid with --jobs=1 and --jobs=2; one run on 1 and on 2 threads
SECTIONS = ("inrun", "whole", "memory", "chunks", "jobs")


@dataclasses.dataclass(frozen=True)
class Settings:
    samples: int
    eval_every: int
    repeats: int
    ps: tuple
    study_p: float
    study_samples: int
    floor_windows: int  # bare train windows per floor measurement
    floor_evals: int    # bare evaluations per floor measurement
    warm_up: bool       # one untimed run first, so process start-up lands in no figure
    quick: bool
    whole_samples: int = 20_000  # per whole-process run
    whole_p: float = 0.1
    memory_runs: int = 50
    memory_samples: int = 2000  # per run of the long-process measurement
    memory_p: float = 0.01
    extras: bool = True  # see --extras
    precision_samples: int = 20_000  # per run of the bfloat16-vs-float32 comparison
    chunk_evals: int = 8    # evaluations per chunk-size measurement
    chunk_repeats: int = 3  # chunk-size measurements; the best is reported
    jobs_samples: int = 20_000  # per run of the jobs section's grid
    jobs_p: tuple = (0.005, 0.1, 1.0)
    sections: tuple = SECTIONS

    @property
    def measure_extras(self):
        """Whether to measure the extras: --extras, and never with --quick."""
        return self.extras and not self.quick

    def side_flags(self):
        """The flags that make a side process resolve these same settings."""
        if self.quick:
            return ["--quick"]
        return [f"--samples={self.samples}", f"--repeats={self.repeats}",
                f"--p={','.join(map(repr, self.ps))}",
                f"--study_samples={self.study_samples}",
                f"--whole_samples={self.whole_samples}", f"--memory_runs={self.memory_runs}",
                f"--precision_samples={self.precision_samples}",
                "--extras" if self.extras else "--noextras"]


QUICK = Settings(samples=300, eval_every=100, repeats=1, ps=(0.005,), study_p=0.005,
                 study_samples=200, floor_windows=2, floor_evals=2, warm_up=False, quick=True,
                 whole_samples=300, whole_p=0.005, memory_runs=8, memory_samples=200,
                 memory_p=0.005, chunk_evals=2, chunk_repeats=1, jobs_samples=300,
                 jobs_p=(0.005,))
