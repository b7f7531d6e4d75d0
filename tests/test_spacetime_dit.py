"""The space-time DiT: shapes and a zero output at initialisation, the image DiT on every frame when
frames never meet, frames that meet only through temporal (or joint) attention, clips in a batch that
never meet, adaLN-Zero conditioning, given frames, learning, bf16 autocast, and its Hydra config."""
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import sciffusion.cli  # noqa: F401  (registers the schemas and the domain search path)
from sciffusion.testing import assert_adaln_zero_class_conditioning, trained_like
from sciffusion_domains.dense.networks.dit import DiT
from sciffusion_domains.dense.networks.spacetime_dit import ATTENTIONS, FRAME_MASK, FRAMES, SpaceTimeDiT
from sciffusion_domains.video import networks as video_networks

SMALL = {"patch_size": 2, "width": 32, "depth": 2, "num_heads": 4, "noise_features": 32}


def clips(b=2, c=1, t=4, h=8, w=6, seed=0):
    return torch.randn(b, c, t, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("attention", ATTENTIONS)
@pytest.mark.parametrize("frame_patch_size", [1, 2])
def test_output_shape_and_zero_at_initialisation(attention, frame_patch_size):
    torch.manual_seed(0)
    net = SpaceTimeDiT(2, **SMALL, frame_patch_size=frame_patch_size, attention=attention, num_classes=4)
    x, t, cond = clips(c=2), torch.rand(2), {"label": torch.tensor([1, 3])}
    out = net(x, t, None, cond)
    assert out.shape == x.shape and not out.any()  # adaLN-Zero blocks are identities, the output layer is zero
    assert trained_like(net)(x, t, None, cond).abs().mean() > 1e-2


def test_spatial_mode_is_the_image_dit_on_every_frame():
    """With one-frame tubelets and no temporal blocks, the network is the image DiT applied frame by
    frame: same weights (the tubelet embedding a Conv2d with a time axis of 1), same outputs."""
    torch.manual_seed(0)
    image = trained_like(DiT(2, patch_size=2, width=32, depth=2, num_heads=4, noise_features=32, num_classes=3))
    video = SpaceTimeDiT(2, **SMALL, attention="spatial", num_classes=3)
    state = image.state_dict()
    state["patch_embed.weight"] = state["patch_embed.weight"][:, :, None]
    video.load_state_dict(state)
    x, t, labels = clips(c=2), torch.rand(2), torch.tensor([0, 2])
    frames = x.transpose(1, 2).reshape(8, 2, 8, 6)
    expected = image(frames, t.repeat_interleave(4), None, {"label": labels.repeat_interleave(4)})
    expected = expected.reshape(2, 4, 2, 8, 6).transpose(1, 2)
    torch.testing.assert_close(video.eval()(x, t, None, {"label": labels}), expected, rtol=0, atol=1e-5)


def frame_change(net: SpaceTimeDiT, frame: int = 0) -> torch.Tensor:
    """[T] largest change of each output frame when input frame ``frame`` moves."""
    x, t = clips(), torch.full((2,), 0.5)
    moved = x.clone()
    moved[:, :, frame] += 1.0
    return (net(moved, t) - net(x, t)).abs().amax(dim=(0, 1, 3, 4))


@pytest.mark.parametrize("frame_patch_size", [1, 2])
def test_frames_meet_only_through_temporal_or_joint_attention(frame_patch_size):
    """Spatial mode: moving frame 0 changes only the frames of its tubelet. Factorised and joint: every frame."""
    change = frame_change(trained_like(SpaceTimeDiT(1, **SMALL, frame_patch_size=frame_patch_size,
                                                    attention="spatial")))
    assert (change[:frame_patch_size] > 1e-3).all()
    torch.testing.assert_close(change[frame_patch_size:], torch.zeros(4 - frame_patch_size), rtol=0, atol=1e-6)
    for attention in ("factorised", "joint"):
        net = trained_like(SpaceTimeDiT(1, **SMALL, frame_patch_size=frame_patch_size, attention=attention))
        assert (frame_change(net) > 1e-3).all(), attention


def test_a_temporal_block_connects_only_tokens_at_one_spatial_position():
    """With its spatial block silenced (adaLN-Zero: a block whose modulation is zero is the identity), a
    factorised stage links a patch only to the same patch in other frames: moving one patch of frame 0
    changes that patch in every frame and nothing else."""
    net = trained_like(SpaceTimeDiT(1, **{**SMALL, "depth": 1}))
    assert net.axes == ("space", "time")
    with torch.no_grad():
        net.blocks[0].modulation.weight.zero_()
        net.blocks[0].modulation.bias.zero_()
    x, t = clips(), torch.full((2,), 0.5)
    moved = x.clone()
    moved[:, :, 0, 2:4, 4:6] += 1.0  # spatial patch (1, 2) of frame 0
    change = (net(moved, t) - net(x, t)).abs().amax(dim=(0, 1))  # [T, H, W]
    inside = torch.zeros(8, 6, dtype=torch.bool)
    inside[2:4, 4:6] = True
    assert (change[:, inside].amax(dim=1) > 1e-3).all()
    torch.testing.assert_close(change[:, ~inside], torch.zeros(4, 44), rtol=0, atol=1e-6)


@pytest.mark.parametrize("attention", ["factorised", "joint"])
def test_frame_order_matters_when_frames_meet(attention):
    """The tubelet-index code makes attention see time order: reversing time is not reversing outputs."""
    net, x, t = trained_like(SpaceTimeDiT(1, **SMALL, attention=attention)), clips(), torch.full((2,), 0.5)
    assert not torch.allclose(net(x.flip(2), t).flip(2), net(x, t), atol=1e-4)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_permuting_clips_in_a_batch_permutes_outputs(attention):
    net = trained_like(SpaceTimeDiT(1, **SMALL, attention=attention, num_classes=3, vector_dim=2))
    x, t, labels, vector = clips(b=4), torch.rand(4), torch.tensor([0, 1, 2, 1]), torch.randn(4, 2)
    perm = torch.tensor([2, 0, 3, 1])
    out = net(x, t, None, {"label": labels, "vector": vector})
    permuted = net(x[perm], t[perm], None, {"label": labels[perm], "vector": vector[perm]})
    torch.testing.assert_close(permuted, out[perm], rtol=0, atol=1e-5)


def test_the_class_acts_from_the_second_training_step():
    """adaLN-Zero: after one step only the output projection has moved, so the output is still blind to the
    class; the second step opens the final modulation and the class changes the output."""
    torch.manual_seed(0)
    net = SpaceTimeDiT(1, **SMALL, num_classes=10)
    assert_adaln_zero_class_conditioning(net, clips(b=4), torch.rand(4), torch.tensor([0, 1, 2, 3]), 10)


def test_physical_parameters_condition_the_output():
    net = trained_like(SpaceTimeDiT(1, **SMALL, vector_dim=3))
    x, t = clips(), torch.rand(2)
    a = net(x, t, None, {"vector": torch.tensor([[0.0, 0.2, 0.3]] * 2)})
    assert (a - net(x, t, None, {"vector": torch.tensor([[4.0, 0.2, 0.3]] * 2)})).abs().amax() > 1e-3


def test_given_frames_condition_the_output_and_can_be_dropped():
    assert (FRAMES, FRAME_MASK) == (video_networks.FRAMES, video_networks.FRAME_MASK)  # the video domain's keys
    net = trained_like(SpaceTimeDiT(1, **SMALL, context=True))
    x, t = clips(), torch.full((2,), 0.5)
    mask = torch.tensor([[True, True, False, False]] * 2)
    given = {FRAMES: clips(seed=1), FRAME_MASK: mask}
    assert not torch.allclose(net(x, t, None, given), net(x, t, None, {}), atol=1e-4)
    dropped = {**given, "drop": torch.tensor([True, True])}
    torch.testing.assert_close(net(x, t, None, dropped), net(x, t, None, {}), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"cond\['frames'\] must have shape \(2, 1, 4, 8, 6\)"):
        net(x, t, None, {FRAMES: clips(t=2), FRAME_MASK: mask})
    with pytest.raises(ValueError, match="context=True"):
        SpaceTimeDiT(1, **SMALL)(x, t, None, given)


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_a_few_steps_on_a_fixed_batch_reduce_the_loss(attention):
    """It can learn: 30 Adam steps of x0-prediction on one noisy batch more than halve the squared error."""
    torch.manual_seed(0)
    net = SpaceTimeDiT(1, **SMALL, frame_patch_size=2, attention=attention)
    x0 = clips(b=4)
    t = torch.full((4,), 0.3)
    x_t = x0 + 0.3 * clips(b=4, seed=1)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        optimiser.zero_grad()
        loss = ((net(x_t, t) - x0) ** 2).mean()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


def test_bf16_autocast_on_cpu_matches_float32():
    net = trained_like(SpaceTimeDiT(1, **SMALL, num_classes=3))
    x, t, cond = clips(), torch.rand(2), {"label": torch.tensor([0, 2])}
    reference = net(x, t, None, cond)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = net(x, t, None, cond)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    assert (out.float() - reference).norm() / reference.norm() < 0.05


def test_bad_options_and_inputs_are_named():
    with pytest.raises(ValueError, match="unknown attention 'divided'"):
        SpaceTimeDiT(1, **SMALL, attention="divided")
    with pytest.raises(ValueError, match="width 30 must be divisible"):
        SpaceTimeDiT(1, **{**SMALL, "width": 30})
    net = SpaceTimeDiT(1, **SMALL, frame_patch_size=3)
    with pytest.raises(ValueError, match="4 frames are not divisible by frame_patch_size=3"):
        net(clips(), torch.rand(2))
    with pytest.raises(ValueError, match="8x7 are not divisible by patch_size=2"):
        SpaceTimeDiT(1, **SMALL)(clips(w=7), torch.rand(2))
    with pytest.raises(ValueError, match=r"\[B, 1, T, H, W\], got \(2, 1, 8, 6\)"):
        SpaceTimeDiT(1, **SMALL)(torch.zeros(2, 1, 8, 6), torch.rand(2))


def test_the_network_config_composes_over_a_video_domain_and_builds():
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("train", overrides=["domain=moving_digits", "+network=spacetime_dit"])
    network = OmegaConf.to_container(cfg.network, resolve=True)
    assert network["kind"] == "dit" and "unet" in network  # the domain's UNet options stay beside it
    net = SpaceTimeDiT(1, **network["dit"], num_classes=100, context=True)
    x = clips(b=1, t=2, h=8, w=8)
    assert net(x, torch.rand(1), None, {"label": torch.tensor([37])}).shape == x.shape
