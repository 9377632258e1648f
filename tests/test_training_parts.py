"""The trainer's parts on their own: typed config, EMA, LR schedule, validation through
moewir.evaluation (the end-to-end runs are in test_training.py)."""
import dataclasses
import math
import re
from pathlib import Path
from typing import get_type_hints

import numpy as np
import pytest
import torch
import yaml
from torch import nn

from moewir.data import write_image
from moewir.evaluation import aggregate, evaluate, fidelity_metrics
from moewir.training.config import (DEFAULTS, OptimConfig, ScheduleConfig, TrainingConfig, config_dict,
                                    load_config, training_config)
from moewir.training.optim import build_optimizer, build_scheduler, load_scheduler_state
from moewir.training.trainer import Trainer, build_model_and_ema, pick_pairs
from schedules import cosine_with_warmup


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(1)
    for split in ("train", "test"):
        for task in ("HAZE", "RAIN"):
            for i in range(2):
                clean = rng.uniform(0.2, 0.8, (36, 44, 3))
                write_image(root / split / task / "input" / f"{i}.png", 0.7 * clean + 0.25)
                write_image(root / split / task / "target" / f"{i}.png", clean)
    return root


def _file(tmp_path, dataset, **sections):
    path = tmp_path / "run.yml"
    path.write_text(yaml.safe_dump({"experiments_root": str(tmp_path / "experiments"), "device": "cpu",
                                    "model": {"name": "moewirnet-tiny", "dim": 12},
                                    "datasets": {"train": {"root": str(dataset), "patch_size": 32}},
                                    "log": {"tensorboard": False}, **sections}))
    return path


# --- typed config ----------------------------------------------------------------------------
def test_the_loaded_config_is_typed_and_round_trips(tmp_path, dataset):
    raw = load_config(_file(tmp_path, dataset, optim={"lr": 1, "betas": [0.8, 0.99]},
                            datasets={"train": {"root": str(dataset), "tasks": ["haze"], "batch_per_task": {"haze": 2},
                                                "patch_schedule": [[0, 16], [5, 32]]}}))
    cfg = training_config(raw)
    assert isinstance(cfg, TrainingConfig) and cfg.name == "run"
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float) and cfg.optim.betas == (0.8, 0.99)
    assert cfg.datasets.train.tasks == ("haze",) and cfg.datasets.train.batch_per_task == {"haze": 2}
    assert cfg.datasets.train.patch_schedule == ((0, 16), (5, 32)) and cfg.model == {"name": "moewirnet-tiny", "dim": 12}
    assert config_dict(cfg) == raw  # what config.yml and checkpoints store: the plain mapping
    assert yaml.safe_load(yaml.safe_dump(config_dict(cfg))) == raw
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.optim.lr = 2.0


def test_defaults_are_read_off_the_dataclasses():
    assert DEFAULTS == config_dict(TrainingConfig())
    assert DEFAULTS["optim"]["betas"] == [0.9, 0.999] and DEFAULTS["schedule"]["iterations"] == 300000
    sections = [f.name for f in dataclasses.fields(TrainingConfig)]
    assert list(DEFAULTS) == sections


@pytest.mark.parametrize("key, value, message", [
    ("schedule.iterations", "5k", "'schedule.iterations' must be a number, got '5k'"),
    ("val.every", True, "'val.every' must be a number, got True"),
    ("val.at_start", "no", "'val.at_start' must be true or false, got 'no'"),
    ("log.tensorboard", 1, "'log.tensorboard' must be true or false, got 1"),
    ("datasets.train.tasks", "haze", "'datasets.train.tasks' must be null or a list of task names, got 'haze'"),
    ("datasets.train.patch_schedule", [[0, 0]], "'datasets.train.patch_schedule' must be null or a list of"),
    ("datasets.val.split", 3, "'datasets.val.split' must be a string, got 3"),
    ("train.amp", "fp8", "'train.amp' must be one of none, bf16, fp16, got 'fp8'"),
    ("optim.type", "sgd", "'optim.type' must be one of adam, adamw, got 'sgd'"),
    ("loss.freq_norm", "l2", "'loss.freq_norm' must be one of backward, ortho, forward"),
    ("val.tile", 0, "'val.tile' must be null or a positive integer, got 0"),
    ("device", None, "'device' must be a string, got None"),
    ("datasets.val.pick", "random", "'datasets.val.pick' must be one of first, spread, got 'random'"),
])
def test_a_wrong_type_fails_when_the_file_is_loaded(tmp_path, dataset, key, value, message):
    with pytest.raises(ValueError, match=re.escape(f"config key {message}")):
        load_config(_file(tmp_path, dataset), {key: value})


def test_a_mapping_given_to_the_trainer_is_checked_the_same_way(tmp_path, dataset):
    raw = load_config(_file(tmp_path, dataset))
    with pytest.raises(ValueError, match="config key 'optim.lr' must be a positive number, got -1"):
        Trainer({**raw, "optim": {**raw["optim"], "lr": -1}}, progress=False)
    with pytest.raises(ValueError, match="config section 'optim': unknown OptimConfig option.s. momentum; valid"):
        Trainer({**raw, "optim": {**raw["optim"], "momentum": 0.9}}, progress=False)
    assert not (tmp_path / "experiments").exists()


def _keys(cls, prefix=""):
    hints = get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            yield from _keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}"


def test_every_key_has_its_type_in_the_docs():
    text = (Path(__file__).parent.parent / "docs" / "training.md").read_text()
    missing = [key for key in _keys(TrainingConfig) if f"| `{key}` |" not in text]
    assert not missing


# --- validation pairs -----------------------------------------------------------------------
def test_spread_validation_reaches_every_photo_of_a_sorted_test_split():
    # five photos with six variants each, sorted by name as discover() returns them
    pairs = [f"photo{p}_{v:02d}" for p in range(5) for v in range(6)]
    assert pick_pairs(pairs, 6, "first") == [f"photo0_{v:02d}" for v in range(6)]
    assert pick_pairs(pairs, 6, "spread") == ["photo0_00", "photo0_05", "photo1_04", "photo2_03", "photo3_02",
                                              "photo4_01"]
    assert pick_pairs(pairs, 5, "spread") == [f"photo{p}_00" for p in range(5)]
    assert pick_pairs(pairs, None, "spread") == pairs and pick_pairs(pairs, 40, "first") == pairs
    assert pick_pairs(pairs[:3], 1, "spread") == ["photo0_00"]


def test_the_trainer_validates_on_the_picked_pairs(tmp_path):
    rng = np.random.default_rng(2)
    for split in ("train", "test"):
        for i in range(4):
            clean = rng.uniform(0.2, 0.8, (36, 44, 3))
            write_image(tmp_path / "data" / split / "RAIN" / "input" / f"{i}.png", 0.7 * clean + 0.25)
            write_image(tmp_path / "data" / split / "RAIN" / "target" / f"{i}.png", clean)
    names = {}
    for pick in ("first", "spread"):
        (tmp_path / pick).mkdir()
        trainer = Trainer(load_config(_file(tmp_path / pick, tmp_path / "data"),
                                      {"datasets.val.max_per_task": 2, "datasets.val.pick": pick}), progress=False)
        names[pick] = [Path(p.input).name for p in trainer.val_pairs["rain"]]
    assert names == {"first": ["0.png", "1.png"], "spread": ["0.png", "2.png"]}


# --- EMA -------------------------------------------------------------------------------------
def test_ema_follows_the_formula_by_hand_and_copies_buffers():
    torch.manual_seed(0)
    model, ema = build_model_and_ema({"name": "moewirnet-tiny", "dim": 12}, 0.9, torch.device("cpu"))
    model.register_buffer("counter", torch.zeros(3))
    ema.module.register_buffer("counter", torch.zeros(3))
    start = [p.detach().clone() for p in model.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(ema.module.parameters(), start))  # starts at the initial weights
    hand = [p.double() for p in start]
    lerp = [p.clone() for p in start]  # the update before AveragedModel: ema.lerp_(p, 1 - d)
    for step in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 0.1)
            model.counter.fill_(step + 1)
        ema.update_parameters(model)
        hand = [0.9 * e + 0.1 * p.detach().double() for e, p in zip(hand, model.parameters())]
        for e, p in zip(lerp, model.parameters()):
            e.lerp_(p.detach(), 0.1)
    for e, h, old in zip(ema.module.parameters(), hand, lerp):
        torch.testing.assert_close(e.double(), h, rtol=0, atol=1e-6)
        assert torch.equal(e, old)  # bit for bit what the trainer computed before
    assert torch.equal(ema.module.counter, torch.full((3,), 5.0))  # buffers: copied, not averaged
    assert build_model_and_ema({"name": "moewirnet-tiny", "dim": 12}, 0.0, torch.device("cpu"))[1] is None


# --- LR schedule -----------------------------------------------------------------------------
def _stepped(optimizer, scheduler, steps: int):
    """The learning rates of ``steps`` optimiser and scheduler steps."""
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return lrs


def _lrs(schedule: ScheduleConfig, base: float) -> list[float]:
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=base)
    return _stepped(optimizer, build_scheduler(optimizer, schedule), schedule.iterations)


def test_torch_schedulers_give_warmup_then_cosine_by_hand():
    lrs = _lrs(ScheduleConfig(iterations=10, warmup=2, min_lr=0.1), 1.0)
    # linear (step + 1) / warmup, then 0.1 + 0.9 * (1 + cos(pi (step - 2) / 8)) / 2
    by_hand = [0.5, 1.0] + [0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (s - 2) / 8)) for s in range(2, 10)]
    assert lrs == pytest.approx(by_hand, rel=1e-12, abs=0)
    assert lrs[6] == pytest.approx(0.55)


@pytest.mark.parametrize("iterations, warmup, base, min_lr", [
    (12, 3, 2e-3, 1e-5), (1000, 50, 1e-3, 1e-6), (3000, 0, 2e-4, 1e-6), (400, 1, 2e-4, 0.0), (5, 5, 1e-3, 1e-6),
    (5, 8, 1e-3, 1e-6)])
def test_torch_schedulers_match_the_closed_form(iterations, warmup, base, min_lr):
    factor = cosine_with_warmup(iterations, warmup, base, min_lr)
    lrs = _lrs(ScheduleConfig(iterations=iterations, warmup=warmup, min_lr=min_lr), base)
    assert lrs == pytest.approx([base * factor(s) for s in range(iterations)], rel=1e-11, abs=0)


def test_lr_scale_gives_a_module_its_multiple_of_the_schedule():
    """``optim.lr_scale``: ``prior_embed``'s parameters in a group of their own at 30x the rate,
    the same warm-up and cosine (to the same ``min_lr``); everything else, and ``extra``, at 1x."""
    import moewir
    model = moewir.create_model("restormer-tiny", prior="dcp")
    extra = nn.Parameter(torch.zeros(2))
    optimizer = build_optimizer(model, OptimConfig(lr=1e-3, lr_scale={"prior_embed": 30.0}), [extra])
    plain, scaled = optimizer.param_groups
    assert [p is model.prior_embed.weight for p in scaled["params"]] == [True]
    assert len(plain["params"]) == len(list(model.parameters())) and plain["params"][-1] is extra
    schedule = ScheduleConfig(iterations=12, warmup=3, min_lr=1e-5)
    scheduler = build_scheduler(optimizer, schedule)
    rates = []
    for _ in range(schedule.iterations):
        rates.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    for group, base in enumerate([1e-3, 3e-2]):
        factor = cosine_with_warmup(schedule.iterations, schedule.warmup, base, schedule.min_lr)
        assert [r[group] for r in rates] == pytest.approx([base * factor(s) for s in range(12)], rel=1e-11)
    with pytest.raises(ValueError, match="optim.lr_scale': the model has no parameters under prior"):
        build_optimizer(moewir.create_model("restormer-tiny"), OptimConfig(lr_scale={"prior": 2.0}))
    with pytest.raises(ValueError, match="'optim.lr_scale' must be a mapping of module name to positive number"):
        training_config({**DEFAULTS, "optim": {**DEFAULTS["optim"], "lr_scale": {"prior_embed": 0}}})


def _resumed_lrs(old_optimizer, old_scheduler, schedule: ScheduleConfig, base: float, steps: int):
    """The learning rates of the next ``steps`` steps of a run resumed, as the trainer does, from
    ``old_optimizer`` and ``old_scheduler`` with the config's ``schedule``."""
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=base)
    scheduler = build_scheduler(optimizer, schedule)
    optimizer.load_state_dict(old_optimizer.state_dict())
    scheduler = load_scheduler_state(scheduler, old_scheduler.state_dict(), optimizer, schedule)
    return _stepped(optimizer, scheduler, steps)


@pytest.mark.parametrize("warmup", [0, 4])
def test_a_stretched_schedule_resumes_on_the_new_curve(warmup):
    """``--resume --set schedule.iterations=N`` past the end of the first schedule: the learning
    rate continues on the closed form of the longer one (loading the checkpoint's state as it is
    kept the old T_max and climbed back up from min_lr)."""
    base, min_lr = 2e-4, 1e-6
    first = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=base)
    scheduler = build_scheduler(first, ScheduleConfig(iterations=30, warmup=warmup, min_lr=min_lr))
    _stepped(first, scheduler, 30)
    lrs = _resumed_lrs(first, scheduler, ScheduleConfig(iterations=50, warmup=warmup, min_lr=min_lr), base, 20)
    factor = cosine_with_warmup(50, warmup, base, min_lr)
    assert lrs == pytest.approx([base * factor(s) for s in range(30, 50)], rel=1e-9, abs=0)
    assert lrs[0] > 20 * min_lr and lrs == sorted(lrs, reverse=True)  # halfway down the longer cosine, not at the floor


def test_an_unchanged_schedule_resumes_from_the_state_exactly():
    schedule = ScheduleConfig(iterations=40, warmup=4, min_lr=1e-5)
    optimizer = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = build_scheduler(optimizer, schedule)
    _stepped(optimizer, scheduler, 17)
    resumed = _resumed_lrs(optimizer, scheduler, schedule, 1e-3, 23)
    assert resumed == _stepped(optimizer, scheduler, 23)  # bit for bit


def test_a_lambdalr_checkpoint_of_earlier_versions_resumes_on_the_same_curve():
    schedule, base = ScheduleConfig(iterations=40, warmup=4, min_lr=1e-5), 1e-3
    old_opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=base)
    old = torch.optim.lr_scheduler.LambdaLR(old_opt, cosine_with_warmup(40, 4, base, 1e-5))
    _stepped(old_opt, old, 17)
    lrs = _resumed_lrs(old_opt, old, schedule, base, 23)
    factor = cosine_with_warmup(40, 4, base, 1e-5)
    assert lrs == pytest.approx([base * factor(s) for s in range(17, 40)], rel=1e-11, abs=0)


# --- validation --------------------------------------------------------------------------------
def test_validation_scores_as_moewir_eval_does(tmp_path, dataset):
    path = _file(tmp_path, dataset, val={"crop_border": 3, "y_channel": False, "every": 0},
                 datasets={"train": {"root": str(dataset), "patch_size": 32}, "val": {"center_crop": None}})
    trainer = Trainer(load_config(path), progress=False)
    results = trainer.validate()
    net = trainer.ema.module

    def restore(image):  # `moewir eval`'s view of the same network: H x W x 3 numpy in and out
        with torch.no_grad():
            out = net(torch.from_numpy(image).permute(2, 0, 1)[None].float())
        return out.clamp(0, 1)[0].permute(1, 2, 0).numpy()

    metrics = fidelity_metrics(crop_border=3, y_channel=False)
    table = aggregate(evaluate({"ema": restore}, trainer.val_pairs, metrics, progress=False), metrics)
    expected = {r["task"]: {"images": r["images"], "psnr": r["psnr"], "ssim": r["ssim"]} for r in table
                if r["task"] != "average"}
    assert set(results) == {"haze", "rain"}
    for task, r in results.items():  # equal but for SSIM's filter sums on another memory layout
        assert r["images"] == 2 and r["psnr"] == expected[task]["psnr"]
        assert r["ssim"] == pytest.approx(expected[task]["ssim"], rel=1e-12)
