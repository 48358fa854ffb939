"""TensorBoard itself, over HTTP, serves the runs' curves and their hyper-parameters."""

import dataclasses
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import TINY, run_name
from tltransfer.config import Config

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
    assert set(get(f"{tensorboard}/data/runs")) == set(RUNS)  # the runs the CSV holds, no more
    tags = get(f"{tensorboard}/data/plugin/scalars/tags")
    metrics = {"test/accuracy", "test/loss", "train/accuracy", "train/loss"}
    for run in RUNS[1:]:
        assert metrics <= set(tags[run])
        assert "training samples seen" in tags[run]["test/accuracy"]["description"]
    # The source net is tested on digits 0-5: its curves are its own, never in a 6-9 chart.
    assert set(tags[RUNS[0]]) == {f"source/{metric}" for metric in metrics}
    points = get(f"{tensorboard}/data/plugin/scalars/scalars?run={RUNS[1]}&tag=test/accuracy")
    assert [step for _, step, _ in points] == [100, 200, 300]
    assert points[-1][2] == pytest.approx(results["frozen"]["test_accuracy"])


def test_hparams_are_served(tensorboard):
    experiment = get(f"{tensorboard}/data/plugin/hparams/experiment", {"experimentName": ""})
    shown = [info["displayName"] for info in experiment["hparamInfos"]]
    # Config's order, as the dashboard shows them; it ticks the first five: the lab's axes.
    assert shown == [*(f.name for f in dataclasses.fields(Config)), "n_train"]
    assert shown[:5] == ["mode", "p", "dropout", "seed", "source_classes"]
    infos = dict(zip(shown, experiment["hparamInfos"]))
    assert set(infos["mode"]["domainDiscrete"]) == {"source", "scratch", "frozen", "finetune"}
    metrics = {info["name"]["tag"]: info for info in experiment["metricInfos"]}
    assert list(metrics)[:2] == ["test/accuracy", "source/test/accuracy"]
    for tag in ("test/accuracy", "test/loss", "train/accuracy", "train/loss"):
        assert "training samples seen" in metrics[tag]["description"]
        assert "6-9 net" in metrics[tag]["description"]
        assert "source net" in metrics[f"source/{tag}"]["description"]


def test_sorting_by_test_accuracy_ranks_no_source_net(tensorboard, tiny_study):
    _, results = tiny_study
    experiment = get(f"{tensorboard}/data/plugin/hparams/experiment", {"experimentName": ""})
    metric = {"group": "", "tag": "test/accuracy"}
    groups = get(f"{tensorboard}/data/plugin/hparams/session_groups", {
        "experimentName": "", "startIndex": 0, "sliceSize": 100,
        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE",
                            "STATUS_RUNNING"],
        "colParams": [{"hparam": info["name"]} for info in experiment["hparamInfos"]]
        + [{"metric": metric, "order": "ORDER_DESC", "missingValuesFirst": False}]})
    ranked = [(group["name"], {value["name"]["tag"]: value["value"]
                               for value in group["metricValues"]})
              for group in groups["sessionGroups"]]
    assert [name for name, values in ranked if "test/accuracy" in values] == sorted(
        RUNS[1:], key=lambda run: -results[run.split("_")[0]]["test_accuracy"])
    assert ranked[-1][0] == RUNS[0] and "test/accuracy" not in ranked[-1][1]
    assert "source/test/accuracy" in ranked[-1][1]
