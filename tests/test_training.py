"""The training loop in-process: data order, schedules, EMA, clipping, autocast, resuming, the
NaN guard, logs and periodic sampling, all on the toy domain with a tiny network."""
import json
from functools import partial

import pytest
import torch

from sciffusion.losses import DiffusionLoss
from sciffusion.parameterization import ModelDenoiser
from sciffusion.processes import make_process
from sciffusion.training import (EMA, Layout, NonFiniteLossError, SamplingOptions, StepSampler, Trainer, TrainOptions,
                                 load_checkpoint, seed_everything)
from sciffusion.training.schedule import multiplier
from sciffusion_domains.toy import ToyDomain


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only add contention on a shared machine
    yield
    torch.set_num_threads(threads)


def make_trainer(run_dir, *, lr=1e-2, optimizer=torch.optim.AdamW, **options) -> Trainer:
    domain = ToyDomain(train_size=256, test_size=128)
    process = make_process("vp_cosine")
    seed_everything(0)
    model = ModelDenoiser(domain.network(hidden=16, depth=2), process, "v")
    defaults = dict(steps=8, batch_size=16, log_every=2, save_every=4, progress=False, tensorboard=False,
                    device="cpu", ema_decay=0.9)
    return Trainer(domain=domain, model=model, process=process, loss=DiffusionLoss(process),
                   optimizer=partial(optimizer, lr=lr), run_dir=run_dir, options=TrainOptions(**{**defaults, **options}),
                   sampling=SamplingOptions(sampler="euler", steps=4, batch_size=32))


def held_out_loss(trainer: Trainer) -> float:
    """The loss on the test split with fixed noise: comparable before and after training."""
    data = trainer.domain.dataset("test")
    batch = trainer.domain.collate([data[i] for i in range(len(data))])
    with torch.no_grad():
        loss = trainer.loss_fn(trainer.model, batch.x, space=batch.space, generator=torch.Generator().manual_seed(0))
    return float(loss.mean())


def records(run_dir, kind="train"):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


@pytest.mark.parametrize("world, accumulate", [(1, 1), (1, 4), (2, 2), (4, 1)])
def test_a_global_batch_is_the_same_however_it_is_split(world, accumulate):
    n, batch = 50, 8  # 6 steps per epoch, 2 items left out of each epoch
    reference = StepSampler(n, Layout(batch), seed=3)
    per_rank = [StepSampler(n, Layout(batch, world, r, accumulate), seed=3) for r in range(world)]
    ref_iter, rank_iters = iter(reference), [iter(s) for s in per_rank]
    for _ in range(15):  # crosses two epoch boundaries
        expected = next(ref_iter)
        parts = [next(it) for it in rank_iters for _ in range(accumulate)]
        assert sum(parts, []) == expected
    resumed = iter(StepSampler(n, Layout(batch), seed=3, start=15))
    assert next(resumed) == next(ref_iter)


def test_layout_rejects_batches_that_do_not_split():
    with pytest.raises(ValueError, match="batch_size=10 must be a positive multiple of world_size x accumulate"):
        Layout(10, world_size=2, accumulate=3)


def test_warmup_then_cosine_schedule():
    lr = partial(multiplier, kind="cosine", warmup=4, total=14, final=0.1)
    assert [lr(s) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr(4) == pytest.approx(1.0) and lr(9) == pytest.approx(0.55) and lr(14) == pytest.approx(0.1)


def test_ema_averages_with_warm_up():
    model = torch.nn.Linear(1, 1, bias=False)
    ema = EMA(model, decay=0.99)
    with torch.no_grad():
        model.weight.fill_(0.0)
        ema.module.weight.fill_(1.0)
    ema.update()  # decay warm-up: min(0.99, 1/10) = 0.1
    assert float(ema.module.weight) == pytest.approx(0.1)
    assert ema.current_decay() == pytest.approx(2 / 11)


def test_loss_falls_and_logs_go_to_jsonl_and_tensorboard(tmp_path):
    trainer = make_trainer(tmp_path, steps=60, log_every=20, tensorboard=True)
    before = held_out_loss(trainer)
    trainer.fit()
    assert held_out_loss(trainer) < 0.8 * before
    assert [r["step"] for r in records(tmp_path)] == [20, 40, 60]
    assert any((tmp_path / "tensorboard").iterdir())
    assert load_checkpoint(trainer.last_path)["data"] == {"epoch": 3, "batch": 12}


def test_resuming_in_process_is_bitwise_identical(tmp_path):
    make_trainer(tmp_path / "a", steps=8).fit()
    make_trainer(tmp_path / "b", steps=4).fit()
    make_trainer(tmp_path / "b", steps=8).fit()  # resume="auto" continues from step 4
    a, b = (load_checkpoint(tmp_path / d / "checkpoints" / "last.ckpt") for d in "ab")
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key])
        assert torch.equal(a["ema"]["module"][key], b["ema"]["module"][key])


def test_gradients_are_clipped(tmp_path):
    trainer = make_trainer(tmp_path, steps=1, grad_clip=1e-3, optimizer=torch.optim.SGD, lr=1.0)
    before = torch.cat([p.detach().flatten().clone() for p in trainer.model.parameters()])
    trainer.fit()
    after = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    assert records(tmp_path)[0]["grad_norm"] > 1e-3
    assert float((after - before).norm()) == pytest.approx(1e-3, rel=1e-3)


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16), ("fp16", torch.float16)])
def test_mixed_precision_autocast_on_cpu(tmp_path, precision, dtype):
    trainer = make_trainer(tmp_path, steps=60, log_every=20, precision=precision)
    before = held_out_loss(trainer)
    seen = []
    trainer.model.net.inp.register_forward_hook(lambda m, args, out: seen.append(out.dtype))
    trainer.fit()
    assert set(seen) == {dtype}
    assert trainer.scaler.is_enabled() == (precision == "fp16")  # fp16 needs loss scaling, bf16 does not
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32
    assert held_out_loss(trainer) < 0.8 * before


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = make_trainer(tmp_path, steps=8, save_every=1)
    forward = trainer.model.net.forward

    def poisoned(x, *args):
        out = forward(x, *args)
        return out * float("nan") if trainer.step >= 3 else out

    trainer.model.net.forward = poisoned
    with pytest.raises(NonFiniteLossError, match="step 3: the loss nan is not finite; the last good checkpoint is"):
        trainer.fit()
    assert load_checkpoint(trainer.last_path)["step"] == 3
    assert all(torch.isfinite(v).all() for v in load_checkpoint(trainer.last_path)["model"].values())
    assert "not finite" in records(tmp_path, "error")[0]["error"]


def test_periodic_sampling_writes_samples_and_metrics(tmp_path):
    make_trainer(tmp_path, steps=4, sample_every=4, sample_count=40).fit()
    folder = tmp_path / "samples" / "step_00000004"
    assert {p.name for p in folder.iterdir()} == {"samples.npy", "samples.csv", "figure.png"}
    (sampled,) = records(tmp_path, "sample")
    assert sampled["step"] == 4 and {"mean_error", "cov_error", "mode_weight_gap"} <= set(sampled)


def test_dataloader_workers_see_the_same_data_order(tmp_path):
    make_trainer(tmp_path / "inline", steps=4).fit()
    make_trainer(tmp_path / "workers", steps=4, num_workers=1).fit()
    a, b = (load_checkpoint(tmp_path / d / "checkpoints" / "last.ckpt")["model"] for d in ("inline", "workers"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_after_step_sees_each_step_and_can_end_a_run_that_resumes_bitwise(tmp_path):
    seen = []
    trainer = make_trainer(tmp_path / "stopped", steps=8, save_every=100)
    trainer.fit(after_step=lambda step, out: seen.append((step, float(out["loss"]))) or step == 3)
    assert [step for step, _ in seen] == [1, 2, 3] and all(loss > 0 for _, loss in seen)
    assert load_checkpoint(trainer.last_path)["step"] == 3
    make_trainer(tmp_path / "stopped", steps=8).fit()
    make_trainer(tmp_path / "whole", steps=8).fit()
    a, b = (load_checkpoint(tmp_path / d / "checkpoints" / "last.ckpt")["model"] for d in ("stopped", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)


class NormRegression:
    """A task that is not denoising: predict the norm of the toy's points."""

    def sample_time(self, n, generator=None):
        return torch.zeros(n)

    def __call__(self, model, x0, *, space, cond, t, generator):
        return (model(x0).squeeze(1) - x0.norm(dim=1)) ** 2


def test_any_task_with_the_loss_interface_trains_without_a_process(tmp_path):
    seed_everything(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 32), torch.nn.SiLU(), torch.nn.Linear(32, 1))
    options = TrainOptions(steps=60, batch_size=32, log_every=20, progress=False, tensorboard=False, device="cpu")
    trainer = Trainer(domain=ToyDomain(train_size=256, test_size=128), model=model, process=None,
                      loss=NormRegression(), optimizer=partial(torch.optim.AdamW, lr=1e-2), run_dir=tmp_path,
                      options=options)
    trainer.fit()
    first, *_, last = records(tmp_path)
    assert last["loss"] < 0.3 * first["loss"]
    with pytest.raises(ValueError, match="needs the noise process"):
        Trainer(domain=ToyDomain(), model=model, process=None, loss=NormRegression(),
                optimizer=torch.optim.AdamW, run_dir=tmp_path, sampling=SamplingOptions())


class StatefulToy(ToyDomain):
    """A toy domain that learns a statistic from its data, as normalising domains do."""

    def __init__(self, **options):
        super().__init__(**options)
        self.scale = None

    def state_dict(self):
        if self.scale is None:
            self.scale = self.dataset("train").points.std(0)
        return {"scale": self.scale}

    def load_state_dict(self, state):
        self.scale = state["scale"]


def test_domain_state_travels_in_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path, steps=4)
    trainer.domain = StatefulToy(train_size=256, test_size=128)
    trainer.fit()
    state = load_checkpoint(trainer.last_path)
    torch.testing.assert_close(state["domain"]["scale"], trainer.domain.dataset("train").points.std(0))
    fresh = StatefulToy(train_size=256, test_size=128)
    fresh.load_state_dict(state["domain"])
    torch.testing.assert_close(fresh.scale, state["domain"]["scale"])
    with pytest.raises(ValueError, match="keeps no state"):
        ToyDomain().load_state_dict(state["domain"])
