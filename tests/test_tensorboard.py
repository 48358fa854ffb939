"""TensorBoard itself, over HTTP, serves the runs' curves and their hyper-parameters."""

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import TINY, run_name

RUNS = tuple(run_name(mode, **TINY) for mode in ("source", "frozen", "finetune"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def tensorboard(tiny_study):
    logdir, _ = tiny_study
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", f"--logdir={logdir}", "--host=127.0.0.1",
         f"--port={port}", "--reload_interval=1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                tags = json.load(urllib.request.urlopen(f"{base}/data/plugin/scalars/tags",
                                                        timeout=5))
                if all(run in tags for run in RUNS):
                    break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert server.poll() is None, "tensorboard exited"
            assert time.time() < deadline, "tensorboard did not load the runs in 120 s"
            time.sleep(1)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=30)


def get(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=30))


def test_scalars_are_served(tensorboard, tiny_study):
    _, results = tiny_study
    tags = get(f"{tensorboard}/data/plugin/scalars/tags")
    for run in RUNS:
        assert {"test/accuracy", "test/loss", "train/accuracy", "train/loss"} <= set(tags[run])
    points = get(f"{tensorboard}/data/plugin/scalars/scalars?run={RUNS[1]}&tag=test/accuracy")
    assert [step for _, step, _ in points] == [100, 200, 300]
    assert points[-1][2] == pytest.approx(results["frozen"]["test_accuracy"])


def test_hparams_are_served(tensorboard):
    experiment = get(f"{tensorboard}/data/plugin/hparams/experiment", {"experimentName": ""})
    infos = {info["name"]: info for info in experiment["hparamInfos"]}
    assert {"mode", "p", "dropout", "seed", "n_train"} <= set(infos)
    assert set(infos["mode"]["domainDiscrete"]) == {"source", "frozen", "finetune"}
    assert infos["n_train"]["domainInterval"] == {"minValue": 100.0, "maxValue": 36017.0}
