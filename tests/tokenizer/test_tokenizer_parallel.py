"""The stage's parallel paths: the ablation process never outlives a failed main run; the reconstruction table's
rows measured in 1-thread worker processes match the sequential measures exactly."""

import subprocess
import sys

import pandas as pd
import pytest
import torch

from tk_helpers import SENTENCES, make_tokenizer


# -- training: main run + ablation process ---------------------------------------------------------------------
@pytest.fixture()
def fake_stage(tmp_path, monkeypatch):
    """StagePaths under tmp_path; launch_ablations replaced by a child that sleeps (or exits with `code`)."""
    from taste.tokenizer import pipeline as P

    threads = torch.get_num_threads()
    paths = P.StagePaths(*(tmp_path / n for n in ("prepared", "units", "asr", "vocoder", "models", "final", "codes")))
    launched: list[subprocess.Popen] = []

    def launch(code: int | None = None):
        script = "import time; time.sleep(120)" if code is None else f"print('ablation says hi'); raise SystemExit({code})"

        def fake_launch(params_path, cache, log, names=P.SECOND_PROCESS_ABLATIONS):
            assert cache.is_file()  # the items are cached before the child starts
            launch.names = tuple(names)
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("w") as out:
                launched.append(subprocess.Popen([sys.executable, "-c", script], stdout=out, stderr=subprocess.STDOUT))
            return launched[-1]

        monkeypatch.setattr(P, "launch_ablations", fake_launch)

    # the ablation rows that train in this process after the main model: recorded, not trained
    monkeypatch.setattr(P, "train_ablation", lambda params, name, items, paths: here.append(name))
    here: list[str] = []
    launch.here = here
    yield P, paths, {"shared": {"threads": threads}}, launch, launched
    for proc in launched:  # never leave a child behind, whatever the test did
        P.stop_process(proc, timeout_s=1.0)
    torch.set_num_threads(threads)


@pytest.mark.parametrize("error", [RuntimeError("main run diverged"), KeyboardInterrupt()])
def test_failed_main_run_stops_the_ablation_process(fake_stage, monkeypatch, tmp_path, error):
    P, paths, params, launch, launched = fake_stage
    launch()

    def failing_main(*args, **kwargs):
        assert launched and launched[0].poll() is None  # the ablations are running when the main run fails
        assert torch.get_num_threads() == 1
        raise error

    monkeypatch.setattr(P, "train_main", failing_main)
    with pytest.raises(type(error)):
        P.train_all_rows(params, "params.yaml", None, [], paths, tmp_path / "ablations.log")
    assert launched[0].returncode is not None and launched[0].returncode != 0  # terminated and reaped
    assert torch.get_num_threads() == params["shared"]["threads"]
    assert (paths.models / "cache" / "train.safetensors").is_file()  # kept for a rerun of the ablations by hand


def test_successful_run_waits_for_ablations_and_removes_the_cache(fake_stage, monkeypatch, tmp_path):
    P, paths, params, launch, launched = fake_stage
    launch(code=0)
    monkeypatch.setattr(P, "train_main", lambda *a, **k: [{"stage": "rvq"}])
    assert P.train_all_rows(params, "params.yaml", None, [], paths, tmp_path / "ablations.log") == [{"stage": "rvq"}]
    assert launched[0].returncode == 0
    assert not (paths.models / "cache").exists()
    assert torch.get_num_threads() == params["shared"]["threads"]
    # every ablation row trains exactly once: the second process's share there, the rest here after the main model
    assert launch.here == [n for n in P.ABLATIONS if n not in launch.names]
    assert sorted(launch.here + list(launch.names)) == sorted(P.ABLATIONS)  # each row once, none missing


def test_ablation_process_trains_only_the_rows_it_is_given(monkeypatch, tmp_path):
    """`python -m taste.tokenizer.ablation --only A B` trains A then B and nothing else."""
    from taste.tokenizer import ablation, data, pipeline as P

    import taste.config

    trained = []
    monkeypatch.setattr(taste.config, "load_params", lambda path: {"shared": {}})
    monkeypatch.setattr(taste.config, "set_threads", lambda n: None)
    monkeypatch.setattr(data, "load_items", lambda path: ["item"])
    monkeypatch.setattr(P, "stage_paths", lambda params: "paths")
    monkeypatch.setattr(P, "train_ablation", lambda params, name, items, paths: trained.append(name) or [])
    names = list(P.SECOND_PROCESS_ABLATIONS)
    assert ablation.main(["--cache", str(tmp_path / "c.safetensors"), "--only", *names]) == 0
    assert trained == names


def test_launch_ablations_passes_its_rows_to_the_child(monkeypatch, tmp_path):
    """The child's command line names exactly the rows it is to train (`--only ...`)."""
    from taste.tokenizer import pipeline as P

    seen = {}

    class FakePopen:
        def __init__(self, cmd, stdout, stderr):
            seen["cmd"] = cmd

    monkeypatch.setattr(P.subprocess, "Popen", FakePopen)
    P.launch_ablations("p.yaml", tmp_path / "c.safetensors", tmp_path / "log")
    cmd = seen["cmd"]
    assert cmd[cmd.index("--only") + 1:] == list(P.SECOND_PROCESS_ABLATIONS)
    assert cmd[cmd.index("--params") + 1] == "p.yaml"


def test_failed_ablation_process_raises_with_its_log(fake_stage, monkeypatch, tmp_path):
    P, paths, params, launch, launched = fake_stage
    launch(code=3)
    monkeypatch.setattr(P, "train_main", lambda *a, **k: [])
    with pytest.raises(RuntimeError, match="ablation says hi"):
        P.train_all_rows(params, "params.yaml", None, [], paths, tmp_path / "ablations.log")
    assert launched[0].returncode == 3
    assert torch.get_num_threads() == params["shared"]["threads"]


def test_sequential_training_runs_main_then_every_ablation(monkeypatch, tmp_path):
    from taste.tokenizer import pipeline as P

    calls = []
    monkeypatch.setattr(P, "train_main", lambda *a, **k: calls.append("main") or [])
    monkeypatch.setattr(P, "train_ablation", lambda params, name, items, paths: calls.append(name))
    monkeypatch.setattr(P, "launch_ablations", lambda *a: pytest.fail("no process without parallel"))
    P.train_all_rows({"shared": {"threads": 1}}, "params.yaml", None, [], None, tmp_path / "log", parallel=False)
    assert calls == ["main", *P.ABLATIONS]


# -- reconstruction table: rows in worker processes -------------------------------------------------------------
@pytest.mark.parametrize("costs,workers", [([5, 1, 1, 1, 1, 1], 2), ([1.0] * 8, 2), ([3, 2, 2], 4), ([2, 7, 1, 4], 1)])
def test_balance_covers_every_row_once_and_is_greedy(costs, workers):
    from taste.tokenizer.table import balance

    groups = balance(costs, workers)
    assert sorted(i for g in groups for i in g) == list(range(len(costs)))
    assert all(g == sorted(g) for g in groups) and len(groups) == min(workers, len(costs))
    loads = sorted(sum(costs[i] for i in g) for g in groups)
    assert loads[-1] - loads[0] <= max(costs)  # longest-first greedy: no group exceeds another by more than a job


def _items(model, n: int = 6):
    from taste.data.records import Utterance, WordAlignment
    from taste.tokenizer.data import build_items

    torch.manual_seed(3)
    utts, mels, units, speakers = [], {}, {}, {}
    for i in range(n):
        text = " ".join(SENTENCES[i % 5].split()[: 3 + i % 3])
        words = tuple(WordAlignment(w, 0.1 + 0.25 * j, 0.2) for j, w in enumerate(text.split()))
        uid = f"u{i}"
        utts.append(Utterance(id=uid, audio_path=f"{uid}.wav", duration=0.3 + 0.25 * len(words), sample_rate=16000,
                              text=text, speaker="s", split="test", rate_wpm=None, pitch=None, words=words))
        mels[uid], units[uid] = torch.randn(80, 60 + 10 * i) - 4.0, torch.randint(0, 32, (8 * len(words),))
        speakers[uid] = torch.randn(256)
    return build_items(model, utts, mels, units, speakers, 25.0)


@pytest.fixture(scope="module")
def saved_rows(asr, bpe, tmp_path_factory):
    """Every model row of the table from saved debug models (random weights), as the notebook loads them."""
    from taste.tokenizer import TasteTokenizer
    from taste.tokenizer.data import with_last_layer_values
    from taste.tokenizer.table import model_rows

    root = tmp_path_factory.mktemp("rows")
    made = {"text_only": make_tokenizer(asr, bpe, stage="text_only"), "no_vq": make_tokenizer(asr, bpe, stage="no_vq"),
            "rvq": make_tokenizer(asr, bpe), "other_mode": make_tokenizer(asr, bpe, conditioning="prefix"),
            "last_layer_values": make_tokenizer(asr, bpe, value_layer=-1)}
    folders = {k: m.save_pretrained(root / k) for k, m in made.items()}
    models = {k: TasteTokenizer.from_pretrained(f) for k, f in folders.items()}
    items = _items(models["rvq"])
    return model_rows(models, items, with_last_layer_values(items), "prefix"), folders


def test_parallel_rows_match_sequential_rows(saved_rows):
    from taste.tokenizer.table import measure_rows, measure_rows_parallel

    rows, folders = saved_rows
    assert [r.source for r in rows] == ["text_only", "no_vq", "rvq", "rvq", "rvq", "other_mode", "last_layer_values"]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the workers' thread count: the reference for bit-identical decodes
    try:
        seq_m, seq_d = measure_rows(rows, 20, 7, 25.0)
    finally:
        torch.set_num_threads(threads)
    par_m, par_d = measure_rows_parallel(rows, folders, 20, 7, 25.0, workers=2)
    pd.testing.assert_frame_equal(pd.DataFrame(par_m), pd.DataFrame(seq_m), check_exact=True)
    assert list(par_d) == list(seq_d) == [r.name for r in rows]
    for name in seq_d:
        assert [d.stream for d in par_d[name]] == [d.stream for d in seq_d[name]], name
        assert all(torch.equal(a.units, b.units) for a, b in zip(par_d[name], seq_d[name]))


def test_parallel_rows_need_every_models_folder(saved_rows):
    from taste.tokenizer.table import measure_rows_parallel

    rows, folders = saved_rows
    with pytest.raises(ValueError, match="last_layer_values"):
        measure_rows_parallel(rows, {k: v for k, v in folders.items() if k != "last_layer_values"}, 20, 7, 25.0)
