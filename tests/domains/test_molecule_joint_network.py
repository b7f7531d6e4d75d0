"""JointMoleculeNet: shapes, E(3) and permutation symmetry, conditioning, self-conditioning, training.

Symmetry checks run in float64, where an exact symmetry holds to rounding (~1e-12).
"""
import pytest
import torch

from sciffusion.categorical import CategoricalProcess
from sciffusion.joint import SELF_COND, JointLoss, JointModel, JointProcess
from sciffusion.losses import DROP
from sciffusion.processes import VPCosine
from sciffusion.space import GraphSpace
from sciffusion.state import EdgeSpace, PartsSpace
from sciffusion_domains.molecules.networks.joint import JointMoleculeNet

SIZES = [1, 2, 5, 9, 4]  # a lone atom (no pairs), a pair and QM9-like molecules
KA, KC, KB = 5, 3, 5
TOL = 1e-9


def make_space(batch, num):
    node = GraphSpace(batch, num, zero_mean=(0, 1, 2))
    return PartsSpace({"pos": node, "atoms": GraphSpace(batch, num), "charges": GraphSpace(batch, num),
                       "bonds": EdgeSpace.fully_connected(batch, num)})


def molecules(sizes=SIZES, seed=0, *, masked=False):
    """A batch state, its space, times, and a full cond (property and self-conditioning estimate)."""
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    space = make_space(batch, len(sizes))
    n, e = batch.numel(), space["bonds"].index.shape[1]
    x = {"pos": space["pos"].project(1.5 * torch.randn(n, 3, generator=g, dtype=torch.float64)),
         "atoms": torch.randint(KA + masked, (n,), generator=g), "charges": torch.randint(KC, (n,), generator=g),
         "bonds": torch.randint(KB, (e,), generator=g)}
    sc = {"pos": space["pos"].project(torch.randn(n, 3, generator=g, dtype=torch.float64)),
          "atoms": torch.softmax(torch.randn(n, KA, generator=g, dtype=torch.float64), 1),
          "charges": torch.softmax(torch.randn(n, KC, generator=g, dtype=torch.float64), 1),
          "bonds": torch.softmax(torch.randn(e, KB, generator=g, dtype=torch.float64), 1)}
    cond = {"property": torch.randn(len(sizes), 2, generator=g, dtype=torch.float64), SELF_COND: sc}
    t = torch.rand(len(sizes), generator=g, dtype=torch.float64)
    return x, space, t, cond


def network(seed=0, **kw):
    torch.manual_seed(seed)
    options = dict(num_atom_types=KA, num_charges=KC, num_bond_types=KB, hidden=32, edge_hidden=16, layers=3,
                   cond_dim=2)
    net = JointMoleculeNet(**{**options, **kw}).double()
    if net.embed_cond is not None:  # starts at zero (tested below); trained weights are not
        torch.nn.init.normal_(net.embed_cond.weight)
    return net


def isometry(seed, reflect):
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    if (torch.det(q) < 0) != reflect:
        q = q @ torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))
    return q


def test_shapes_and_centring():
    x, space, t, cond = molecules()
    out = network()(x, t, space, cond)
    n, e = x["pos"].shape[0], x["bonds"].shape[0]
    assert {k: tuple(v.shape) for k, v in out.items()} == {"pos": (n, 3), "atoms": (n, KA), "charges": (n, KC),
                                                          "bonds": (e, KB)}
    assert all(torch.isfinite(v).all() for v in out.values())
    assert space["pos"].mean(out["pos"]).abs().max() < TOL
    # a batch of lone atoms has no pairs at all; masked inputs have one more state
    x1, space1, t1, _ = molecules([1, 1], masked=True)
    out1 = network(atom_states=KA + 1, self_condition=False, cond_dim=0)(x1, t1, space1, {})
    assert out1["bonds"].shape == (0, KB) and out1["atoms"].shape == (2, KA)
    assert out1["pos"].abs().max() < TOL


@pytest.mark.parametrize("reflect", [False, True])
def test_e3_equivariance(reflect):
    x, space, t, cond = molecules()
    net = network()
    q = isometry(1, reflect)
    shift = torch.randn(len(SIZES), 3, dtype=torch.float64)[space["pos"].batch]
    x2 = {**x, "pos": x["pos"] @ q.T + shift}
    cond2 = {**cond, SELF_COND: {**cond[SELF_COND], "pos": cond[SELF_COND]["pos"] @ q.T + 3.0}}
    out, out2 = net(x, t, space, cond), net(x2, t, space, cond2)
    assert (out2["pos"] - (out["pos"] @ q.T + shift)).abs().max() < TOL
    for name in ("atoms", "charges", "bonds"):
        assert (out2[name] - out[name]).abs().max() < TOL
    assert (out["pos"] - x["pos"]).abs().max() > 1e-6  # the positions did move


def test_permutation_equivariance():
    x, space, t, cond = molecules()
    batch = space["pos"].batch
    # a random permutation of the atoms within each molecule (rows of a molecule stay contiguous)
    perm = torch.cat([torch.randperm(n) + start for n, start in
                      zip(SIZES, torch.tensor([0] + SIZES[:-1]).cumsum(0).tolist())])
    space2 = make_space(batch, len(SIZES))
    old = {tuple(p): k for k, p in enumerate(space["bonds"].index.T.tolist())}
    # new pair (a, b) is old pair (perm[a], perm[b]), stored sorted
    rows = torch.tensor([old[tuple(sorted((perm[a].item(), perm[b].item())))]
                         for a, b in space2["bonds"].index.T.tolist()], dtype=torch.long)
    nodes = lambda s: {k: v[perm] if k != "bonds" else v[rows] for k, v in s.items()}
    x2, cond2 = nodes(x), {**cond, SELF_COND: nodes(cond[SELF_COND])}
    net = network()
    out, out2 = net(x, t, space, cond), net(x2, t, space2, cond2)
    for name in ("pos", "atoms", "charges"):
        assert (out2[name] - out[name][perm]).abs().max() < TOL
    assert (out2["bonds"] - out["bonds"][rows]).abs().max() < TOL


def test_bonds_do_not_depend_on_storage_order():
    x, space, t, cond = molecules()
    e = x["bonds"].shape[0]
    rows = torch.randperm(e, generator=torch.Generator().manual_seed(3))
    edges = space["bonds"]
    space2 = PartsSpace({**space.spaces, "bonds": EdgeSpace(edges.index[:, rows], edges.batch[rows],
                                                            edges.num_samples, edges.num_nodes)})
    sc = cond[SELF_COND]
    x2 = {**x, "bonds": x["bonds"][rows]}
    cond2 = {**cond, SELF_COND: {**sc, "bonds": sc["bonds"][rows]}}
    net = network()
    out, out2 = net(x, t, space, cond), net(x2, t, space2, cond2)
    assert (out2["bonds"] - out["bonds"][rows]).abs().max() < TOL
    for name in ("pos", "atoms", "charges"):
        assert (out2[name] - out[name]).abs().max() < TOL


def test_self_conditioning_changes_the_output():
    x, space, t, cond = molecules()
    net = network()
    with_sc, without = net(x, t, space, cond), net(x, t, space, {"property": cond["property"]})
    for name in with_sc:
        assert (with_sc[name] - without[name]).abs().max() > 1e-6, name
    only_pos = net(x, t, space, {"property": cond["property"], SELF_COND: {"pos": cond[SELF_COND]["pos"]}})
    assert (only_pos["atoms"] - without["atoms"]).abs().max() > 1e-6
    off = network(self_condition=False)
    assert all((a - b).abs().max() == 0 for a, b in zip(off(x, t, space, cond).values(),
                                                         off(x, t, space, {"property": cond["property"]}).values()))


def test_a_new_conditional_network_starts_as_its_unconditional_self():
    """The property embedding starts at zero (fine-tuning an unconditional model keeps its quality at
    step 0), yet gets gradients."""
    x, space, t, cond = molecules()
    torch.manual_seed(0)
    net = JointMoleculeNet(num_atom_types=KA, num_charges=KC, num_bond_types=KB, hidden=32, edge_hidden=16,
                           layers=3, cond_dim=2).double()
    with_property, without = net(x, t, space, cond), net(x, t, space, {SELF_COND: cond[SELF_COND]})
    assert all(torch.equal(with_property[k], without[k]) for k in with_property)
    sum(v.square().sum() for v in with_property.values()).backward()
    assert net.embed_cond.weight.grad.abs().sum() > 0


def test_drop_removes_the_property():
    x, space, t, cond = molecules()
    net = network()
    drop = torch.tensor([False, True, False, True, True])
    other = {**cond, "property": torch.full_like(cond["property"], float("nan"))}
    a = net(x, t, space, {**cond, DROP: drop})
    b = net(x, t, space, {**other, DROP: drop | torch.tensor([True, False, True, False, False])})
    absent = net(x, t, space, {SELF_COND: cond[SELF_COND], "unknown": 1})
    kept = net(x, t, space, cond)
    node, edge = drop[space["pos"].batch], drop[space["bonds"].batch]
    for name, rows in (("pos", node), ("atoms", node), ("charges", node), ("bonds", edge)):
        assert (a[name][rows] - b[name][rows]).abs().max() == 0
        assert (a[name][rows] - absent[name][rows]).abs().max() == 0
        assert (a[name][~rows] - kept[name][~rows]).abs().max() == 0
        assert (a[name][rows] - kept[name][rows]).abs().max() > 1e-6


def test_gradients_reach_every_parameter():
    x, space, t, cond = molecules()
    x = {**x, "pos": x["pos"].requires_grad_()}
    net = network()
    out = net(x, t, space, cond)
    sum(v.square().sum() for v in out.values()).backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert x["pos"].grad.abs().sum() > 0


def test_trains_with_joint_loss_and_self_conditioning():
    torch.manual_seed(0)
    sizes = SIZES[1:]  # the core's position loss is 0/0 for a lone atom (no degrees of freedom)
    x, space, _, cond = molecules(sizes)
    x = {**x, "pos": x["pos"].float()}
    process = JointProcess({"pos": VPCosine(), "atoms": CategoricalProcess(KA, "masked"),
                            "charges": CategoricalProcess(KC, "uniform"), "bonds": CategoricalProcess(KB)})
    net = JointMoleculeNet(num_atom_types=KA, num_charges=KC, atom_states=KA + 1, hidden=32, edge_hidden=8,
                           layers=2, cond_dim=2)
    model = JointModel(net, process)
    loss = JointLoss(process, weights={"pos": 3, "atoms": 0.4, "charges": 1, "bonds": 2}, self_condition=1.0,
                     cond_dropout=0.2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    t = torch.full((len(sizes),), 0.3)
    losses = []
    for _ in range(30):
        value = loss(model, x, space=space, cond={"property": cond["property"].float()}, t=t, generator=g).mean()
        opt.zero_grad()
        value.backward()
        opt.step()
        losses.append(value.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) < sum(losses[:5])


def test_shipped_helper_agrees():
    """``sciffusion.testing.assert_equivariant`` on a dict state with an edge part: positions rotate and
    move with the input, atom, charge and bond logits are invariant, and atoms permuted within molecules
    carry their bonds."""
    from sciffusion.testing import assert_equivariant

    x, space, t, cond = molecules()
    net = network(self_condition=False)
    errors = assert_equivariant(lambda x_, space_: net(x_, t, space_, {"property": cond["property"]}), x, space,
                                translate_outputs=True, tolerance=TOL)
    assert set(errors) == {"rotation", "reflection", "translation", "permutation"}
