"""The shipped test helpers: ``assert_equivariant`` accepts equivariant point-cloud functions and
names the symmetry that others break; ``assert_domain_contract`` passes the toy domain (plain,
conditional, joint), the external example plugin, and names what a broken domain gets wrong."""
import sys
from pathlib import Path

import pytest
import torch

from sciffusion.space import DenseSpace, GraphSpace
from sciffusion.state import EdgeSpace, PartsSpace
from sciffusion.testing import assert_domain_contract, assert_equivariant
from sciffusion_domains.toy.domain import ToyDomain

SIZES = [1, 3, 5]


def cloud(sizes=SIZES, features=2):
    g = torch.Generator().manual_seed(0)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    space = GraphSpace(batch, len(sizes), zero_mean=(0, 1, 2))
    return space.project(torch.randn(batch.numel(), 3 + features, generator=g, dtype=torch.float64)), space


def message_passing(x, space):
    """Centred positions pulled along pairwise differences, features plus distances: E(3) x S_n equivariant."""
    pos, h = x[:, :3], x[:, 3:]
    same = space.batch[:, None] == space.batch[None, :]
    diff = pos[:, None] - pos[None, :]
    dist = diff.norm(dim=-1) * same
    pos_out = pos + (diff * (torch.tanh(dist) * same)[..., None]).sum(1)
    pos_out = pos_out - space.mean(pos_out)[space.batch]
    return torch.cat([pos_out, h + dist.sum(1, keepdim=True)], 1)


def test_equivariant_function_passes_every_check():
    x, space = cloud()
    errors = assert_equivariant(message_passing, x, space)
    assert set(errors) == {"rotation", "reflection", "translation", "permutation"}
    assert max(errors.values()) < 1e-12


def test_moved_points_need_translate_outputs():
    x, space = cloud()
    identity = lambda x, space: x.clone()
    assert_equivariant(identity, x, space, translate_outputs=True)
    with pytest.raises(AssertionError, match="translation: positions"):
        assert_equivariant(identity, x, space)


@pytest.mark.parametrize("broken, fails", [
    (lambda x, s: torch.cat([x[:, :3], x[:, 3:] + x[:, :1]], 1), "rotation: other columns"),
    (lambda x, s: torch.cat([x[:, :3] + torch.linalg.cross(x[:, :3], x[:, :3].roll(1, 0)), x[:, 3:]], 1),
     "permutation"),
    (lambda x, s: x.roll(1, 0), "permutation"),
])
def test_broken_functions_are_named(broken, fails):
    x, space = cloud()
    with pytest.raises(AssertionError, match=fails):
        assert_equivariant(broken, x, space)


def test_pseudovectors_fail_only_reflections():
    x, space = cloud([3])
    axis = lambda p: torch.linalg.cross(p[0] - p[1], p[0] - p[2])  # a pseudovector of the triangle
    chiral = lambda x, s: torch.cat([x[:, :3] + axis(x[:, :3]), x[:, 3:]], 1)
    assert_equivariant(chiral, x, space, checks=["rotation", "permutation"], translate_outputs=True)
    with pytest.raises(AssertionError, match="reflection: positions"):
        assert_equivariant(chiral, x, space, checks=["reflection"], translate_outputs=True)


def test_dict_states_with_edges():
    x, space = cloud(features=0)
    edges = EdgeSpace.fully_connected(space.batch, space.num_samples)
    parts = PartsSpace({"pos": GraphSpace(space.batch, space.num_samples, (0, 1, 2)),
                        "atoms": GraphSpace(space.batch, space.num_samples), "bonds": edges})
    state = {"pos": x, "atoms": torch.arange(x.shape[0]) % 3, "bonds": torch.zeros(edges.batch.numel(), 1)}

    def fn(s, sp):
        i, j = sp["bonds"].index
        length = (s["pos"][i] - s["pos"][j]).norm(dim=1, keepdim=True)
        return {"pos": sp["pos"].project(s["pos"]) * 2, "atoms": s["atoms"], "bonds": length + s["atoms"][i, None] + s["atoms"][j, None]}

    assert_equivariant(fn, state, parts)
    leak = lambda s, sp: {**fn(s, sp), "bonds": fn(s, sp)["bonds"] + s["pos"][sp["bonds"].index[0], :1]}
    with pytest.raises(AssertionError, match="rotation: bonds"):
        assert_equivariant(leak, state, parts)
    with pytest.raises(ValueError, match="positions='coords'"):
        assert_equivariant(fn, state, parts, positions="coords")
    with pytest.raises(TypeError, match="GraphSpace"):
        assert_equivariant(fn, torch.zeros(2, 3), DenseSpace())


@pytest.mark.parametrize("options", [{}, {"conditional": True}, {"joint": True}])
def test_toy_domain_keeps_the_contract(options, tmp_path):
    domain = ToyDomain(train_size=64, test_size=16, **options)
    assert_domain_contract(domain, tmp_path, fresh=lambda: ToyDomain(train_size=64, test_size=16, **options))
    assert {p.name for p in (tmp_path / "saved").iterdir()} == {"samples.npy", "samples.csv"}


def test_example_plugin_keeps_the_contract(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugin_pkg"))
    from sciffusion_ring import RingDomain

    assert_domain_contract(RingDomain(size=16), tmp_path)
    sys.modules.pop("sciffusion_ring", None)


class Broken(ToyDomain):
    def __init__(self, fault, **options):
        super().__init__(train_size=64, test_size=16, **options)
        self.fault = fault

    def template(self, num_samples, *, generator=None, cond=None):
        x, space = super().template(num_samples, generator=generator, cond=cond)
        return (torch.zeros(num_samples, 3), space) if self.fault == "template" else (x, space)

    def decode(self, x, space, cond=None):
        return super().decode(x, space, cond)[: -1 if self.fault == "decode" else None]

    def state_dict(self):
        return {"fn": print} if self.fault == "state" else {}

    def load_state_dict(self, state):
        pass

    def condition(self, num_samples, *, generator=None, **request):
        return {} if self.fault == "condition" else super().condition(num_samples, generator=generator, **request)


@pytest.mark.parametrize("fault, message", [("template", "per-row shape"), ("decode", "decode returned 3 objects"),
                                            ("state", "weights_only"), ("condition", "accepted silently")])
def test_broken_domains_are_named(fault, message, tmp_path):
    with pytest.raises(AssertionError, match=message):
        assert_domain_contract(Broken(fault), tmp_path, figure=False)
