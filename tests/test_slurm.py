"""The example job array on a real single-node Slurm cluster started on localhost.

.ci/run installs Debian's slurm-wlm and munge; where they are missing the test is skipped.
"""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from conftest import ONE_EVAL, REPO, flags_of, run_name

RUNS = sorted(run_name(mode, **ONE_EVAL) for mode in ("frozen", "scratch", "source"))

CONF = """ClusterName=tltransfer
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ReturnToService=2
MpiDefault=none
NodeName=localhost CPUs={cpus} RealMemory=2048 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def start_munge():
    if subprocess.run(["sh", "-c", "munge -n | unmunge"], capture_output=True).returncode == 0:
        return
    if not os.path.exists("/etc/munge/munge.key"):
        subprocess.run(["mungekey", "--create"], check=True)
    subprocess.run(["chown", "munge:munge", "/etc/munge/munge.key"], check=True)
    os.makedirs("/run/munge", exist_ok=True)
    subprocess.run(["chown", "munge:munge", "/run/munge"], check=True)
    subprocess.run(["su", "-s", "/bin/sh", "munge", "-c", "munged"], check=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if not all(shutil.which(tool) for tool in ("slurmctld", "slurmd", "sbatch", "munged")):
        pytest.skip("Slurm (slurm-wlm) and munge are not installed; .ci/run installs them")
    if os.geteuid() != 0:
        pytest.skip("starting slurmd needs root")
    root = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (root / sub).mkdir()
    conf = root / "slurm.conf"
    conf.write_text(CONF.format(root=root, cpus=os.cpu_count()))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    start_munge()
    subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
    subprocess.run(["slurmd", "-f", str(conf)], check=True, env=env)
    try:
        deadline = time.time() + 60
        while "idle" not in subprocess.run(["sinfo", "-h", "-o", "%t"], env=env,
                                           capture_output=True, text=True).stdout:
            assert time.time() < deadline, (root / "slurmctld.log").read_text()[-2000:]
            time.sleep(1)
        yield env
    finally:
        for daemon in ("slurmd", "slurmctld"):
            pid_file = root / f"{daemon}.pid"
            if pid_file.exists():
                subprocess.run(["kill", pid_file.read_text().strip()])


def test_the_example_job_array_trains_every_run_once(cluster, tmp_path):
    logdir = tmp_path / "logs"
    out = subprocess.run(
        ["sbatch", "--wait", "--array=0-1", "--cpus-per-task=1", "--mem=512M",
         f"--output={tmp_path}/slurm-%A_%a.out",
         f"--export=ALL,PYTHON={sys.executable},FLAGFILE=flags/smoke.cfg",
         "tools/slurm/study.sbatch", f"--logdir={logdir}", "--dropout=0",
         "--mode=scratch,frozen",
         *flags_of({k: v for k, v in ONE_EVAL.items() if k != "seed"})],  # smoke.cfg: --seeds
        cwd=REPO, env=cluster, capture_output=True, text=True, timeout=600)
    logs = "".join(p.read_text() for p in sorted(tmp_path.glob("slurm-*.out")))
    assert out.returncode == 0, out.stderr + logs
    trained = re.findall(r"\] (\S+): training on", logs)
    assert sorted(trained) == RUNS  # each run by exactly one array task
    assert sorted(re.findall(r"^(\d) runs?:", logs, re.M)) == ["1", "2"]  # two shards
    for name in RUNS:
        assert (logdir / name / "result.json").exists()
