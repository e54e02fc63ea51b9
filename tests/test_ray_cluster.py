"""Runs on Ray (``--cluster ray``): the same rows as one worker, an actor killed mid-run, Ctrl-C,
programs generated once on the driver, and the queue's policy on a simulated cluster.

The first part drives the real dispatcher (:class:`runners.ray_dispatch.Dispatcher`) against a
simulated Ray (a clock, actors of given speeds that can die): no Ray needed, exact numbers.
The rest starts one local Ray instance for the module (2 CPUs, a small object store) and
skips, saying why, where Ray is not installed (``pip install -r requirements-ray.txt``; CI has it).
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from tqdm import tqdm

import run
from neptune_core.config import RunConfig
from neptune_core.errors import ModelUnavailableError, UserError
from neptune_core.types import Program
from runners import RUNNERS, ray_actor, ray_dispatch
from runners import ray_cluster as rc
from runners.results import ResultsWriter
from runners.run_vqa_parallel import WorkerFailedError
from tests import fake_openai_server
from tests.journeys import ProgramLLM, llm_config, rows, run_cli, strip_bars, synthetic_samples, write_config
from tests.test_parallel_fakes import FakeGenerator, FakeRunner, make_samples

ROOT = Path(__file__).resolve().parent.parent
CONFIG = {"dataset": "fake_parallel", "num_samples": 40, "max_failure_rate": 0.2}  # 1 in 11 programs is broken
fake_openai = fake_openai_server.fake_openai  # the fixture


@pytest.fixture(autouse=True)
def _register_fake() -> None:
    if "fake_parallel" not in RUNNERS:
        RUNNERS.register("fake_parallel")(FakeRunner)


def _no_timings(rows_: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "timings"} for r in rows_]


# ---- batches (no Ray) ---------------------------------------------------------------------------
def _programs_about(images: list[str]) -> Iterator[tuple[Any, Future]]:
    from neptune_core.types import Sample

    for i, image in enumerate(images):
        done: Future = Future()
        done.set_result((Program("def execute(score, query, n):\n    return 1\n"), 0.0))
        yield Sample(id=f"q{i}", question="?", answer="1", image_path=image), done


@pytest.mark.parametrize("same_image", [True, False])
def test_a_batch_runs_on_to_the_end_of_its_image_when_grouping_by_image(tmp_path, same_image):
    images = ["a"] * 3 + ["b"] * 6 + ["c"] * 30 + ["d"]
    writer = ResultsWriter(tmp_path / "results.jsonl")
    bar = tqdm(disable=True)
    queue = ray_dispatch.Dispatcher(None, {}, {}, _programs_about(images), writer, "", 2, bar, same_image=same_image)
    sizes = []
    while batch := queue._take_fresh(2):
        sizes.append(len(batch))
    assert sum(sizes) == len(images)
    if same_image:  # a: 3; b: 6; c: 30 in batches capped at 8 x 2 = 16; d: 1
        assert sizes == [3, 6, 16, 14, 1]
    else:
        assert sizes == [2] * 20


# ---- placement (no Ray) -------------------------------------------------------------------------
def test_plan_actors_one_per_gpu_or_cpu_worker():
    assert [s.device for s in rc.plan_actors(RunConfig(workers=2), {"CPU": 2.0})] == ["cpu", "cpu"]
    assert [s.threads for s in rc.plan_actors(RunConfig(workers=2), {"CPU": 16.0})] == [8, 8]
    gpus = rc.plan_actors(RunConfig(), {"CPU": 32.0, "GPU": 4.0})  # every GPU of the cluster by default
    assert [(s.num_gpus, s.device) for s in gpus] == [(1, "gpu")] * 4
    assert len(rc.plan_actors(RunConfig(workers=2), {"CPU": 32.0, "GPU": 4.0})) == 2
    assert rc.plan_actors(RunConfig(device="cpu", workers=3), {"CPU": 4.0, "GPU": 4.0})[0].device == "cpu"
    with pytest.raises(UserError, match="asks for 3 CPU actors but the Ray cluster has 2 CPUs"):
        rc.plan_actors(RunConfig(workers=3), {"CPU": 2.0})
    with pytest.raises(UserError, match="has no GPU"):
        rc.plan_actors(RunConfig(device="cuda"), {"CPU": 2.0})


def test_cli_errors_are_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    cfg = write_config(tmp_path, CONFIG)
    common = ["--config", str(cfg), "--output_dir", str(tmp_path / "exp")]
    with pytest.raises(SystemExit) as exit_:
        run.main([*common, "--cluster", "slurm"])
    assert exit_.value.code == 2 and "invalid choice: 'slurm'" in capsys.readouterr().err
    slurm = write_config(tmp_path, {**CONFIG, "cluster": "slurm"}, name="slurm.json")
    assert run.main(["--config", str(slurm), "--output_dir", str(tmp_path / "exp")]) == 2
    assert capsys.readouterr().err.strip() == "error: cluster 'slurm' is not known; known: local, ray"
    assert run.main([*common, "--cluster_typo", "ray"]) == 2
    assert "unknown config key 'cluster_typo'" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    assert run.main([*common, "--cluster", "ray"]) == 2
    assert capsys.readouterr().err.strip() == "error: --cluster ray needs Ray: pip install -r requirements-ray.txt"
    assert not (tmp_path / "exp").exists()


class _NoCluster:
    """A stand-in for the ray module: not connected, and ``init`` must not be reached."""

    def is_initialized(self) -> bool:
        return False

    def init(self, **kw: Any) -> None:
        raise AssertionError("ray.init was called for an address nothing answers at")


def test_an_unreachable_ray_address_fails_at_once_in_one_line(tmp_path, capsys, monkeypatch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setitem(sys.modules, "ray", _NoCluster())
    cfg = write_config(tmp_path, CONFIG)
    argv = ["--config", str(cfg), "--output_dir", str(tmp_path / "exp"), "--cluster", "ray"]
    code, _, err = run_cli([*argv, "--ray_address", f"127.0.0.1:{port}"], capsys)
    assert code == 2 and not (tmp_path / "exp").exists()
    assert err.startswith(f"error: cannot start or reach the Ray cluster at '127.0.0.1:{port}': nothing answers at ")
    assert "\n" not in err and "ray start --head" in err


def test_a_program_the_driver_could_not_make_is_the_same_error_row_as_in_a_local_run():
    """The driver ships the failure; the actor's runner raises it where it would have arisen."""
    sample = make_samples(3)[1]

    class Failing(FakeGenerator):
        def program_for(self, sample):  # noqa: ANN001, ANN202
            raise ConnectionResetError("the translator's server went away")

    local = FakeRunner(RunConfig(), generator=Failing()).process(sample)
    shipped = ray_actor.ShippedPrograms()
    make = ray_actor.program_maker(Failing())
    program, ms = make(sample)
    assert isinstance(program, ray_actor.ProgramFailure)
    shipped.put(sample.id, program, ms)
    remote = FakeRunner(RunConfig(), generator=shipped).process(sample)
    assert _no_timings([remote]) == _no_timings([local])
    assert remote["error"]["type"] == "ConnectionResetError" and remote["error"]["transient"] and not remote["final"]


# ---- the queue on a simulated cluster (no Ray) -----------------------------------------------------
class SimTaskError(Exception):
    """An exception raised inside an actor method (Ray's RayTaskError, with its cause)."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


class ActorDiedError(Exception):
    pass


class SimRay:
    """Just what the driver uses of Ray: wait, get, kill; a clock that jumps to the next result."""

    class exceptions:  # noqa: N801
        RayTaskError = SimTaskError

    def __init__(self) -> None:
        self.now = 0.0
        self.count = 0

    def wait(self, refs: list, num_returns: int = 1, timeout: float | None = None) -> tuple[list, list]:
        if timeout == 0:
            done = [r for r in refs if r.ready_at() <= self.now][:num_returns]
        else:
            done = [min(refs, key=lambda r: (r.ready_at(), r.seq))]
            self.now = max(self.now, done[0].ready_at())
        return done, [r for r in refs if r not in done]

    def get(self, ref: SimRef) -> Any:
        return ref.result()

    def kill(self, actor: SimActor, no_restart: bool = True) -> None:
        actor.die(self.now)


class SimRef:
    def __init__(self, sim: SimRay, run: Any) -> None:
        sim.count += 1
        self.seq, self.run = sim.count, run

    def ready_at(self) -> float:
        return self.run()[0]

    def result(self) -> Any:
        _, value, error = self.run()
        if error is not None:
            raise error
        return value


class _Method:
    def __init__(self, fn: Any) -> None:
        self.remote = fn


class SimActor:
    """Processes a sample in ``cost`` time units; dies at ``die_at``, or halfway through a ``poison`` sample."""

    def __init__(self, sim: SimRay, name: str, cost: float, *, die_at: float = math.inf, poison: tuple = ()) -> None:
        self.sim, self.name, self.cost, self.dead_at, self.poison = sim, name, cost, die_at, poison
        self.free_at = 0.0
        self.setup_error: BaseException | None = None
        self.ids: list[str] | None = None
        self.setup = _Method(self._setup)
        self.process = _Method(self._process)

    def die(self, when: float) -> None:
        self.dead_at = min(self.dead_at, when)

    def _setup(self) -> SimRef:
        def result() -> tuple[float, Any, BaseException | None]:
            if self.setup_error is not None:
                return 0.0, None, SimTaskError(self.setup_error)
            digest = ray_actor.ids_digest(self.ids if self.ids is not None else [s.id for s in make_samples(40)])
            return 0.0, {"digest": digest, "count": 40, "node": "sim", "pid": self.name}, None

        return SimRef(self.sim, result)

    def _process(self, items: list) -> SimRef:
        submitted, start = self.sim.now, max(self.free_at, self.sim.now)
        for i, (sample_id, _, _) in enumerate(items):
            if sample_id in self.poison:
                self.die(start + (i + 0.5) * self.cost)
        end = self.free_at = start + self.cost * len(items)
        rows = [{"id": i, "program": p.source, "actor": self.name} for i, p, _ in items]

        def result() -> tuple[float, Any, BaseException | None]:
            if self.dead_at < end:
                return max(self.dead_at, submitted), None, ActorDiedError("The actor died unexpectedly")
            return end, rows, None

        return SimRef(self.sim, result)


class ProgramsOf(FakeGenerator):
    def program_for(self, sample):  # noqa: ANN001, ANN202
        return Program(f"program of {sample.id}", origin="fake")


def _ready_programs(samples: list) -> Iterator[tuple[Any, Future]]:
    """Each sample with its program already made (the driver's pipeline without threads: deterministic)."""
    make = ray_actor.program_maker(ProgramsOf())
    for sample in samples:
        future: Future = Future()
        future.set_result(make(sample))
        yield sample, future


def simulate(tmp_path: Path, actors: list[SimActor], *, n: int = 40, batch: int = 2, static: bool = False) -> Any:
    """The real driver, on the simulated cluster; returns it after its run (rows in tmp_path)."""
    sim = actors[0].sim
    samples = make_samples(40)[:n]
    programs = _ready_programs(samples)
    order = [s.id for s in make_samples(40)]
    devices = {k: "cpu" for k in range(len(actors))}
    tmp_path.mkdir(parents=True, exist_ok=True)
    with ResultsWriter(tmp_path / "results.jsonl") as writer:
        bar = tqdm(disable=True)
        driver = ray_dispatch.Dispatcher(
            sim, dict(enumerate(actors)), devices, programs, writer, ray_actor.ids_digest(order), batch, bar, static
        )
        driver.run()
        driver.close()
    return driver


def _written(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]


def test_fast_actors_take_more_and_dynamic_beats_static_when_one_is_3x_slower(tmp_path):
    dynamic_sim = SimRay()
    driver = simulate(tmp_path / "d", [SimActor(dynamic_sim, "fast", 1.0), SimActor(dynamic_sim, "slow", 3.0)])
    rows_ = _written(tmp_path / "d")
    assert sorted(r["id"] for r in rows_) == [s.id for s in make_samples(40)] and driver.failure(tmp_path, 40) is None
    assert all(r["program"] == f"program of {r['id']}" for r in rows_)
    by_actor = {a: sum(r["actor"] == a for r in rows_) for a in ("fast", "slow")}
    assert by_actor["fast"] >= 28, by_actor  # 3/4 of the work at 3x the speed: about 30 of 40

    static_sim = SimRay()
    simulate(tmp_path / "s", [SimActor(static_sim, "fast", 1.0), SimActor(static_sim, "slow", 3.0)], static=True)
    assert {a: sum(r["actor"] == a for r in _written(tmp_path / "s")) for a in ("fast", "slow")} == {
        "fast": 20,
        "slow": 20,
    }
    # static: the slow actor's half takes 20 x 3 = 60; dynamic: 40 samples at 4/3 a unit each is 30, plus
    # a tail of at most the batches the slow actor holds at the end (2 of 2 samples here): 36
    assert static_sim.now == 60.0 and dynamic_sim.now == 36.0


def test_an_actor_that_dies_hands_its_unfinished_samples_to_the_others(tmp_path):
    sim = SimRay()
    driver = simulate(tmp_path, [SimActor(sim, "a", 1.0, die_at=7.5), SimActor(sim, "b", 1.0)], batch=4)
    ids = [r["id"] for r in _written(tmp_path)]
    assert sorted(ids) == [s.id for s in make_samples(40)]  # every sample exactly once
    assert driver.failure(tmp_path, 40) is None and driver.handed_over >= 4
    assert list(driver.problems) == [0] and driver.problems[0].startswith("died (ActorDiedError")
    assert sum(driver.attempts.values()) == 4  # only the batch it was running counts an attempt
    assert driver.lost_note().startswith("note: 1 of 2 Ray actors failed (actor 0 (cpu, node sim, pid a) died")


def test_a_sample_that_kills_every_actor_is_left_undone_after_two_and_named(tmp_path):
    sim = SimRay()
    actors = [SimActor(sim, name, 1.0, poison=("s0007",)) for name in "abc"]
    driver = simulate(tmp_path, actors, batch=4)
    ids = [r["id"] for r in _written(tmp_path)]
    assert sorted(ids) == [s.id for s in make_samples(40) if s.id != "s0007"]  # the others done, once each
    assert len(driver.problems) == ray_dispatch.MAX_ATTEMPTS and set(driver.given_up) == {"s0007"}
    error = driver.failure(tmp_path, 40)
    assert isinstance(error, WorkerFailedError)
    assert str(error).startswith("1 of 40 samples were not processed; s0007: the actor running them died 2 times")


def test_setup_failures_same_user_error_everywhere_is_that_error_and_other_data_is_turned_away(tmp_path):
    sim = SimRay()
    actors = [SimActor(sim, name, 1.0) for name in "ab"]
    for a in actors:
        a.setup_error = ModelUnavailableError("weights of 'tiny' not found; download them first")
    driver = simulate(tmp_path / "broken", actors)
    error = driver.failure(tmp_path, 40)
    assert type(error) is UserError and str(error) == "weights of 'tiny' not found; download them first"

    sim = SimRay()
    actors = [SimActor(sim, name, 1.0) for name in "ab"]
    actors[0].ids = ["other"]  # a node with other data
    driver = simulate(tmp_path / "other", actors)
    assert "differ from the driver's" in driver.problems[0] and len(_written(tmp_path / "other")) == 40
    assert {r["actor"] for r in _written(tmp_path / "other")} == {"b"}


# ---- a real local Ray instance -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local() -> Any:
    ray = pytest.importorskip("ray", reason="Ray is optional: pip install -r requirements-ray.txt")
    rc.start_local(ray, num_cpus=2)
    yield ray
    ray.shutdown()


def _actor_pids() -> list[int]:
    """Pids of this process's Ray actors that are running a batch (children of its raylet)."""
    me, found = os.getpid(), []
    for d in Path("/proc").iterdir():
        try:
            if not d.name.isdigit() or not (d / "cmdline").read_bytes().startswith(b"ray::SampleWorker.process"):
                continue
            pid, ancestors = int(d.name), []
            for _ in range(4):
                pid = int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])
                ancestors.append(pid)
            if me in ancestors:
                found.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


@pytest.mark.slow
def test_clevr_mini_oracle_two_actors_give_the_rows_of_one_worker(tmp_path, capsys, ray_local):
    cfg = ROOT / "configs" / "clevr-mini-oracle.json"  # 12 of its 120 scenes: each actor builds the world too
    common = ["--config", str(cfg), "--output_dir", str(tmp_path), "--report", "false", "--synthetic.num_scenes", "12"]
    assert run.main([*common, "--run_name", "one"]) == 0
    assert run.main([*common, "--run_name", "ray", "--cluster", "ray", "--workers", "2"]) == 0
    one, two = rows(tmp_path / "one"), rows(tmp_path / "ray")
    assert len(one) == 120 and _no_timings(two) == _no_timings(one)  # sample for sample, in dataset order
    summary = json.loads((tmp_path / "ray" / "summary.json").read_text())
    assert summary["accuracy"] == 100.0 and summary["this_invocation"]["cluster"] == "ray"
    assert summary["this_invocation"]["workers"] == 2 and summary["this_invocation"]["processed"] == 120
    before = (tmp_path / "ray" / "results.jsonl").read_text()  # a rerun finds everything done
    assert run.main([*common, "--run_name", "ray", "--cluster", "ray", "--workers", "2"]) == 0
    assert (tmp_path / "ray" / "results.jsonl").read_text() == before


@pytest.mark.slow
def test_programs_come_from_the_driver_once_per_question(tmp_path, capsys, ray_local, fake_openai):
    """The LLM is asked once per question by the driver; the actors only run the programs."""
    samples = synthetic_samples()
    llm = ProgramLLM(samples)
    fake_openai.responder = llm
    cfg = write_config(tmp_path, llm_config(fake_openai.base_url, tmp_path, code_gen_concurrency=4))
    code, _, err = run_cli(["--config", str(cfg), "--run_name", "ray", "--cluster", "ray", "--workers", "2"], capsys)
    assert code == 0, err
    assert sorted(llm.asked) == sorted(s.id for s in samples)  # each question once, not once per actor
    code, _, err = run_cli(["--config", str(cfg), "--run_name", "local"], capsys)  # the cache answers now
    assert code == 0 and len(llm.asked) == len(samples)
    on_ray, local = rows(tmp_path / "exp" / "ray"), rows(tmp_path / "exp" / "local")
    assert {r["program_origin"] for r in on_ray} == {"generated"} and {r["program_origin"] for r in local} == {"cache"}
    # a row's program time is the driver's request to the LLM (not the actor's look-up), inside its total
    assert all(0.1 < r["timings"]["program"] <= r["timings"]["total"] for r in on_ray)
    assert [(r["id"], r["program"], r["pred"]) for r in on_ray] == [(r["id"], r["program"], r["pred"]) for r in local]
    assert json.loads((tmp_path / "exp" / "ray" / "summary.json").read_text())["accuracy"] == 100.0


@pytest.mark.slow
def test_an_actor_killed_mid_run_every_sample_once_and_correct(tmp_path, capsys, ray_local, monkeypatch):
    cfg = write_config(tmp_path, {**CONFIG, "num_samples": 60})
    common = ["--config", str(cfg), "--output_dir", str(tmp_path), "--report", "false"]
    assert run.main([*common, "--run_name", "one"]) == 0  # the reference: one local worker
    monkeypatch.setenv("NEPTUNE_FAKE_SLEEP_S", "0.1")  # forwarded to the actors (NEPTUNE_* variables)
    results, killed = tmp_path / "killed" / "results.jsonl", []

    def kill_one() -> None:
        deadline = time.time() + 120
        while time.time() < deadline:
            busy = _actor_pids()
            if results.exists() and results.read_bytes().count(b"\n") >= 10 and busy:
                os.kill(busy[0], signal.SIGKILL)  # like the OOM killer or a lost node
                killed.append(busy[0])
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_one)
    killer.start()
    code = run.main([*common, "--run_name", "killed", "--cluster", "ray", "--workers", "2"])
    killer.join()
    err = strip_bars(capsys.readouterr().err)
    assert code == 0 and killed, err
    assert err.startswith("note: 1 of 2 Ray actors failed (actor ") and "every sample has its row" in err
    got = rows(tmp_path / "killed")
    assert [r["id"] for r in got] == [f"s{i:04d}" for i in range(60)]  # each sample exactly once, in order
    assert _no_timings(got) == _no_timings(rows(tmp_path / "one"))  # and correct: the rows of one worker
    invocation = json.loads((tmp_path / "killed" / "summary.json").read_text())["this_invocation"]
    assert invocation["actors_failed"] == 1 and invocation["handed_over"] >= 1 and invocation["processed"] == 60


@pytest.mark.slow
def test_every_actor_fails_its_model_check_one_line_and_no_run_directory(tmp_path, capsys, ray_local, monkeypatch):
    monkeypatch.setenv("NEPTUNE_FAKE_BROKEN_MODEL", "1")  # each actor's preflight fails; the driver loads no model
    cfg = write_config(tmp_path, CONFIG)
    code, out, err = run_cli(["--config", str(cfg), "--output_dir", str(tmp_path / "exp"), "--cluster", "ray"], capsys)
    assert code == 2 and err == "error: fake weights not found at /nowhere; download them first"
    assert not (tmp_path / "exp").exists()


@pytest.mark.slow
def test_ctrl_c_on_ray_is_one_line_loses_nothing_and_the_rerun_completes(tmp_path, capsys, ray_local):
    """Ctrl-C signals the terminal's whole process group: the driver and the Ray it started. The
    rerun joins a running cluster by its address (``ray_address``) and does only what was left."""
    cfg = write_config(tmp_path, {**CONFIG, "num_samples": 60})
    boot = (
        "import sys; from runners import RUNNERS; from tests.test_parallel_fakes import FakeRunner; "
        "RUNNERS.register('fake_parallel')(FakeRunner); import run; sys.exit(run.main(sys.argv[1:]))"
    )
    common = ["--config", str(cfg), "--output_dir", str(tmp_path), "--run_name", "c", "--report", "false"]
    cmd = [sys.executable, "-c", boot, *common, "--cluster", "ray", "--workers", "2"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NEPTUNE_FAKE_SLEEP_S": "0.1"}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    results = tmp_path / "c" / "results.jsonl"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 10:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert (
        strip_bars(err) == "interrupted: finished samples are kept in results.jsonl; rerun the same command to resume"
    )
    partial = rows(tmp_path / "c")
    assert 10 <= len(partial) < 60 and len({r["id"] for r in partial}) == len(partial)

    # the same command again, joining a running cluster by its address (this module's Ray instance)
    rerun = [*cmd, "--ray_address", ray_local.get_runtime_context().gcs_address]
    again = subprocess.run(rerun, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr[-2000:]
    done = rows(tmp_path / "c")
    assert [r["id"] for r in done] == [f"s{i:04d}" for i in range(60)]
    by_id = {r["id"]: r for r in partial}
    assert all(by_id[r["id"]] == r for r in done if r["id"] in by_id)  # nothing finished was redone
    assert json.loads((tmp_path / "c" / "summary.json").read_text())["this_invocation"]["processed"] == 60 - len(
        partial
    )
