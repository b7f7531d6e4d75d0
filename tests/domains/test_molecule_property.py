"""The QM9 property predictor, the training halves, guidance by the predictor and the CLI entry point."""
from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from sciffusion.processes import VPCosine
from sciffusion.samplers import prior_sample, sample
from sciffusion.space import GraphSpace
from sciffusion.timesteps import make_grid
from sciffusion_domains.molecules.domain import QM9Domain, training_halves
from sciffusion_domains.molecules.property import (PropertyPredictor, load_predictor, property_guidance,
                                                   save_predictor)

LIMIT = 300
F = 6  # H C N O F one-hot and the atomic-number column
GUIDANCE_YAML = "domains/molecules/conf/guidance/property.yaml"


def _molecules(counts, *, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    counts = torch.as_tensor(counts)
    batch = torch.repeat_interleave(torch.arange(len(counts)), counts)
    space = GraphSpace(batch, len(counts), zero_mean=(0, 1, 2))
    types = torch.randint(0, 5, (len(batch),), generator=g)
    x = torch.cat([2 * torch.randn(len(batch), 3, generator=g, dtype=dtype),
                   0.25 * torch.nn.functional.one_hot(types, 5).to(dtype), 0.1 * (types[:, None] + 1).to(dtype)], 1)
    return space.project(x), space


def _orthogonal(seed: int, reflect: bool) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    if (torch.linalg.det(q) < 0) != reflect:
        q = q * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    return q


@pytest.mark.parametrize("noise_aware", [False, True])
@pytest.mark.parametrize("pooling", ["sum", "mean"])
def test_predictor_is_e3_and_permutation_invariant(noise_aware, pooling):
    torch.manual_seed(0)
    model = PropertyPredictor(F, hidden=16, num_layers=3, noise_aware=noise_aware, pooling=pooling,
                              mean=70.0, std=8.0, dtype=torch.float64)
    with torch.no_grad():  # large position updates, so that the layers' equivariance is exercised
        for layer in model.layers:
            layer.coord_mlp[-1].weight.normal_(0, 0.3)
    x, space = _molecules([5, 3, 7])
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    out = model(x, space, t)
    assert out.shape == (3,) and out.dtype == torch.float64
    for reflect in (False, True):
        q = _orthogonal(1 + int(reflect), reflect)
        moved = x.clone()
        moved[:, :3] = x[:, :3] @ q.T + torch.tensor([3.0, -1.0, 0.5], dtype=torch.float64)
        torch.testing.assert_close(model(moved, space, t), out, atol=1e-10, rtol=1e-10)
    # Shuffle the atoms (rows) across the whole batch, molecule ids travelling with them.
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(3))
    shuffled = GraphSpace(space.batch[perm], 3, zero_mean=(0, 1, 2))
    torch.testing.assert_close(model(x[perm], shuffled, t), out, atol=1e-10, rtol=1e-10)
    # Not constant: the prediction depends on the geometry (and on t when noise-aware).
    stretched = x.clone()
    stretched[:, :3] *= 1.3
    assert (model(stretched, space, t) - out).abs().max() > 1e-6
    if noise_aware:
        assert (model(x, space, t.flip(0)) - out).abs().max() > 1e-6


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = PropertyPredictor(F, hidden=16, num_layers=2)
    x, space = _molecules(torch.randint(3, 10, (32,), generator=torch.Generator().manual_seed(1)).tolist(),
                          dtype=torch.float32)
    # An invariant target: the number of heavy (non-H) atoms plus the mean squared radius.
    heavy = torch.zeros(32).index_add_(0, space.batch, (x[:, 3] == 0).float())
    radius = torch.zeros(32).index_add_(0, space.batch, (x[:, :3] ** 2).sum(1)) / space.counts
    y = (heavy + radius - 10.0) / 3.0
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        loss = torch.nn.functional.mse_loss(model.standardised(x, space), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.5 * sum(losses[:5]) / 5


def test_checkpoint_round_trip_loads_with_weights_only(tmp_path):
    model = PropertyPredictor(F, hidden=8, num_layers=2, noise_aware=True, mean=75.0, std=8.0)
    meta = {"num_features": F, "network": {"hidden": 8, "num_layers": 2, "noise_aware": True, "pooling": "sum"},
            "property": "alpha", "process": "vp_cosine", "atom_types": ["H", "C", "N", "O", "F"],
            "include_charges": True}
    path = save_predictor(model, tmp_path / "p.pt", meta)
    raw = torch.load(path, weights_only=True)
    assert raw["property"] == "alpha" and raw["model"]["mean"].item() == 75.0
    loaded, got = load_predictor(path)
    x, space = _molecules([4, 6], dtype=torch.float32)
    t = torch.tensor([0.2, 0.7])
    torch.testing.assert_close(loaded(x, space, t), model(x, space, t))
    assert got["network"]["noise_aware"] and not loaded.training


def test_halves_are_disjoint_cover_the_training_split_and_are_fixed_by_the_seed():
    whole = QM9Domain(limit=LIMIT, perceive_bonds=False)
    a = QM9Domain(limit=LIMIT, half="a", perceive_bonds=False)
    b = QM9Domain(limit=LIMIT, half="b", perceive_bonds=False)
    rows = {name: d._split("train") for name, d in {"all": whole, "a": a, "b": b}.items()}
    n = len(rows["all"])
    assert len(rows["a"]) + len(rows["b"]) == n and abs(len(rows["a"]) - len(rows["b"])) <= 1
    # Identify molecules by their positions (rows are distinct molecules).
    key = lambda s: {tuple(s[i].pos[0].tolist()) + (len(s[i].pos),) for i in range(len(s))}  # noqa: E731
    ka, kb, kall = key(rows["a"]), key(rows["b"]), key(rows["all"])
    assert not ka & kb and ka | kb == kall and len(kall) == n
    # val and test are untouched.
    assert len(a._split("val")) == len(whole._split("val")) and len(b._split("test")) == len(whole._split("test"))
    # Fixed by the seed: the same seed gives the same halves, another seed other halves.
    assert key(QM9Domain(limit=LIMIT, half="a", perceive_bonds=False)._split("train")) == ka
    assert key(QM9Domain(limit=LIMIT, half="a", half_seed=7, perceive_bonds=False)._split("train")) != ka
    halves = training_halves(100_000)
    assert len(halves["a"]) == len(halves["b"]) == 50_000
    assert torch.equal(torch.cat([halves["a"], halves["b"]]).sort().values, torch.arange(100_000))
    assert torch.equal(training_halves(100_000)["a"], halves["a"])
    with pytest.raises(ValueError, match="half"):
        QM9Domain(half="c")


def test_halves_set_the_statistics_of_a_conditional_domain():
    b = QM9Domain(limit=LIMIT, half="b", condition="alpha", perceive_bonds=False)
    values = b._split("train").y[:, b._property_column()].double()
    mean, std = b.property_stats()
    torch.testing.assert_close(mean, values.mean().reshape(1))
    # conditions are drawn from the half
    cond = b.condition(64, generator=torch.Generator().manual_seed(0))
    drawn = set(b.denormalise(cond["properties"]).flatten().round(decimals=3).tolist())
    assert drawn <= set(values.float().round(decimals=3).tolist())


def _guided_prediction(predictor_path, process, *, target, scale, std=1.0, steps=25):
    """Predicted property of samples from an analytic N(0, I) denoiser, guided or not (same seed)."""
    model, _ = load_predictor(predictor_path)
    counts = [5, 6, 4, 7, 5, 6, 5, 4, 6, 5, 7, 6]
    _, space = _molecules(counts, dtype=torch.float32)

    def denoiser(x, t, space=None, cond=None):  # the exact denoiser of N(0, I) data under a VP process
        return space.project(space.per_sample(process.alpha(t).to(x), x) * x)

    guide = denoiser
    if scale:
        config = OmegaConf.load(GUIDANCE_YAML)["guidance"]
        config.predictor, config.target, config.scale, config.std = str(predictor_path), float(target), scale, std
        guide = instantiate(config)(denoiser, process=process)
    g = torch.Generator().manual_seed(0)
    x = prior_sample(process, torch.zeros(len(space.batch), 3 + F), space=space, generator=g)
    x0 = sample("ddim", guide, x, make_grid("uniform_t", process, steps), process=process, space=space, cond={},
                generator=g)
    with torch.no_grad():
        return model(x0, space, torch.zeros(space.num_samples))


def test_guidance_moves_the_predicted_property_towards_the_target(tmp_path):
    torch.manual_seed(0)
    predictor = PropertyPredictor(F, hidden=16, num_layers=2, noise_aware=True)
    meta = {"num_features": F, "network": {"hidden": 16, "num_layers": 2, "noise_aware": True, "pooling": "sum"},
            "property": "alpha", "process": "vp_cosine", "atom_types": ["H", "C", "N", "O", "F"],
            "include_charges": True}
    path = save_predictor(predictor, tmp_path / "psi.pt", meta)
    process = VPCosine()
    plain = _guided_prediction(path, process, target=0.0, scale=0)
    spread = plain.std().item()
    for direction in (+1, -1):
        target = plain.mean().item() + direction * 3 * spread
        guided = _guided_prediction(path, process, target=target, scale=1.0, std=8 * spread)
        before, after = (plain - target).abs().mean().item(), (guided - target).abs().mean().item()
        assert after < 0.6 * before, (direction, before, after)
        assert direction * (guided.mean() - plain.mean()).item() > spread


def test_guidance_needs_a_noise_aware_predictor(tmp_path):
    meta = {"num_features": F, "network": {"hidden": 8, "num_layers": 1, "noise_aware": False, "pooling": "sum"}}
    path = save_predictor(PropertyPredictor(F, hidden=8, num_layers=1), tmp_path / "phi.pt", meta)
    with pytest.raises(ValueError, match="noise-aware"):
        property_guidance(lambda *a: a[0], process=VPCosine(), predictor=str(path), target=1.0)


def test_train_entry_point_writes_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "phi.pt"
    cmd = [sys.executable, "-m", "sciffusion_domains.molecules.property", "train", "--limit", str(LIMIT),
           "--half", "a", "--steps", "6", "--batch-size", "16", "--hidden", "8", "--layers", "2",
           "--val-limit", "20", "--noise-aware", "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, text=True, env={"OMP_NUM_THREADS": "1", **_env()})
    model, meta = load_predictor(out)
    assert meta["half"] == "a" and meta["steps"] == 6 and meta["property"] == "alpha" and meta["unit"] == "bohr^3"
    assert math.isfinite(meta["val_mae"]) and meta["network"]["noise_aware"]
    assert 20 < model.mean.item() < 90 and model.std.item() > 1


def test_training_goes_through_the_project_trainer_and_keeps_its_time_budget(tmp_path, monkeypatch):
    from sciffusion.training import Trainer
    from sciffusion_domains.molecules import property_cli
    from sciffusion_domains.molecules.property import PropertyLoss

    fitted, fit = [], Trainer.fit
    monkeypatch.setattr(Trainer, "fit", lambda self, **kw: fitted.append(self) or fit(self, **kw))
    out = tmp_path / "phi.pt"
    property_cli.main(["train", "--limit", str(LIMIT), "--half", "b", "--steps", "50", "--batch-size", "8",
                       "--hidden", "8", "--layers", "1", "--val-limit", "10", "--loss", "l2",
                       "--max-minutes", "1e-9", "--out", str(out)])
    (trainer,) = fitted
    assert isinstance(trainer.loss_fn, PropertyLoss) and trainer.loss_fn.kind == "l2"
    _, meta = load_predictor(out)
    assert meta["steps"] == 1 and meta["half"] == "b" and math.isfinite(meta["final_train_loss"])


def test_the_property_loss_is_the_error_of_the_standardised_prediction():
    from sciffusion_domains.molecules.domain import PROPERTIES
    from sciffusion_domains.molecules.property import PropertyLoss

    model = PropertyPredictor(F, hidden=8, num_layers=1, noise_aware=True, mean=70.0, std=8.0)
    x, space = _molecules([4, 6], dtype=torch.float32)
    y = torch.tensor([0.5, -1.0])
    clean = PropertyLoss(kind="l2")
    t = clean.sample_time(2)
    expected = (model.standardised(x, space, None) - y) ** 2
    torch.testing.assert_close(clean(model, x, space=space, cond={PROPERTIES: y[:, None]}, t=t), expected)
    noisy = PropertyLoss(process=VPCosine(), t_min=0.5)
    t = noisy.sample_time(1000, torch.Generator().manual_seed(0))
    assert 0.5 <= t.min() and t.max() <= 1 and t.dtype == torch.float64
    g = lambda: torch.Generator().manual_seed(1)  # noqa: E731
    out = noisy(model, x, space=space, cond={PROPERTIES: y[:, None]}, t=t[:2], generator=g())
    assert out.shape == (2,) and not torch.allclose(out, (model.standardised(x, space, t[:2].float()) - y).abs())
    with pytest.raises(ValueError, match="'l1' or 'l2'"):
        PropertyLoss(kind="huber")


def _env():
    import os

    return {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
