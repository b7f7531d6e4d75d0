"""The images domain's networks: shapes for any size, the null class, periodicity in width, training
on real digits, determinism and float64."""
from __future__ import annotations

import pytest
import torch

from sciffusion import DiffusionLoss, EDMPrecond, ModelDenoiser
from sciffusion.losses import DROP
from sciffusion.processes import EDM, VPCosine
from sciffusion.space import DenseSpace
from sciffusion_domains.dense.networks import FIELDS, LABEL, VECTOR, DiT, UNet

NETWORKS = [UNet, DiT]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The test machines share two cores between many jobs; there, two intra-op threads per process
    make convolutions tens of times slower than one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def perturb_(net: torch.nn.Module, scale: float = 0.05, seed: int = 0) -> torch.nn.Module:
    """Add noise to every parameter: zero-initialised outputs would hide what the network computes."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net


def conditions(kind: str, batch: int, height: int, width: int, g: torch.Generator) -> dict[str, torch.Tensor]:
    cond = {}
    if kind in ("label", "all"):
        cond[LABEL] = torch.randint(0, 10, (batch,), generator=g)
    if kind in ("fields", "all"):
        cond[FIELDS] = torch.randn(batch, 2, height, width, generator=g)
    if kind in ("vector", "all"):
        cond[VECTOR] = torch.randn(batch, 3, generator=g)
    return cond


CONDITIONED = dict(num_classes=10, field_channels=2, vector_dim=3)
SMALL = {UNet: dict(channels=16, head_channels=16), DiT: dict(width=64, depth=2)}  # same code, less time


@pytest.mark.parametrize("cls", NETWORKS)
@pytest.mark.parametrize("shape", [(1, 1, 28, 28), (2, 3, 13, 57), (3, 2, 8, 8)])
@pytest.mark.parametrize("kind", ["none", "label", "fields", "vector", "all"])
def test_shapes_any_size_and_condition(cls, shape, kind):
    torch.manual_seed(0)
    b, c, h, w = shape
    net = perturb_(cls(c, 2 * c, **CONDITIONED, **SMALL[cls]))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(shape, generator=g)
    out = net(x, torch.rand(b, generator=g), None, conditions(kind, b, h, w, g))
    assert out.shape == (b, 2 * c, h, w)
    assert torch.isfinite(out).all()


CONFIGS = {
    "unet-default": lambda: UNet(3),
    "dit-default": lambda: DiT(3),
    "unet-3-levels-circular": lambda: UNet(3, channel_mult=(1, 2, 2), attention_levels=(2,), circular_width=True),
    "unet-4-levels": lambda: UNet(3, channel_mult=(1, 1, 2, 2), attention_levels=(0, 3)),
    "dit-patch-4": lambda: DiT(3, patch_size=4, width=64, depth=2),
}


@pytest.mark.parametrize("config", CONFIGS)
def test_default_and_deeper_configs_any_size(config):
    torch.manual_seed(0)
    net = perturb_(CONFIGS[config]())
    for size in [(13, 57), (5, 6), (1, 1)]:
        x = torch.randn(1, 3, *size)
        out = net(x, torch.rand(1), None, {})
        assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("cls", NETWORKS)
def test_output_layers_start_at_zero(cls):
    """ADM / adaLN-Zero initialisation: the untrained network predicts exactly zero."""
    out = cls(2)(torch.randn(2, 2, 8, 8), torch.rand(2), None, {})
    assert torch.equal(out, torch.zeros_like(out))


@pytest.mark.parametrize("cls", NETWORKS)
def test_dropped_condition_is_the_null_condition(cls):
    torch.manual_seed(0)
    net = perturb_(cls(1, **CONDITIONED, **SMALL[cls]))
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(4, 1, 13, 10, generator=g), torch.rand(4, generator=g)
    cond = conditions("all", 4, 13, 10, g)
    unconditional = net(x, t, None, {})
    dropped = net(x, t, None, {**cond, DROP: torch.ones(4, dtype=torch.bool)})
    torch.testing.assert_close(dropped, unconditional, rtol=0, atol=1e-6)
    null_label = net(x, t, None, {LABEL: torch.full((4,), 10)})
    torch.testing.assert_close(null_label, unconditional, rtol=0, atol=1e-6)

    conditional = net(x, t, None, cond)
    for key in cond:
        changed = net(x, t, None, {k: v for k, v in cond.items() if k != key})
        assert (changed - conditional).abs().amax() > 1e-3, f"cond[{key!r}] does not change the output"
    other_labels = net(x, t, None, {LABEL: (cond[LABEL] + 1) % 10})
    assert (other_labels - net(x, t, None, {LABEL: cond[LABEL]})).abs().amax() > 1e-3

    half = torch.tensor([True, False, True, False])
    mixed = net(x, t, None, {**cond, DROP: half})
    torch.testing.assert_close(mixed[half], unconditional[half], rtol=0, atol=1e-6)
    torch.testing.assert_close(mixed[~half], conditional[~half], rtol=0, atol=1e-6)


def test_nan_in_dropped_vector_does_not_leak():
    torch.manual_seed(0)
    net = perturb_(UNet(1, vector_dim=3, channels=16, channel_mult=(1,), attention_levels=(), head_channels=16))
    vector = torch.randn(2, 3)
    vector[0] = float("nan")
    out = net(torch.randn(2, 1, 8, 8), torch.rand(2), None, {VECTOR: vector, DROP: torch.tensor([True, False])})
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def rolled_error(net: UNet, x: torch.Tensor, shift: int) -> float:
    t = torch.full((x.shape[0],), 0.3, dtype=x.dtype)
    out_of_rolled = net(torch.roll(x, shift, dims=-1), t, None, {})
    rolled_out = torch.roll(net(x, t, None, {}), shift, dims=-1)
    return (out_of_rolled - rolled_out).abs().amax().item()


@pytest.mark.parametrize("height, width, shift", [(13, 16, 4), (8, 24, -8), (13, 15, 1), (6, 18, 2)])
def test_circular_width_commutes_with_rolls(height, width, shift):
    """Widths divisible by the total downsampling (4) commute with rolls by multiples of it; odd widths
    are never downsampled in width and commute with every roll; 18 is halved once (rolls by 2)."""
    torch.manual_seed(0)
    net = perturb_(UNet(2, channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, attention_levels=(1,),
                        head_channels=16, circular_width=True)).double()
    x = torch.randn(2, 2, height, width, dtype=torch.float64)
    assert rolled_error(net, x, shift) < 1e-10


def test_rolls_do_not_commute_without_circular_width():
    """The same check fails on an ordinary UNet (zero padding at the edges), so it can fail."""
    torch.manual_seed(0)
    net = perturb_(UNet(2, channels=16, channel_mult=(1, 2, 2), num_res_blocks=1, head_channels=16)).double()
    assert rolled_error(net, torch.randn(2, 2, 13, 16, dtype=torch.float64), 4) > 1e-3


@pytest.fixture(scope="module")
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    datasets = pytest.importorskip("sklearn.datasets")
    images, labels = datasets.load_digits(return_X_y=True)
    x = torch.tensor(images, dtype=torch.float32).reshape(-1, 1, 8, 8) / 8 - 1  # 0..16 -> [-1, 1]
    return x, torch.tensor(labels)


TRAINED = {UNet: dict(channels=16, num_res_blocks=1, head_channels=16), DiT: dict(width=64, depth=2)}


@pytest.mark.parametrize("cls", NETWORKS)
@pytest.mark.parametrize("parameterization", ["eps", "edm"])
def test_training_on_digits_reduces_the_loss(cls, parameterization, digits):
    x, labels = digits
    torch.manual_seed(0)
    net = cls(1, num_classes=10, **TRAINED[cls])
    if parameterization == "eps":
        model, loss_fn = ModelDenoiser(net, VPCosine(), "eps"), DiffusionLoss(VPCosine(), cond_dropout=0.1)
    else:
        model = EDMPrecond(net, EDM())
        loss_fn = DiffusionLoss(EDM(), weighting="edm", time_distribution="log_normal", cond_dropout=0.1)
    x_eval, cond_eval = x[:128], {LABEL: labels[:128]}

    def evaluation_loss() -> float:  # the same times and noise before and after training
        with torch.no_grad():
            g = torch.Generator().manual_seed(123)
            return torch.stack([loss_fn(model, x_eval, cond=cond_eval, generator=g,
                                        space=DenseSpace()).mean() for _ in range(2)]).mean().item()

    before = evaluation_loss()
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(30):
        idx = torch.randint(128, len(x), (32,), generator=g)
        loss = loss_fn(model, x[idx], cond={LABEL: labels[idx]}, generator=g, space=DenseSpace()).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = evaluation_loss()
    assert after < 0.75 * before, f"loss {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("cls", NETWORKS)
def test_deterministic_given_the_seed(cls, digits):
    x, labels = digits[0][:8], {LABEL: digits[1][:8]}
    losses = []
    for _ in range(2):
        torch.manual_seed(3)
        net = perturb_(cls(1, num_classes=10))
        model = ModelDenoiser(net, VPCosine(), "eps")
        g = torch.Generator().manual_seed(4)
        losses.append(DiffusionLoss(VPCosine(), cond_dropout=0.5)(model, x, cond=labels, generator=g,
                                                                  space=DenseSpace()))
    assert torch.equal(losses[0], losses[1])


@pytest.mark.parametrize("cls", NETWORKS)
def test_float64_matches_float32_and_has_exact_gradients(cls):
    torch.manual_seed(0)
    small = dict(channels=8, channel_mult=(1, 2), num_res_blocks=1, head_channels=8) if cls is UNet \
        else dict(width=16, depth=1, num_heads=2, noise_features=16)
    net = perturb_(cls(1, num_classes=3, **small), scale=0.2)
    x, t, cond = torch.randn(2, 1, 5, 6), torch.rand(2), {LABEL: torch.tensor([0, 2])}
    out32 = net(x, t, None, cond)
    net = net.double()
    out64 = net(x.double(), t.double(), None, cond)
    assert out64.dtype == torch.float64
    torch.testing.assert_close(out64.float(), out32, rtol=1e-4, atol=1e-5)
    x64 = x[:1, :, :3, :3].double().requires_grad_()
    assert torch.autograd.gradcheck(lambda y: net(y, t[:1].double(), None, {LABEL: cond[LABEL][:1]}), (x64,))


@pytest.mark.parametrize("cls", NETWORKS)
def test_noise_level_embeddings(cls):
    """A scalar t means the same t for every sample; EDM's negative c_noise and Fourier features work."""
    torch.manual_seed(0)
    net = perturb_(cls(1, noise_embedding="fourier", **SMALL[cls]))
    x = torch.randn(3, 1, 8, 8)
    torch.testing.assert_close(net(x, torch.tensor(-1.5), None, {}), net(x, torch.full((3,), -1.5), None, {}))
    assert (net(x, torch.full((3,), -1.5), None, {}) - net(x, torch.full((3,), 0.5), None, {})).abs().amax() > 1e-3


@pytest.mark.parametrize("cls", NETWORKS)
def test_clear_errors(cls):
    net = cls(1, field_channels=2)
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    with pytest.raises(ValueError, match="num_classes"):
        net(x, t, None, {LABEL: torch.tensor([1, 2])})
    with pytest.raises(ValueError, match=r"\(2, 2, 8, 8\).*\(2, 2, 8, 9\)"):
        net(x, t, None, {FIELDS: torch.randn(2, 2, 8, 9)})
    with pytest.raises(ValueError, match="shape"):
        net(torch.randn(2, 3, 8, 8), t, None, {})
    with pytest.raises(ValueError, match=r"t must"):
        net(x, torch.rand(3), None, {})


def test_unet_rejects_attention_outside_its_levels():
    with pytest.raises(ValueError, match="attention_levels"):
        UNet(1, channel_mult=(1, 2), attention_levels=(2,))


def test_dense_networks_live_outside_the_images_domain():
    """``sciffusion_domains.dense`` (networks, feature-space metrics, posterior guidance) is the home
    every dense domain imports; the former paths still work, and the weather domain no longer reaches
    into images."""
    from pathlib import Path

    import sciffusion_domains.images.networks as former
    from sciffusion_domains import weather

    assert (former.UNet, former.DiT, former.ConditionEmbedding) == (UNet, DiT, former.ConditionEmbedding)
    assert UNet.__module__.startswith("sciffusion_domains.dense.networks")
    from sciffusion_domains.dense import inverse, metrics
    from sciffusion_domains.images import inverse as image_inverse, metrics as image_metrics

    assert image_metrics.frechet_distance is metrics.frechet_distance
    assert image_inverse.posterior_guidance is inverse.posterior_guidance
    sources = "".join(p.read_text() for p in Path(weather.__file__).parent.glob("*.py"))
    assert "sciffusion_domains.images" not in sources
