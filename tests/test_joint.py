"""Joint (continuous + categorical) states: spaces, the joint sampler on a closed-form mixed target,
guidance and inpainting per part, the joint loss, and self-conditioning."""
import math

import pytest
import torch

from sciffusion.categorical import CategoricalProcess
from sciffusion.guidance import ClassifierFreeGuidance
from sciffusion.joint import SELF_COND, JointLoss, JointModel, JointProcess, prior_sample_joint
from sciffusion.losses import DROP
from sciffusion.processes import LinearInterpolant, VPCosine
from sciffusion.samplers import sample
from sciffusion.space import DenseSpace, GraphSpace
from sciffusion.state import EdgeSpace, PartsSpace
from sciffusion.testing_joint import LabelledGaussians
from sciffusion.timesteps import make_grid

TARGET = LabelledGaussians([0.5, 0.3, 0.2], [[-3.0, 0.0], [2.0, 2.0], [2.0, -2.0]], std=0.4)


def exact_joint_denoiser(y_process, c_process):
    def denoiser(x, t, space, cond):
        y0, post = TARGET.denoiser(y_process, c_process, x["y"], x["c"], t)
        return {"y": y0.to(x["y"].dtype), "c": post}
    return denoiser


def draw(y_process, c_process, sampler, steps, *, categorical="posterior", n=4000, seed=0, **options):
    process = JointProcess({"y": y_process, "c": c_process})
    space = PartsSpace({"y": DenseSpace(), "c": DenseSpace()})
    g = torch.Generator().manual_seed(seed)
    like = {"y": torch.zeros(n, 2, dtype=torch.float64), "c": torch.zeros(n, dtype=torch.long)}
    x = prior_sample_joint(process, like, space, generator=g)
    ts = make_grid("uniform_t", process.grid_process, steps)
    return sample(sampler, exact_joint_denoiser(y_process, c_process), x, ts, process=process, space=space,
                  categorical=categorical, generator=g, **options)


def check_mixed(out, label_tol=0.03, mean_tol=0.12):
    freq = torch.bincount(out["c"], minlength=3).double() / out["c"].numel()
    torch.testing.assert_close(freq, TARGET.weights, atol=label_tol, rtol=0)
    for k in range(3):  # each label's points sit at that label's mean: labels and points were drawn jointly
        points = out["y"][out["c"] == k]
        assert (points.mean(0) - TARGET.means[k]).abs().max() < mean_tol, (k, points.mean(0))
        assert abs(points.std(0).mean() - TARGET.std) < 0.1


@pytest.mark.parametrize("sampler,categorical,prior", [
    ("ddpm", "posterior", "marginal"), ("ddim", "posterior", "masked"), ("heun", "euler", "uniform"),
    ("dpmpp_2m", "posterior", "uniform"), ("unipc", "euler", "masked"), ("euler_maruyama", "posterior", "marginal"),
])
def test_joint_sampler_draws_the_mixed_target(sampler, categorical, prior):
    c_process = CategoricalProcess(3, prior, schedule="cosine", marginals=[0.5, 0.3, 0.2] if prior == "marginal" else None)
    check_mixed(draw(VPCosine(), c_process, sampler, 100, categorical=categorical))


def test_joint_sampler_on_flow_matching():
    """Linear interpolant for the points, discrete flow (linear kappa, Euler with remasking) for the label."""
    check_mixed(draw(LinearInterpolant(), CategoricalProcess(3, "masked", schedule="linear"), "euler", 200,
                     categorical="euler", eta=0.5))


def test_joint_error_falls_with_steps():
    """Label frequency error and the rate of labels placed in the wrong cluster fall with steps."""
    def errors(steps):
        out = draw(VPCosine(), CategoricalProcess(3, "uniform"), "ddpm", steps, n=20000, seed=1)
        nearest = torch.cdist(out["y"], TARGET.means).argmin(-1)
        return float((nearest != out["c"]).double().mean())
    coarse, fine = errors(4), errors(64)
    assert fine < 0.01 and coarse > 2 * fine, (coarse, fine)


def test_purely_categorical_state_and_callback():
    process = JointProcess({"c": CategoricalProcess(3, "masked", schedule="linear")})
    space = PartsSpace({"c": DenseSpace()})
    steps = []

    def denoiser(x, t, space, cond):
        return {"c": TARGET.weights.expand(x["c"].shape[0], 3)}
    g = torch.Generator().manual_seed(0)
    x = prior_sample_joint(process, {"c": torch.zeros(20000, dtype=torch.long)}, space, generator=g)
    assert (x["c"] == 3).all()
    out = sample("ddpm", denoiser, x, torch.linspace(1, 0, 11, dtype=torch.float64), process=process, space=space,
                 generator=g, callback=steps.append)
    assert len(steps) == 10 and steps[-1]["t_next"] == 0.0
    torch.testing.assert_close(torch.bincount(out["c"], minlength=3).double() / 20000, TARGET.weights, atol=0.015, rtol=0)


def test_self_conditioning_passes_the_previous_estimate():
    seen = []

    def denoiser(x, t, space, cond):
        seen.append(SELF_COND in cond)
        return {"y": torch.zeros_like(x["y"]), "c": torch.full((x["c"].shape[0], 3), 1 / 3)}
    process = JointProcess({"y": VPCosine(), "c": CategoricalProcess(3, "uniform")})
    space = PartsSpace({"y": DenseSpace(), "c": DenseSpace()})
    x = prior_sample_joint(process, {"y": torch.zeros(4, 2), "c": torch.zeros(4, dtype=torch.long)}, space)
    sample("ddim", denoiser, x, make_grid("uniform_t", VPCosine(), 5), process=process, space=space)
    assert seen == [False] + [True] * 4


def test_classifier_free_guidance_mixes_each_part_its_own_way():
    """Continuous parts extrapolate linearly; categorical probabilities log-linearly (then renormalise)."""
    p_cond, p_uncond = torch.tensor([[0.6, 0.3, 0.1]]), torch.tensor([[0.2, 0.4, 0.4]])

    def denoiser(x, t, space, cond):
        dropped = bool(cond.get(DROP, torch.zeros(1, dtype=torch.bool))[0])
        return {"y": torch.full_like(x["y"], 0.0 if dropped else 1.0), "c": p_uncond if dropped else p_cond}
    space = PartsSpace({"y": DenseSpace(), "c": DenseSpace()})
    x = {"y": torch.zeros(1, 2), "c": torch.zeros(1, dtype=torch.long)}
    out = ClassifierFreeGuidance(denoiser, 2.0)(x, torch.full((1,), 0.5), space, {})
    torch.testing.assert_close(out["y"], torch.full((1, 2), 2.0))
    want = p_uncond * (p_cond / p_uncond) ** 2
    torch.testing.assert_close(out["c"], want / want.sum(-1, keepdim=True))


def test_joint_inpainting_keeps_known_parts():
    """Fixing every sample's label to 2 gives label 2 exactly and, under a masked process (where a known,
    unmasked label is clean at every t), points drawn from cluster 2: exact conditioning."""
    from sciffusion.guidance import Inpainting

    y_process, c_process = VPCosine(), CategoricalProcess(3, "masked")
    n = 2000
    known = {"y": torch.zeros(n, 2, dtype=torch.float64), "c": torch.full((n,), 2)}
    mask = {"y": torch.zeros(n, 2, dtype=torch.bool), "c": torch.ones(n, dtype=torch.bool)}
    denoiser = Inpainting(exact_joint_denoiser(y_process, c_process), known, mask)
    process = JointProcess({"y": y_process, "c": c_process})
    space = PartsSpace({"y": DenseSpace(), "c": DenseSpace()})
    g = torch.Generator().manual_seed(0)
    x = prior_sample_joint(process, {"y": known["y"], "c": known["c"]}, space, generator=g)
    out = sample("ddpm", denoiser, x, make_grid("uniform_t", y_process, 100), process=process, space=space, generator=g)
    assert (out["c"] == 2).all()
    in_cluster = float((torch.cdist(out["y"], TARGET.means).argmin(-1) == 2).double().mean())
    assert in_cluster > 0.99, in_cluster  # the prior weight of cluster 2 is 0.2
    assert (out["y"].mean(0) - TARGET.means[2]).abs().max() < 0.05


def test_joint_loss_parts_weights_and_shapes():
    process = JointProcess({"pos": VPCosine(), "atoms": CategoricalProcess(4, "marginal"),
                            "bonds": CategoricalProcess(3, "masked")})
    batch = torch.tensor([0, 0, 0, 1, 1])
    space = PartsSpace({"pos": GraphSpace(batch, 2, zero_mean=(0, 1, 2)), "atoms": GraphSpace(batch, 2),
                        "bonds": EdgeSpace.fully_connected(batch, 2)})
    assert space["bonds"].index.tolist() == [[0, 0, 1, 3], [1, 2, 2, 4]]
    x0 = {"pos": torch.randn(5, 3), "atoms": torch.randint(0, 4, (5,)), "bonds": torch.randint(0, 3, (4,))}
    calls = []

    def net(x, t, space, cond):  # exact positions, uninformative logits
        calls.append(SELF_COND in cond)
        return {"pos": space["pos"].project(x0["pos"]), "atoms": torch.zeros(5, 4), "bonds": torch.zeros(4, 3)}
    model = JointModel(net, process)
    loss = JointLoss(process, weights={"pos": 3.0, "atoms": 0.4, "bonds": 2.0}, self_condition=1.0)
    value = loss(model, x0, space=space, generator=torch.Generator().manual_seed(0))
    assert calls == [False, True]
    # uniform logits cost log K per entry: 0.4 log 4 + 2 log 3 per sample; exact positions cost nothing
    torch.testing.assert_close(value, torch.full((2,), 0.4 * math.log(4) + 2 * math.log(3)))
    with pytest.raises(ValueError, match="shape"):
        JointModel(lambda *a: {"pos": torch.zeros(5, 3), "atoms": torch.zeros(5, 3), "bonds": torch.zeros(4, 3)},
                   process)(x0, torch.zeros(2), space)
    with pytest.raises(ValueError, match="weights name parts"):
        JointLoss(process, weights={"charge": 1.0})
    with pytest.raises(ValueError, match="self_condition"):
        JointLoss(process, self_condition=1.5)
    with pytest.raises(ValueError, match="cond_dropout"):
        JointLoss(process, cond_dropout=1.0)


def test_edge_space_reductions_and_empty_samples():
    batch = torch.tensor([0, 1, 1, 1])  # a one-atom molecule has no edges
    edges = EdgeSpace.fully_connected(batch, 2)
    assert edges.counts.tolist() == [0, 3]
    values = torch.ones(3, 4)
    torch.testing.assert_close(edges.sum(values), torch.tensor([0.0, 12.0]))
    torch.testing.assert_close(edges.average(values), torch.tensor([0.0, 1.0]))
    index, which = edges.directed()
    assert index.shape == (2, 6) and which.tolist() == [0, 1, 2, 0, 1, 2]
    with pytest.raises(ValueError, match="once"):
        EdgeSpace(torch.tensor([[1], [0]]), torch.tensor([0]), 1, 2)


def test_toy_joint_trains_samples_and_scores(tmp_path):
    """The mixed toy example end to end through the apps' code path: train, sample, decode, metrics."""
    from sciffusion.demo import run_toy

    metrics = run_toy(tmp_path, 150, experiment="toy_joint", sampler="ddpm", sampling_steps=50, grid="uniform_t")
    assert (tmp_path / "samples.csv").read_text().splitlines()[0] == "x,y,label"
    assert metrics["label_consistency"] > 0.8 and metrics["label_weight_gap"] < 0.15, metrics


def test_self_conditioning_for_one_tensor_states():
    """DiffusionLoss(self_condition=1) feeds the model its own estimate; SelfConditioning passes the
    previous step's estimate along in a core sampler and starts afresh for a new run."""
    from sciffusion.guidance import SelfConditioning
    from sciffusion.losses import DiffusionLoss
    from sciffusion.parameterization import ModelDenoiser

    seen = []

    def net(x, t, space, cond):
        seen.append(SELF_COND in cond)
        return torch.zeros_like(x) + (cond[SELF_COND].mean() if SELF_COND in cond else 0.0)
    model = ModelDenoiser(net, VPCosine(), "x0")
    DiffusionLoss(VPCosine(), self_condition=1.0)(model, torch.randn(4, 2), generator=torch.Generator().manual_seed(0),
                                                  space=DenseSpace())
    assert seen == [False, True]
    seen.clear()
    denoiser = SelfConditioning(model)
    grid = make_grid("uniform_t", VPCosine(), 4)
    for _ in range(2):
        sample("ddim", denoiser, torch.randn(3, 2), grid, process=VPCosine(), space=DenseSpace())
    assert seen == [False, True, True, True] * 2
