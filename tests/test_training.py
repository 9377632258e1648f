"""The trainer end to end on a tiny synthetic set: learning, exact resume, DDP, config errors."""
import csv
import json
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import yaml
from safetensors.torch import load_file

from moewir.cli.main import main
from moewir.data import ImageReadError, write_image
from moewir.models import load_weights, read_metadata
from moewir.training.config import load_config
from moewir.training.trainer import Trainer
from schedules import cosine_with_warmup


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two tasks with different, learnable degradations in the generic layout (+ a test split)."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for task, fn in (("haze", lambda c: 0.6 * c + 0.35), ("rain", lambda c: np.clip(c + 0.25 * (c > 0.6), 0, 1))):
            for i in range(4 if split == "train" else 2):
                y, x = np.mgrid[0:40, 0:48] / 48
                clean = np.stack([0.5 + 0.3 * np.sin(5 * x + i), 0.4 + 0.3 * np.cos(4 * y - i), 0.3 + 0.4 * x * y], -1)
                clean = np.clip(clean + 0.05 * rng.standard_normal(clean.shape), 0, 1)
                write_image(root / split / task.upper() / "input" / f"{i}.png", fn(clean))
                write_image(root / split / task.upper() / "target" / f"{i}.png", clean)
    return root


def _config(tmp_path, dataset, name, **overrides):
    path = tmp_path / f"{name}.yml"
    path.write_text(yaml.safe_dump({
        "name": name, "experiments_root": str(tmp_path / "experiments"), "device": "cpu",
        "model": {"name": "moewirnet-tiny", "dim": 12},
        "datasets": {"train": {"root": str(dataset), "patch_size": 32, "batch_per_task": 1},
                     "val": {"center_crop": 32, "max_per_task": 1}},
        "optim": {"lr": 2e-3}, "schedule": {"iterations": 12, "warmup": 2},
        "train": {"ema": 0.9, "grad_clip": 1.0},
        "weighting": {"name": "unirain", "window": 3, "warmup": 4},
        "val": {"every": 6}, "log": {"every": 3, "checkpoint_every": 6, "tensorboard": False}}))
    flat = {k: v for k, v in overrides.items()}
    return load_config(path, flat)


def _rows(path):
    with open(path) as f:
        return [{k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(f)]


def test_cosine_schedule_by_hand():
    f = cosine_with_warmup(iterations=10, warmup=2, base_lr=1.0, min_lr=0.1)
    assert [f(0), f(1)] == [0.5, 1.0]
    assert f(2) == pytest.approx(1.0) and f(10) == pytest.approx(0.1) and f(6) == pytest.approx(0.55)


def test_short_run_lowers_the_loss(tmp_path, dataset):
    config = _config(tmp_path, dataset, "learn", **{"schedule.iterations": 60, "schedule.warmup": 5,
                                                     "val.every": 60, "log.checkpoint_every": 60})
    summary = Trainer(config, progress=False).train()
    rows = _rows(tmp_path / "experiments" / "learn" / "train_log.csv")
    assert len(rows) == 60
    first = np.mean([float(r["loss/haze"]) + float(r["loss/rain"]) for r in rows[:10]])
    last = np.mean([float(r["loss/haze"]) + float(r["loss/rain"]) for r in rows[-10:]])
    assert last < 0.7 * first, (first, last)
    assert set(summary["validation"]) == {"haze", "rain"} and summary["validation"]["haze"]["images"] == 1
    weights = tmp_path / "experiments" / "learn" / "checkpoints" / "net_60.safetensors"
    meta = read_metadata(weights)
    assert meta["model_name"] == "moewirnet-tiny" and '"dim": 12' in meta["model_config"]


def test_init_weights_starts_from_a_weights_file_and_checks_it(tmp_path, dataset, capsys):
    """``model.init_weights``: the run starts from the file's weights (fine-tuning), not random ones."""
    from moewir.models import create_model, save_weights

    torch.manual_seed(5)
    start = create_model("moewirnet-tiny", dim=12)
    with torch.no_grad():
        for p in start.parameters():
            p.normal_()
    path = tmp_path / "start.safetensors"
    save_weights(path, start)
    config = _config(tmp_path, dataset, "finetune", **{"model.init_weights": str(path)})
    trainer = Trainer(config, progress=False)
    ours, theirs = trainer.model.state_dict(), start.state_dict()
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert all(torch.equal(a, b) for a, b in zip(trainer.ema.module.parameters(), start.parameters()))
    random = Trainer(_config(tmp_path, dataset, "scratch"), progress=False).model.state_dict()
    assert not torch.equal(random["embed.weight"], theirs["embed.weight"])
    cfg = tmp_path / "wrong.yml"
    cfg.write_text(yaml.safe_dump({"model": {"name": "restormer-tiny", "init_weights": str(path)},
                                   "datasets": {"train": {"root": str(dataset)}}}))
    assert main(["train", str(cfg), "--set", f"experiments_root={tmp_path}"]) == 2
    assert "holds 'moewirnet-tiny' weights, not 'restormer-tiny'" in capsys.readouterr().err


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_reproduces_the_uninterrupted_run(tmp_path, dataset):
    Trainer(_config(tmp_path, dataset, "full"), progress=False).train()
    trainer = Trainer(_config(tmp_path, dataset, "cut"), progress=False)
    loader = trainer.loader

    def dying():  # killed after iteration 8: the checkpoint at 6 survives, rows 7-8 are stale
        for _ in range(8):
            yield next(loader)
        raise _Interrupt

    trainer.loader = dying()
    with pytest.raises(_Interrupt):
        trainer.train()
    with pytest.raises(ValueError, match="already has checkpoints"):
        Trainer(_config(tmp_path, dataset, "cut"), progress=False)
    resumed = Trainer(_config(tmp_path, dataset, "cut"), resume=True, progress=False)
    assert resumed.start == 6
    resumed.train()
    full, cut = (tmp_path / "experiments" / n for n in ("full", "cut"))
    assert _rows(cut / "train_log.csv") == _rows(full / "train_log.csv")  # losses and weights, every iteration
    assert any(float(r["weight/haze"]) != 1.0 for r in _rows(full / "train_log.csv"))  # unirain was active
    assert _rows(cut / "val_log.csv") == _rows(full / "val_log.csv")
    for name in ("net_12.safetensors", "net_ema_12.safetensors"):
        a, b = (load_file(d / "checkpoints" / name) for d in (cut, full))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert read_metadata(cut / "checkpoints" / name) == read_metadata(full / "checkpoints" / name)
    # resuming the finished run trains nothing and keeps its summary (its validation included)
    summary = (full / "summary.yml").read_text()
    again = Trainer(_config(tmp_path, dataset, "full"), resume=True, progress=False)
    assert again.train() == yaml.safe_load(summary) and yaml.safe_load(summary)["validation"]
    assert (full / "summary.yml").read_text() == summary
    assert _rows(full / "val_log.csv") == _rows(cut / "val_log.csv")  # no row added


def _ddp_worker(rank, world, port, config, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    trainer = Trainer(config, progress=False)
    history, update = [], trainer.weighting.update
    trainer.weighting.update = lambda losses: history.append((losses, update(losses))) or history[-1][1]
    local = []
    step = trainer.step
    trainer.step = lambda batch: local.append({t: float(b[0].sum()) for t, b in batch.items()}) or step(batch)
    trainer.train()
    torch.save({"params": [p.detach().clone() for p in trainer.model.parameters()],
                "history": history, "inputs": local}, os.path.join(out, f"rank{rank}.pt"))
    trainer.close()


def test_ddp_two_gloo_processes_stay_identical(tmp_path, dataset):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = _config(tmp_path, dataset, "ddp", **{"schedule.iterations": 6, "val.every": 0, "train.ema": 0.0})
    mp.spawn(_ddp_worker, args=(2, port, config, str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["inputs"] != r1["inputs"]  # each rank sees different samples
    assert r0["history"] == r1["history"]  # same all-reduced losses, same weights, every iteration
    for a, b in zip(r0["params"], r1["params"]):
        assert torch.equal(a, b)
    fresh = Trainer(_config(tmp_path, dataset, "ddp_check", **{"schedule.iterations": 6}), progress=False).model
    load_weights(tmp_path / "experiments" / "ddp" / "checkpoints" / "net_6.safetensors", fresh)
    assert all(torch.equal(a, b) for a, b in zip(fresh.parameters(), r0["params"]))


def test_config_and_cli_errors(tmp_path, dataset, capsys):
    with pytest.raises(ValueError, match="unknown config key 'optim.learning_rate'"):
        _config(tmp_path, dataset, "x", **{"optim.learning_rate": 1})
    bad = tmp_path / "bad.yml"
    bad.write_text("datasets: {train: {patch_size: 8}}\n")
    assert main(["train", str(bad)]) == 2
    assert "datasets.train.root is required" in capsys.readouterr().err
    cfg = tmp_path / "c.yml"
    cfg.write_text(yaml.safe_dump({"datasets": {"train": {"root": str(dataset), "tasks": ["snow"]}}}))
    assert main(["train", str(cfg), "--set", f"experiments_root={tmp_path}"]) == 2
    assert "no pairs for task(s) snow; found haze, rain" in capsys.readouterr().err
    assert main(["train", str(cfg), "--set", "weighting.name=gradnorm", "--set", "datasets.train.tasks=null",
                 "--set", f"experiments_root={tmp_path}"]) == 2
    assert "unknown weighting 'gradnorm'" in capsys.readouterr().err


def test_train_cli_prints_a_summary(tmp_path, dataset, capsys):
    cfg = tmp_path / "cli.yml"
    cfg.write_text(yaml.safe_dump({"model": {"name": "moewirnet-tiny", "dim": 12},
                                   "datasets": {"train": {"root": str(dataset), "patch_size": 32},
                                                "val": {"center_crop": 32, "max_per_task": 1}},
                                   "weighting": {"name": "ori", "momentum": 0.8, "kappa": 2.0},
                                   "schedule": {"iterations": 2}, "val": {"every": 2}, "log": {"tensorboard": False}}))
    # another strategy from the command line (the file's ORI options do not follow it) and a
    # validation of the untrained network at iteration 0
    assert main(["train", str(cfg), "--no-progress", "--set", f"experiments_root={tmp_path}",
                 "--set", "weighting.name=equal", "--set", "val.at_start=true"]) == 0
    out = capsys.readouterr().out
    assert "| haze |" in out and "best mean validation PSNR" in out
    assert (tmp_path / "cli" / "summary.yml").is_file() and (tmp_path / "cli" / "train.log").is_file()
    assert {float(r["weight/haze"]) for r in _rows(tmp_path / "cli" / "train_log.csv")} == {1.0}
    assert [r["iteration"] for r in _rows(tmp_path / "cli" / "val_log.csv")] == ["0", "0", "2", "2"]


def _ablation_config(tmp_path, dataset):
    cfg = tmp_path / "base.yml"
    cfg.write_text(yaml.safe_dump({"name": "base", "experiments_root": str(tmp_path), "device": "cpu",
                                   "model": {"name": "moewirnet-tiny", "dim": 12},
                                   "datasets": {"train": {"root": str(dataset), "patch_size": 32},
                                                "val": {"center_crop": 32, "max_per_task": 1}},
                                   "val": {"every": 0}, "log": {"tensorboard": False}}))
    return cfg


def test_ablation_study_trains_each_variant_once_and_tabulates(tmp_path, dataset, monkeypatch, capsys):
    from moewir.training import ablation

    cfg = _ablation_config(tmp_path, dataset)
    args = ["ablate", "weighting", "--config", str(cfg), "--iterations", "2", "--variants", "equal,ori",
            "--no-progress", "--json", str(tmp_path / "rows.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "| equal |" in out and "| ori |" in out and "worst PSNR" in out and "Y, crop 0" in out
    group = tmp_path / "base_ablate_weighting"
    assert yaml.safe_load((group / "ori" / "config.yml").read_text())["weighting"] == {"name": "ori"}
    assert {"results.md", "results.csv", "results.json"} <= {p.name for p in group.iterdir()}
    monkeypatch.setattr(ablation, "Trainer", None)  # finished variants are not trained again
    assert main(args) == 0
    assert main(["ablate", "topk", "--config", str(cfg), "--variants", "k=5%"]) == 2
    assert "no variant(s) k=5%" in capsys.readouterr().err


def test_smoothed_ori_variant_is_ori_with_smoothing_and_nothing_else(tmp_path, dataset):
    from moewir.training.ablation import STUDIES, _variant_config

    base = load_config(_ablation_config(tmp_path, dataset), {"weighting": {"name": "ori", "momentum": 0.5}})
    variants = STUDIES.get("weighting")
    smoothed = _variant_config(base, "g", "ori-smoothed", variants["ori-smoothed"], 10, None)
    plain = _variant_config(base, "g", "ori", variants["ori"], 10, None)
    # a fresh strategy with its own defaults (momentum back to 0.9), the smoothing the only change
    assert smoothed["weighting"] == {"name": "ori", "smoothing": 0.95} and plain["weighting"] == {"name": "ori"}
    assert {k: v for k, v in smoothed.items() if k not in ("weighting", "name")} == \
        {k: v for k, v in plain.items() if k not in ("weighting", "name")}


def test_ablation_with_seeds_runs_each_seed_in_parallel_and_reports_mean_std_and_paired_interval(
        tmp_path, dataset, monkeypatch, capsys):
    from moewir.training import ablation

    cfg = _ablation_config(tmp_path, dataset)
    args = ["ablate", "topk", "--config", str(cfg), "--iterations", "2", "--variants", "k=50%,k=70%",
            "--seeds", "2", "--jobs", "2", "--no-progress"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "2 seeds, mean ± std" in out and "mean − k=70% (95% CI)" in out and " ± " in out
    group = tmp_path / "base_ablate_topk"
    for variant in ("k=50%", "k=70%"):
        assert [yaml.safe_load((group / f"{variant}_s{s}" / "config.yml").read_text())["seed"] for s in (0, 1)] == [0, 1]
    rows = {r["variant"]: r for r in json.loads((group / "results.json").read_text())}
    for row in rows.values():
        summaries = [yaml.safe_load((group / f"{row['variant']}_s{s}" / "summary.yml").read_text()) for s in (0, 1)]
        per_seed = [np.mean([v["psnr"] for v in s["validation"].values()]) for s in summaries]
        assert row["mean_psnr_per_seed"] == pytest.approx(per_seed)
        assert row["validation"]["haze"]["psnr"] == pytest.approx(np.mean([s["validation"]["haze"]["psnr"]
                                                                           for s in summaries]))
        assert row["validation"]["haze"]["psnr_std"] == pytest.approx(np.std([s["validation"]["haze"]["psnr"]
                                                                              for s in summaries], ddof=1))
    # the paired difference by hand: per-seed mean PSNR differences d, mean ± t(0.975, 1) sd / sqrt(2)
    d = np.subtract(rows["k=50%"]["mean_psnr_per_seed"], rows["k=70%"]["mean_psnr_per_seed"])
    half = 12.7062 * np.std(d, ddof=1) / np.sqrt(2)
    vs = rows["k=50%"]["vs_paper"]
    assert (vs["variant"], vs["n"]) == ("k=70%", 2) and abs(d).max() > 0 and vs["mean"] == pytest.approx(d.mean())
    assert vs["low"] == pytest.approx(d.mean() - half, abs=1e-4) and vs["high"] == pytest.approx(d.mean() + half, abs=1e-4)
    assert rows["k=70%"]["vs_paper"]["mean"] == 0
    assert len((group / "results.csv").read_text().splitlines()) == 1 + 2 * 2 * 2  # variants x seeds x tasks
    stamps = {p: p.stat().st_mtime_ns for p in group.glob("*_s*/summary.yml")}
    monkeypatch.setattr(ablation, "Trainer", None)  # every seed finished: nothing is trained again
    assert main(args) == 0
    assert {p: p.stat().st_mtime_ns for p in group.glob("*_s*/summary.yml")} == stamps and len(stamps) == 4
    with pytest.raises(SystemExit):
        main(args[:-5] + ["--seeds", "0"])
    assert "the number of seeds must be at least 1" in capsys.readouterr().err


TRAINING_CONFIGS = sorted(p for p in (Path(__file__).parent.parent / "configs").glob("*.yml")
                          if p.name != "distill.yml")  # distill.yml is tested in test_distill.py


@pytest.mark.parametrize("path", TRAINING_CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_load_and_build(path):
    from moewir.models import create_model
    from moewir.training.weighting import create_weighting

    config = load_config(path)
    model = dict(config["model"])
    model.pop("init_weights", None)  # a fine-tune's starting file: not in a fresh checkout
    create_model(model.pop("name"), **model)
    weighting = dict(config["weighting"])
    create_weighting(weighting.pop("name"), config["datasets"]["train"]["tasks"] or ["haze", "rain"], **weighting)
    assert config["name"] == path.stem


def test_bf16_autocast_trains_on_cpu(tmp_path, dataset):
    rows = {}
    for amp in ("none", "bf16"):
        config = _config(tmp_path, dataset, f"amp_{amp}", **{"train.amp": amp, "schedule.iterations": 3, "val.every": 0})
        trainer = Trainer(config, progress=False)
        assert (trainer.amp is torch.bfloat16) == (amp == "bf16")
        trainer.train()
        rows[amp] = [float(r["total"]) for r in _rows(tmp_path / "experiments" / f"amp_{amp}" / "train_log.csv")]
    assert all(np.isfinite(rows["bf16"])) and rows["bf16"] != rows["none"]  # autocast was active
    np.testing.assert_allclose(rows["bf16"][0], rows["none"][0], rtol=0.05)  # same first step, bf16 rounding
    config = _config(tmp_path, dataset, "amp_fp16", **{"train.amp": "fp16"})
    assert Trainer(config, progress=False).amp is None  # fp16 needs CUDA: float32, said in the log
    assert "not available on cpu" in (tmp_path / "experiments" / "amp_fp16" / "train.log").read_text()


def test_exponent_numbers_and_number_types(tmp_path, dataset):
    """PyYAML alone reads ``5e-4`` as a string (YAML 1.1); configs and --set read it as 0.0005,
    and a non-number where a number belongs is a one-line error, not a torch traceback."""
    from moewir.cli.options import parse_overrides
    assert parse_overrides(["optim.lr=5e-4", "x=1e3", "name=run1e3"]) == {"optim.lr": 0.0005, "x": 1000.0,
                                                                         "name": "run1e3"}
    cfg = tmp_path / "e.yml"
    cfg.write_text(f"datasets: {{train: {{root: {dataset}}}}}\noptim: {{lr: 5e-4}}\nschedule: {{min_lr: 1e-7}}\n")
    config = load_config(cfg)
    assert config["optim"]["lr"] == 0.0005 and config["schedule"]["min_lr"] == 1e-7
    with pytest.raises(ValueError, match="'optim.lr' must be a number, got 'fast'"):
        load_config(cfg, {"optim.lr": "fast"})


def test_set_switches_the_weighting_strategy(tmp_path, dataset):
    """``--set weighting.name=equal`` over a file that configures ORI (momentum, kappa) must
    build the new strategy, not fail on ORI's options; options given alongside are kept."""
    from moewir.training.weighting import create_weighting
    path = Path(__file__).parent.parent / "configs" / "tiny_cpu_synthetic.yml"
    assert load_config(path)["weighting"] == {"name": "ori", "momentum": 0.9, "kappa": 1.0}
    for name in ("equal", "unirain", "dwa", "uncertainty", "rci"):
        weighting = dict(load_config(path, {"weighting.name": name})["weighting"])
        assert weighting == {"name": name}
        create_weighting(weighting.pop("name"), ["haze", "rain"], **weighting)
    assert load_config(path, {"weighting.name": "dwa", "weighting.period": 7})["weighting"] == {"name": "dwa", "period": 7}
    assert load_config(path, {"weighting.kappa": 2.0})["weighting"] == {"name": "ori", "momentum": 0.9, "kappa": 2.0}
    assert load_config(path, {"weighting.name": "ori"})["weighting"]["kappa"] == 1.0  # same strategy: kept
    assert load_config(path, {"weighting": {"name": "equal"}})["weighting"] == {"name": "equal"}


def test_corrupt_image_in_a_loader_worker_is_one_line(tmp_path, dataset, capsys):
    """torch re-raises a DataLoader worker's ImageReadError from its formatted traceback; the
    CLI must still print one line naming the file (it printed 'Caught ImageReadError in
    DataLoader worker process 0' and the worker's traceback)."""
    import shutil
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    for path in (data / "train" / "HAZE" / "input").iterdir():
        path.write_bytes(path.read_bytes()[:60])
    cfg = tmp_path / "w.yml"
    cfg.write_text(yaml.safe_dump({"model": {"name": "moewirnet-tiny", "dim": 12},
                                   "datasets": {"train": {"root": str(data), "patch_size": 32, "workers": 2}},
                                   "schedule": {"iterations": 2}, "val": {"every": 0}, "log": {"tensorboard": False}}))
    assert main(["train", str(cfg), "--no-progress", "--set", f"experiments_root={tmp_path}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("moewir: error: ") and "HAZE/input/" in err[0], err
    assert "corrupt or truncated image" in err[0] and "Traceback" not in err[0]


_KILLER = """
import os, signal, sys, torch, yaml
from moewir.training.trainer import Trainer
torch.set_num_threads(int(sys.argv[4]))  # the parent's: the same float sums as its uninterrupted run
config = yaml.safe_load(open(sys.argv[1]))
trainer = Trainer(config, resume=sys.argv[2] == "resume", progress=False)
loader, after = trainer.loader, int(sys.argv[3])
def dying():
    for _ in range(after):
        yield next(loader)
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9: no finally, no flush
trainer.loader = dying()
trainer.train()
"""


def test_kill_9_twice_then_resume_logs_every_iteration_once(tmp_path, dataset):
    """kill -9 at iteration 9 (checkpoint at 6), resume, kill -9 again at 7 (before any flush of
    the resumed run), resume to the end: the logs equal an uninterrupted run's, and temporary
    files a kill mid-save leaves are removed on resume."""
    import subprocess
    import sys
    Trainer(_config(tmp_path, dataset, "full"), progress=False).train()
    config = _config(tmp_path, dataset, "cut")
    (tmp_path / "cut.json").write_text(yaml.safe_dump(config))
    script = tmp_path / "killer.py"
    script.write_text(_KILLER)
    threads = str(torch.get_num_threads())
    env = {**os.environ, "OMP_NUM_THREADS": threads}
    for mode, after in (("new", 8), ("resume", 1)):
        proc = subprocess.run([sys.executable, str(script), str(tmp_path / "cut.json"), mode, str(after), threads],
                              env=env, capture_output=True, text=True)
        assert proc.returncode == -9, proc.stderr
    cut = tmp_path / "experiments" / "cut"
    orphan = cut / "checkpoints" / ".net_6.safetensors.k2j4.tmp"
    orphan.write_bytes(b"half a file")
    resumed = Trainer(config, resume=True, progress=False)
    resumed.train()
    full = tmp_path / "experiments" / "full"
    assert [r["iteration"] for r in _rows(cut / "train_log.csv")] == [str(i) for i in range(1, 13)]
    assert resumed.start == 6 and not orphan.exists()
    assert _rows(cut / "train_log.csv") == _rows(full / "train_log.csv")
    assert _rows(cut / "val_log.csv") == _rows(full / "val_log.csv")
    assert "removed 1 temporary file(s)" in (cut / "train.log").read_text()


@pytest.mark.parametrize("damage", ["empty", "random", "weights"])
def test_resume_falls_back_past_a_corrupt_latest_checkpoint(tmp_path, dataset, capsys, damage):
    config = _config(tmp_path, dataset, "fb", **{"log.keep_checkpoints": 3})
    Trainer(config, progress=False).train()
    ckpt = tmp_path / "experiments" / "fb" / "checkpoints"
    target = ckpt / ("net_12.safetensors" if damage == "weights" else "state_12.pt")
    target.write_bytes(b"" if damage == "empty" else os.urandom(4096))
    capsys.readouterr()
    resumed = Trainer(config, resume=True, progress=False)
    assert resumed.start == 6
    err = capsys.readouterr().err
    assert "checkpoint 12 is unreadable and was moved aside" in err and "weights_only" not in err
    assert {"empty": "(empty file)", "random": "corrupt, or not a moewir training state",
            "weights": "cannot read weights"}[damage] in err
    assert (target.parent / (target.name + ".corrupt")).is_file()
    resumed.train()  # and it trains to the end again
    assert (ckpt / "state_12.pt").is_file() and Trainer(config, resume=True, progress=False).start == 12
    for path in ckpt.iterdir():
        if not path.name.endswith(".corrupt"):
            path.write_bytes(b"")
    with pytest.raises(ValueError, match="no intact checkpoint to resume from"):
        Trainer(config, resume=True, progress=False)


@pytest.mark.parametrize("key, value, message", [
    ("optim.lr", [1, 2], "'optim.lr' must be a positive number, got [1, 2]"),
    ("optim.lr", 0, "'optim.lr' must be a positive number"),
    ("datasets.train.patch_size", -5, "'datasets.train.patch_size' must be a positive integer, got -5"),
    ("datasets.train.batch_per_task", {"haze": 0}, "'datasets.train.batch_per_task' must be a positive integer or"),
    ("schedule.iterations", 2.5, "'schedule.iterations' must be a positive integer"),
    ("train.ema", 1.0, "'train.ema' must be a number in [0, 1)"),
    ("optim.betas", [0.9], "'optim.betas' must be two numbers in [0, 1)"),
    ("datasets.val.center_crop", 0, "'datasets.val.center_crop' must be null or a positive integer"),
    ("datasets.train.zoom", [0.5, 2], "'datasets.train.zoom' must be null or [lo, hi] with 0 < lo <= hi <= 1"),
])
def test_unusable_config_values_name_their_key(tmp_path, dataset, capsys, key, value, message):
    """One line naming the key and the value, before torch or numpy see it; and a run that fails
    at start leaves no experiment folder behind."""
    cfg = tmp_path / "v.yml"
    cfg.write_text(yaml.safe_dump({"datasets": {"train": {"root": str(dataset)}}}))
    with pytest.raises(ValueError, match=re.escape(message)):
        load_config(cfg, {key: value})
    assert main(["train", str(cfg), "--set", f"{key}={json.dumps(value)}", "--set", f"experiments_root={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.escape(message)[:20].replace("\\", "") in err.replace("\\", "")
    assert not (tmp_path / "v").exists()


def test_failed_start_leaves_no_folder_and_bad_val_images_are_skipped(tmp_path, dataset, capsys):
    import shutil
    config = _config(tmp_path, dataset, "nofolder", **{"datasets.train.tasks": ["snow"]})
    with pytest.raises(ValueError, match="no pairs for task"):
        Trainer(config, progress=False)
    assert not (tmp_path / "experiments" / "nofolder").exists()
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    bad = sorted((data / "test" / "RAIN" / "input").iterdir())[0]
    bad.write_bytes(b"not an image")
    for corrupt_train in sorted((data / "train" / "HAZE" / "input").iterdir())[:3]:  # 3 of 4: drawn for sure
        corrupt_train.write_bytes(b"")
    overrides = {"datasets.train.root": str(data), "schedule.iterations": 6, "val.every": 3,
                 "datasets.val.max_per_task": 2}
    with pytest.raises(ImageReadError, match="not an image"):  # without skip_bad the first validation stops
        Trainer(_config(tmp_path, dataset, "strict", **overrides, **{"datasets.train.tasks": ["rain"]}),
                progress=False).train()
    capsys.readouterr()
    trainer = Trainer(_config(tmp_path, dataset, "lenient", **overrides, **{"datasets.train.skip_bad": True}),
                      progress=False)
    trainer.train()
    err = capsys.readouterr().err
    assert err.count("skipping unreadable validation pair") == 1 and bad.name in err
    log = (tmp_path / "experiments" / "lenient" / "train.log").read_text()
    assert "skipping unreadable validation pair" in log
    rows = _rows(tmp_path / "experiments" / "lenient" / "val_log.csv")
    assert {r["images"] for r in rows if r["task"] == "rain"} == {"1"}  # 2 pairs, one unreadable
    assert "moewir: warning: skipping unreadable pair" in err and "skipping unreadable pair: " in log  # both


def test_relative_weighting_reads_the_loss_of_the_unrestored_input(tmp_path, dataset):
    """``weighting: relative`` gets, every iteration, each task's criterion of the input patch
    against its target (computed here independently from the same batch)."""
    config = _config(tmp_path, dataset, "relative", **{"weighting": {"name": "relative", "momentum": 0.5},
                                                        "schedule.iterations": 4, "val.every": 0,
                                                        "log.checkpoint_every": 4})
    trainer = Trainer(config, progress=False)
    seen, expected = [], []
    feed, step = trainer.weighting.set_reference, trainer.step
    trainer.weighting.set_reference = lambda values: seen.append(values) or feed(values)
    trainer.step = lambda batch: expected.append(
        {t: float(trainer.criterion(x, y)) for t, (x, y) in batch.items()}) or step(batch)
    trainer.train()
    assert len(seen) == 4 and [list(s) for s in seen] == [["haze", "rain"]] * 4
    for got, want in zip(seen, expected):
        assert got == pytest.approx(want, rel=1e-6)
    # the hazy inputs (0.6 c + 0.35) are further from their targets than the rainy ones
    r = trainer.weighting.reference
    assert r[0] > r[1] and trainer.weighting.update({"haze": 1.0, "rain": 1.0})["rain"] > 1.0


def test_zoom_reaches_every_task_loader(tmp_path, dataset):
    from moewir.training.config import training_config
    from moewir.training.trainer import build_dataloaders
    config = training_config(_config(tmp_path, dataset, "zoom", **{"datasets.train.zoom": [0.5, 1.0]}))
    _, loader, _ = build_dataloaders(config.datasets, 0, 0, 0)
    assert {t: l.dataset.zoom for t, l in loader.loaders.items()} == {"haze": (0.5, 1.0), "rain": (0.5, 1.0)}
    assert next(loader)["haze"][0].shape[-1] == 32


def test_clean_task_adds_every_target_as_its_own_input(tmp_path, dataset):
    """``datasets.train.clean_task``: a task ``clean`` whose patches are unchanged photos, trained
    and weighted as the others; refused beside ``relative`` (its reference loss would be 0)."""
    from moewir.data import clean_pairs, discover
    from moewir.training.config import training_config
    from moewir.training.trainer import build_dataloaders
    found = discover(dataset, "train")
    pairs = clean_pairs({**found, "copy": found["haze"]})  # a target listed twice is used once
    targets = sorted({p.target for t in found for p in found[t]})
    assert sorted(p.target for p in pairs) == targets and all(p.input == p.target and p.task == "clean" for p in pairs)
    config = training_config(_config(tmp_path, dataset, "clean", **{"datasets.train.clean_task": True}))
    tasks, loader, _ = build_dataloaders(config.datasets, 0, 0, 0)
    assert sorted(tasks) == ["clean", "haze", "rain"] and len(tasks["clean"]) == 8
    inp, tgt = next(loader)["clean"]
    assert torch.equal(inp, tgt) and inp.shape == (1, 3, 32, 32)
    trainer = Trainer(_config(tmp_path, dataset, "clean", **{"datasets.train.clean_task": True,
                                                             "schedule.iterations": 3, "val.every": 0}), progress=False)
    assert trainer.tasks == ["clean", "haze", "rain"] and set(trainer.weighting.tasks) == {"clean", "haze", "rain"}
    with pytest.raises(ValueError, match="relative.*0 on datasets.train.clean_task"):
        Trainer(_config(tmp_path, dataset, "clean_rel", **{"datasets.train.clean_task": True,
                                                           "weighting": {"name": "relative"}}), progress=False)


def test_task_head_classifies_from_the_bottleneck_and_resumes(tmp_path, dataset):
    """``train.task_head``: a linear layer on the mean bottleneck features of each patch, its
    cross-entropy (checked against one computed here from a hook of our own) added to the loss
    with its weight; trained, checkpointed and resumed; the weights file holds the network alone."""
    from moewir.models import read_tensors
    overrides = {"train.task_head": 0.5, "schedule.iterations": 4, "val.every": 0, "log.checkpoint_every": 2,
                 "weighting": {"name": "equal"}}
    trainer = Trainer(_config(tmp_path, dataset, "head", **overrides), progress=False)
    head = trainer.task_head
    seen = []
    trainer.model.bottleneck.register_forward_hook(lambda m, a, out: seen.append(out.detach()))
    w0, b0 = head.linear.weight.detach().clone(), head.linear.bias.detach().clone()
    result = trainer.step(next(trainer.loader))  # one patch of haze (label 0), one of rain (label 1)
    assert seen[0].shape[0] == 2 and head.linear.in_features == seen[0].shape[1]
    expected = torch.nn.functional.cross_entropy(seen[0].mean(dim=(2, 3)) @ w0.T + b0, torch.tensor([0, 1]))
    assert result["task_head"]["cross_entropy"] == pytest.approx(float(expected), rel=1e-5)
    restoration = sum(result["weights"][t] * result["losses"][t] for t in trainer.tasks)
    assert result["total"] == pytest.approx(restoration + 0.5 * float(expected), rel=1e-5)
    assert not torch.equal(head.linear.weight, w0)  # the head learns
    trainer.train()
    resumed = Trainer(_config(tmp_path, dataset, "head", **{**overrides, "schedule.iterations": 6}),
                      resume=True, progress=False)
    assert resumed.start == 4 and torch.equal(resumed.task_head.linear.weight, trainer.task_head.linear.weight)
    stored = read_tensors(tmp_path / "experiments" / "head" / "checkpoints" / "net_4.safetensors")
    assert set(stored) == set(trainer.model.state_dict())


def test_the_decoded_cache_trains_the_same_run(tmp_path, dataset):
    """``datasets.train.cache`` reaches the loader: its folder fills, and the losses are the uncached run's."""
    losses = {}
    for name, extra in (("plain", {}), ("cached", {"datasets.train.cache": str(tmp_path / "decoded")})):
        config = _config(tmp_path, dataset, name, **{"schedule.iterations": 3, "val.every": 0, "log.every": 1,
                                                     **extra})
        Trainer(config, progress=False).train()
        losses[name] = [r["total"] for r in _rows(tmp_path / "experiments" / name / "train_log.csv")]
    assert losses["plain"] == losses["cached"] and len(losses["plain"]) == 3
    assert list((tmp_path / "decoded").glob("*.npy"))
