"""E(3) equivariance, permutation equivariance, conditioning and trainability of the molecule networks.

The helpers ``random_isometry``, ``transform`` and ``equivariance_error`` take any function
``fn(x [N, 3 + F], space) -> [N, 3 + F]``, so the same check applies to a whole sampling run
(``test_helper_checks_a_sampling_run``): E(3) acts on columns 0..2, atom permutations on rows.
"""
import copy
import functools

import pytest
import torch

from sciffusion.losses import DROP, DiffusionLoss
from sciffusion.parameterization import ModelDenoiser
from sciffusion.processes import VPCosine
from sciffusion.space import DenseSpace, GraphSpace
from sciffusion_domains.molecules.networks import EGNN, PROPERTIES, TensorProductNet

SIZES = [1, 2, 5, 9, 4]  # a lone atom, a pair and a few molecules of QM9-like size
NUM_FEATURES = 4


def molecules(sizes=SIZES, *, num_features=NUM_FEATURES, seed=0, dtype=torch.float64):
    """A batch ``x [N, 3 + F]`` (positions at zero mean per molecule, one-hot-ish types) and its space."""
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    space = GraphSpace(batch, len(sizes), zero_mean=(0, 1, 2))
    pos = 1.5 * torch.randn(batch.numel(), 3, generator=g, dtype=dtype)
    types = torch.nn.functional.one_hot(torch.randint(num_features, (batch.numel(),), generator=g), num_features)
    types = types.to(dtype) + 0.1 * torch.randn(batch.numel(), num_features, generator=g, dtype=dtype)
    return space.project(torch.cat([pos, types], 1)), space


def random_isometry(seed, *, reflect, dtype=torch.float64):
    """An orthogonal 3x3 matrix with determinant -1 if ``reflect`` else +1."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if (torch.det(q) < 0) != reflect:
        q = q @ torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    return q.to(dtype)


def transform(x, space, *, rotation=None, shift=None, atom_perm=None, molecule_perm=None):
    """Act on a batch: positions ``pos @ rotation.T + shift[molecule]`` (shift ``[B, 3]``), then the
    rows reordered by ``atom_perm`` (new row k is old row atom_perm[k]) and molecule m relabelled
    ``molecule_perm[m]``. Returns the new ``(x, space)``."""
    pos, rest = x[:, :3], x[:, 3:]
    if rotation is not None:
        pos = pos @ rotation.T.to(x)
    if shift is not None:
        pos = pos + shift.to(x)[space.batch]
    x = torch.cat([pos, rest], 1)
    batch = space.batch
    if molecule_perm is not None:
        batch = molecule_perm[batch]
    if atom_perm is not None:
        x, batch = x[atom_perm], batch[atom_perm]
    return x, GraphSpace(batch, space.num_samples, space.zero_mean)


def permute_molecules(values, molecule_perm):
    """Per-molecule values ``[B, ...]`` after relabelling molecule m as molecule_perm[m]."""
    out = torch.empty_like(values)
    out[molecule_perm] = values
    return out


def equivariance_error(fn, x, space, *, rotation, shift, atom_perm, molecule_perm, outputs_translate=False):
    """Relative errors (positions, features) of ``fn`` under the group action: compares
    ``fn(g x)`` with ``g' fn(x)``, where g' applies the same rotation and permutations but the
    translation only if ``outputs_translate`` (network predictions are translation invariant)."""
    out = fn(x, space)
    x_g, space_g = transform(x, space, rotation=rotation, shift=shift, atom_perm=atom_perm, molecule_perm=molecule_perm)
    out_g = fn(x_g, space_g)
    expected, _ = transform(out, space, rotation=rotation, shift=shift if outputs_translate else None,
                            atom_perm=atom_perm, molecule_perm=molecule_perm)
    scale = lambda v: v.abs().max().clamp(min=1e-30)
    return ((out_g[:, :3] - expected[:, :3]).abs().max() / scale(expected[:, :3].abs()),
            (out_g[:, 3:] - expected[:, 3:]).abs().max() / scale(expected[:, 3:].abs()))


def group_elements(space, *, seed, reflect):
    g = torch.Generator().manual_seed(seed)
    return dict(rotation=random_isometry(seed, reflect=reflect),
                shift=10 * torch.randn(space.num_samples, 3, generator=g, dtype=torch.float64),
                atom_perm=torch.randperm(space.batch.numel(), generator=g),
                molecule_perm=torch.randperm(space.num_samples, generator=g))


NETWORKS = {
    "egnn": lambda **kw: EGNN(NUM_FEATURES, hidden=32, num_layers=3, **kw),
    "egnn_sin_radius": lambda **kw: EGNN(NUM_FEATURES, hidden=32, num_layers=2, sublayers=2, sin_embedding=True,
                                         attention=False, radius=3.0, max_num_neighbors=6, **kw),
    "tensor_product": lambda **kw: TensorProductNet(NUM_FEATURES, hidden_irreps="16x0e + 4x1o + 4x1e + 2x2e",
                                                    num_layers=2, radial_hidden=16, **kw),
    "tensor_product_radius": lambda **kw: TensorProductNet(NUM_FEATURES, hidden_irreps="8x0e + 4x1o", num_layers=2,
                                                           radial_hidden=16, radius=3.0, max_radius=4.0,
                                                           max_num_neighbors=6, **kw),
}


@functools.lru_cache(maxsize=None)
def _built(name, num_properties):
    torch.manual_seed(0)
    net = NETWORKS[name](num_properties=num_properties, dtype=torch.float64)
    if isinstance(net, EGNN):  # EDM's tiny initial coordinate gain would hide errors in the position output
        for layer in net.layers:
            torch.nn.init.normal_(layer.coord_mlp[-1].weight, std=0.3)
    return net


def network(name, dtype=torch.float64, num_properties=0):
    """A fresh copy of a test network. Built once in float64 (e3nn's code generation takes seconds);
    ``.to(float32)`` of it equals a float32 build, which also rounds float64 constants once."""
    return copy.deepcopy(_built(name, num_properties)).to(dtype)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # Tiny tensors gain nothing from threads, and on a busy machine OpenMP waits make them ~100x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def check_network(net, dtype, *, num_properties=0, reflect=True, seed=0):
    torch.manual_seed(seed)
    net = net.to(dtype)
    x, space = molecules(dtype=dtype, seed=seed)
    num = space.num_samples
    t = torch.rand(num, dtype=dtype)
    props = torch.randn(num, num_properties, dtype=dtype)
    drop = torch.arange(num) % 2 == 0
    elements = group_elements(space, seed=seed, reflect=reflect)
    perm = elements["molecule_perm"]

    def fn(x_in, space_in):  # per-molecule inputs follow the relabelling of molecules
        moved = space_in is not space
        relabel = (lambda v: permute_molecules(v, perm)) if moved else (lambda v: v)
        cond = {PROPERTIES: relabel(props), DROP: relabel(drop)} if num_properties else {}
        with torch.no_grad():
            return net(x_in, relabel(t), space_in, cond)

    return equivariance_error(fn, x, space, **elements)


def tolerance(dtype, name=""):
    if dtype == torch.float64:
        return 1e-10
    # EDM's sinusoidal distance features have a 0.0075 wavelength: input rounding alone moves them ~1e-4
    return 1e-2 if "sin" in name else 1e-4


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_networks_are_e3_and_permutation_equivariant(name, dtype):
    for seed, reflect in [(0, True), (1, False)]:
        for num_properties in (0, 3):
            net = network(name, dtype, num_properties)
            err_pos, err_types = check_network(net, dtype, num_properties=num_properties, reflect=reflect, seed=seed)
            assert max(err_pos, err_types) < tolerance(dtype, name), (name, seed, err_pos, err_types)


class AddsRawPositions(torch.nn.Module):
    """Not equivariant: the x coordinate leaks into the atom features."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t, space, cond):
        return self.net(torch.cat([x[:, :3], x[:, 3:] + 1e-3 * x[:, :1]], 1), t, space, cond)


class Chiral(torch.nn.Module):
    """Rotation- but not reflection-equivariant: adds a pseudovector (a cross product) to positions."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x, t, space, cond):
        out = self.net(x, t, space, cond)
        centred = space.project(x)[:, :3]
        return torch.cat([out[:, :3] + 0.1 * torch.cross(out[:, :3], centred, dim=1), out[:, 3:]], 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_check_detects_broken_symmetry(dtype):
    net = network("tensor_product", dtype)
    assert max(check_network(AddsRawPositions(net), dtype)) > 100 * tolerance(dtype)
    assert max(check_network(Chiral(net), dtype, reflect=False)) < tolerance(dtype)  # proper rotations: fine
    assert max(check_network(Chiral(net), dtype, reflect=True)) > 100 * tolerance(dtype)  # reflections expose it


def test_helper_checks_a_sampling_run():
    """A deterministic 4-step DDIM run is as equivariant as its network: the same helper applies."""
    torch.manual_seed(0)
    process = VPCosine()
    denoiser = ModelDenoiser(network("tensor_product"), process, "eps")
    times = torch.linspace(0.9, 0.0, 5, dtype=torch.float64)

    def sample(x, space):  # x holds the initial noise
        with torch.no_grad():
            for t, t_next in zip(times[:-1], times[1:]):
                tt = t.expand(space.num_samples)
                x0_hat = denoiser(x, tt, space, {})
                eps_hat = (x - process.alpha(t) * x0_hat) / process.sigma(t)
                x = space.project(process.alpha(t_next) * x0_hat + process.sigma(t_next) * eps_hat)
        return x

    x, space = molecules(seed=3)
    noise = space.randn_like(x, torch.Generator().manual_seed(3))
    elements = group_elements(space, seed=3, reflect=True)
    elements["shift"] = None  # the run starts from and stays in the zero-mean subspace
    errors = equivariance_error(sample, noise, space, **elements)
    assert max(errors) < 1e-10, errors


@pytest.mark.parametrize("name", ["egnn", "tensor_product"])
def test_outputs_have_zero_mean_positions_and_shape(name):
    net = network(name)
    x, space = molecules()
    out = net(x + 3.0, torch.rand(space.num_samples, dtype=torch.float64), space, {})
    assert out.shape == x.shape
    assert space.mean(out[:, :3]).abs().max() < 1e-12
    assert out[0, :3].abs().max() == 0  # the lone atom cannot move


@pytest.mark.parametrize("make", [EGNN, TensorProductNet], ids=["egnn", "tensor_product"])
def test_default_configs_run(make):
    net = make(NUM_FEATURES)
    x, space = molecules(dtype=torch.float32)
    with torch.no_grad():
        out = net(x, torch.rand(space.num_samples), space, {})
    assert out.shape == x.shape and out.isfinite().all()


@pytest.mark.parametrize("name", ["egnn", "tensor_product"])
def test_conditioning_and_dropout(name):
    torch.manual_seed(0)
    net = network(name, num_properties=2)
    x, space = molecules()
    t = torch.rand(space.num_samples, dtype=torch.float64)
    props = torch.randn(space.num_samples, 2, dtype=torch.float64)
    with torch.no_grad():
        absent = net(x, t, space, {})
        given = net(x, t, space, {PROPERTIES: props})
        drop = torch.tensor([True, False, True, False, False])
        placeholders = torch.where(drop[:, None], torch.full_like(props, float("nan")), props)
        dropped = net(x, t, space, {PROPERTIES: placeholders, DROP: drop})
    atom_dropped = drop[space.batch]
    assert torch.equal(dropped[atom_dropped], absent[atom_dropped])  # dropped = unconditional, NaN never read
    assert torch.equal(dropped[~atom_dropped], given[~atom_dropped])  # molecules do not talk to each other
    assert not torch.allclose(given[~atom_dropped], absent[~atom_dropped])
    with pytest.raises(ValueError, match=r"must be \[B, P\] = \(5, 2\), got \(5, 3\)"):
        net(x, t, space, {PROPERTIES: torch.zeros(5, 3, dtype=torch.float64)})
    with pytest.raises(ValueError, match="num_properties=0"):
        network(name)(x, t, space, {PROPERTIES: props})


def test_input_errors_name_the_fix():
    net = NETWORKS["egnn"]()
    x, space = molecules(dtype=torch.float32)
    t = torch.rand(space.num_samples)
    with pytest.raises(ValueError, match=r"\[N_atoms, 3 \+ 4\].*got shape \(21, 6\)"):
        net(x[:, :6], t, space, {})
    with pytest.raises(TypeError, match="need a GraphSpace"):
        net(x, t, DenseSpace(), {})
    with pytest.raises(ValueError, match=r"one time per molecule, shape \(5,\)"):
        net(x, t[:3], space, {})
    with pytest.raises(ValueError, match="max_num_neighbors needs a radius graph"):
        EGNN(4, max_num_neighbors=8)
    with pytest.raises(ValueError, match="radius must be a positive distance"):
        EGNN(4, radius=-1.0)


@pytest.mark.parametrize("irreps, message", [
    ("16x0e + 4x0o + 4x1o", "odd scalars"),
    ("4x1o + 4x1e", "no even scalars"),
    ("16 scalars", "not an irreps string"),
])
def test_tensor_product_checks_irreps(irreps, message):
    with pytest.raises(ValueError, match=message):
        TensorProductNet(4, hidden_irreps=irreps)


def test_tensor_product_checks_options():
    with pytest.raises(ValueError, match="lmax=0"):
        TensorProductNet(4, lmax=0)
    with pytest.raises(ValueError, match="exceeds max_radius"):
        TensorProductNet(4, radius=12.0, max_radius=10.0)
    net = TensorProductNet(4, hidden_irreps="4x1e + 8x0e + 2x1o + 8x0e", num_layers=1, radial_hidden=8)
    assert str(net.blocks[0].irreps_out) == "16x0e+2x1o+4x1e"  # sorted and merged
    assert str(net.irreps_out) == "4x0e+1x1o"  # the position output is a true (odd) vector


@pytest.mark.parametrize("name", ["egnn", "tensor_product"])
def test_training_reduces_the_loss(name):
    torch.manual_seed(0)
    process = VPCosine()
    model = ModelDenoiser(NETWORKS[name](), process, "eps")
    loss_fn = DiffusionLoss(process)
    x, space = molecules([5, 6, 7, 4, 6, 8, 5, 7], seed=5, dtype=torch.float32)
    t_eval = torch.linspace(0.05, 0.95, space.num_samples, dtype=torch.float64)

    def evaluate():
        with torch.no_grad():
            return sum(loss_fn(model, x, space=space, t=t_eval, generator=torch.Generator().manual_seed(k)).mean()
                       for k in range(4)) / 4

    before = evaluate()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(40):
        opt.zero_grad()
        loss_fn(model, x, space=space, generator=g).mean().backward()
        opt.step()
    after = evaluate()
    assert after < 0.8 * before, (before, after)


@pytest.mark.parametrize("name", ["egnn", "tensor_product"])
def test_shipped_helper_agrees(name):
    """``sciffusion.testing.assert_equivariant``, the helper plugin authors get, passes the networks."""
    from sciffusion.testing import assert_equivariant

    x, space = molecules()
    t = torch.rand(space.num_samples, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    net = network(name)
    assert_equivariant(lambda x_, space_: net(x_, t, space_, {}), x, space, tolerance=1e-10)
