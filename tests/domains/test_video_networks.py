"""The space-time UNet: shapes, a zero output at initialisation, frames that meet only through the
temporal attention, clips in a batch that never meet, and conditioning frames."""
import pytest
import torch

from sciffusion.testing import trained_like
from sciffusion_domains.video.networks import FRAME_MASK, FRAMES, SpaceTimeUNet

SMALL = dict(channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_levels=(1,), head_channels=8)


def clips(b=2, c=1, t=5, h=12, w=10, seed=0):
    return torch.randn(b, c, t, h, w, generator=torch.Generator().manual_seed(seed))


def test_output_shape_any_size_and_zero_at_initialisation():
    net = SpaceTimeUNet(2, **SMALL, num_classes=4)
    x = clips(c=2, h=11, w=9)  # sizes the downsampling does not divide: padded and cropped
    out = net(x, torch.rand(2), None, {"label": torch.tensor([1, 3])})
    assert out.shape == x.shape and not out.any()  # conv_out starts at zero, as in the images UNet
    assert trained_like(net)(x, torch.rand(2), None, {"label": torch.tensor([1, 3])}).abs().mean() > 0


def test_temporal_attention_is_the_only_path_between_frames():
    x, t = clips(), torch.full((2,), 0.5)
    moved = x.clone()
    moved[:, :, 0] += 1.0
    mixing = trained_like(SpaceTimeUNet(1, **SMALL))
    change = (mixing(moved, t) - mixing(x, t)).abs().amax(dim=(0, 1, 3, 4))  # [T]
    assert (change[1:] > 1e-3).all()
    separate = trained_like(SpaceTimeUNet(1, **SMALL, temporal_attention=False))
    change = (separate(moved, t) - separate(x, t)).abs().amax(dim=(0, 1, 3, 4))
    assert change[0] > 1e-3 and torch.allclose(change[1:], torch.zeros(4), atol=1e-5)


def test_frame_order_matters_to_the_temporal_attention():
    """The frame encoding makes the network see time order: reversing time is not reversing outputs."""
    net, x, t = trained_like(SpaceTimeUNet(1, **SMALL)), clips(), torch.full((2,), 0.5)
    assert not torch.allclose(net(x.flip(2), t).flip(2), net(x, t), atol=1e-4)


def test_permuting_clips_in_a_batch_permutes_outputs():
    net = trained_like(SpaceTimeUNet(1, **SMALL, num_classes=3))
    x, t, labels = clips(b=4), torch.rand(4), torch.tensor([0, 1, 2, 1])
    perm = torch.tensor([2, 0, 3, 1])
    out = net(x, t, None, {"label": labels})
    assert torch.allclose(net(x[perm], t[perm], None, {"label": labels[perm]}), out[perm], atol=1e-5)


def test_given_frames_condition_the_output_and_can_be_dropped():
    net = trained_like(SpaceTimeUNet(1, **SMALL, context=True))
    x, t = clips(), torch.full((2,), 0.5)
    mask = torch.tensor([[True, True, False, False, False]] * 2)
    given = {FRAMES: clips(seed=1), FRAME_MASK: mask}
    assert not torch.allclose(net(x, t, None, given), net(x, t, None, {}), atol=1e-4)
    dropped = {**given, "drop": torch.tensor([True, True])}
    assert torch.allclose(net(x, t, None, dropped), net(x, t, None, {}), atol=1e-6)
    with pytest.raises(ValueError, match=r"cond\['frames'\] must have shape \(2, 1, 5, 12, 10\)"):
        net(x, t, None, {FRAMES: clips(t=4), FRAME_MASK: mask})
    with pytest.raises(ValueError, match="context=True"):
        SpaceTimeUNet(1, **SMALL)(x, t, None, given)


def test_held_context_gives_every_frame_the_latest_given_frame():
    """context_fill="hold": frames not given hold the latest given frame before them (the first given one
    before any), a clip with none (or dropped) holds zeros; so without temporal attention, where frames
    never meet, a frame's output still depends on the given frame it holds."""
    from sciffusion_domains.dense.networks.spacetime_dit import held_frames, with_given_frames

    given = torch.arange(6.).view(1, 1, 6, 1, 1).repeat(3, 1, 1, 1, 1)
    mask = torch.tensor([[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 1, 0], [0] * 6], dtype=torch.bool)
    assert held_frames(given, mask).flatten(1).tolist() == [[0, 1, 1, 1, 1, 1], [2, 2, 2, 2, 4, 4], [0] * 6]
    cond = {FRAMES: given, FRAME_MASK: mask, "drop": torch.tensor([False, True, False])}
    inputs = with_given_frames(torch.zeros_like(given), cond, True, fill="hold")
    assert inputs[0, 1].flatten().tolist() == [0, 1, 1, 1, 1, 1] and not inputs[1:, 1:].any()
    assert inputs[0, 2].flatten().tolist() == [1, 1, 0, 0, 0, 0]  # the mask channel still tells given frames
    x, t = clips(), torch.full((2,), 0.5)
    frames = clips(seed=1)
    mask = torch.tensor([[True, True, False, False, False]] * 2)
    moved = frames.clone()
    moved[:, :, 1] += 1.0  # the last given frame
    for fill, later_frames_see_it in (("hold", True), ("zero", False)):
        net = trained_like(SpaceTimeUNet(1, **SMALL, context=True, temporal_attention=False, context_fill=fill))
        change = (net(x, t, None, {FRAMES: moved, FRAME_MASK: mask})
                  - net(x, t, None, {FRAMES: frames, FRAME_MASK: mask})).abs().amax(dim=(0, 1, 3, 4))
        assert bool((change[2:] > 1e-3).all()) is later_frames_see_it and change[0] < 1e-6
    with pytest.raises(ValueError, match="unknown context_fill 'copy'"):
        SpaceTimeUNet(1, **SMALL, context=True, context_fill="copy")


def test_context_frames_stack_the_latest_given_frames_most_recent_first():
    """context_frames=n: each frame holds the n latest given frames at or before it (the earliest known one
    repeats where fewer are known), so a frame's own convolutions see the last motion; both networks take
    the extra channels, and any count above 1 without hold is refused."""
    from sciffusion_domains.dense.networks.spacetime_dit import SpaceTimeDiT, held_frames, with_given_frames

    given = torch.arange(6.).view(1, 1, 6, 1, 1).repeat(3, 1, 1, 1, 1)
    mask = torch.tensor([[1, 1, 1, 0, 0, 0], [0, 0, 1, 0, 1, 0], [0] * 6], dtype=torch.bool)
    stacked = held_frames(given, mask, 3)[..., 0, 0]  # [B, 3, T]
    assert stacked[0].tolist() == [[0, 1, 2, 2, 2, 2], [0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]]
    assert stacked[1].tolist() == [[2, 2, 2, 2, 4, 4], [2, 2, 2, 2, 2, 2], [2, 2, 2, 2, 2, 2]]
    assert not stacked[2].any()
    assert torch.equal(held_frames(given, mask, 1), held_frames(given, mask))
    inputs = with_given_frames(torch.zeros_like(given), {FRAMES: given, FRAME_MASK: mask}, True, "hold", 2)
    assert inputs.shape == (3, 4, 6, 1, 1) and inputs[0, 3].flatten().tolist() == [1, 1, 1, 0, 0, 0]
    x, t = clips(), torch.full((2,), 0.5)
    frames, mask = clips(seed=1), torch.tensor([[True, True, False, False, False]] * 2)
    moved = frames.clone()
    moved[:, :, 0] += 1.0  # the earlier given frame: only a two-frame context shows it at later frames
    for count, later_frames_see_it in ((2, True), (1, False)):
        net = trained_like(SpaceTimeUNet(1, **SMALL, context=True, temporal_attention=False, context_fill="hold",
                                         context_frames=count))
        change = (net(x, t, None, {FRAMES: moved, FRAME_MASK: mask})
                  - net(x, t, None, {FRAMES: frames, FRAME_MASK: mask})).abs().amax(dim=(0, 1, 3, 4))
        assert bool((change[2:] > 1e-3).all()) is later_frames_see_it
    dit = SpaceTimeDiT(1, patch_size=2, width=16, depth=1, num_heads=2, context=True, context_fill="hold",
                       context_frames=2)
    assert dit(x, t, None, {FRAMES: frames, FRAME_MASK: mask}).shape == x.shape
    for fill, count in (("zero", 2), ("hold", 0)):
        with pytest.raises(ValueError, match="context_frames"):
            SpaceTimeUNet(1, **SMALL, context=True, context_fill=fill, context_frames=count)
    # on a network without given frames either option would change nothing: refused, not ignored
    for fill, count in (("hold", 1), ("hold", 4), ("zero", 2)):
        for build in (lambda: SpaceTimeUNet(1, **SMALL, context_fill=fill, context_frames=count),
                      lambda: SpaceTimeDiT(1, patch_size=2, width=16, depth=1, num_heads=2, context_fill=fill,
                                           context_frames=count)):
            with pytest.raises(ValueError, match="takes none: give it frames"):
                build()


def test_bad_options_and_inputs_are_named():
    with pytest.raises(ValueError, match="temporal_levels"):
        SpaceTimeUNet(1, **SMALL, temporal_levels=(2,))
    with pytest.raises(ValueError, match=r"\[B, 1, T, H, W\], got \(2, 1, 12, 10\)"):
        SpaceTimeUNet(1, **SMALL)(torch.zeros(2, 1, 12, 10), torch.rand(2))


def test_extrapolated_context_starts_at_zero_and_then_carries_the_given_motion(monkeypatch):
    """``context_extrapolation``: a network with it computes exactly what the same weights compute without
    it until its own input convolution is trained (fine-tuning starts from the model it was); then that
    convolution adds the extrapolation (not, say, the held frames) to the output; dropped samples see none;
    the flow is estimated once for repeated calls with the same frames."""
    from sciffusion_domains.dense.networks.spacetime_dit import held_frames
    from sciffusion_domains.video import networks
    from sciffusion_domains.video.extrapolation import extrapolated_context

    torch.manual_seed(0)
    plain = trained_like(SpaceTimeUNet(1, **SMALL, context=True, context_fill="hold"))
    moving = SpaceTimeUNet(1, **SMALL, context=True, context_fill="hold", context_extrapolation="edge")
    assert moving.load_state_dict(plain.state_dict(), strict=False).missing_keys == \
        ["conv_extrapolated.weight", "conv_extrapolated.bias"]
    x, t = clips(t=6, h=16, w=16), torch.full((2,), 0.5)
    mask = torch.tensor([[True, True, True, False, False, False]] * 2)
    given = clips(t=6, h=16, w=16, seed=1)
    assert torch.equal(moving(x, t, None, {FRAMES: given, FRAME_MASK: mask}),
                       plain(x, t, None, {FRAMES: given, FRAME_MASK: mask}))

    torch.nn.init.normal_(moving.conv_extrapolated.weight, std=0.1)
    cond = {FRAMES: given, FRAME_MASK: mask}
    added = moving(x, t, None, cond) - plain(x, t, None, cond)  # what the branch adds
    assert added.abs().amax() > 1e-3
    # ... and it is the extrapolation that it adds: handed the held frames instead, it adds something else
    monkeypatch.setattr(networks, "extrapolated_context", lambda given, mask, boundary: held_frames(given, mask))
    moving._last_extrapolation = None
    assert not torch.allclose(moving(x, t, None, cond) - plain(x, t, None, cond), added, atol=1e-4)
    monkeypatch.undo()
    moving._last_extrapolation = None
    still = given.clone()  # no motion between the last two given frames
    still[:, :, 1] = still[:, :, 2]

    calls = []
    monkeypatch.setattr(networks, "extrapolated_context",
                        lambda *a, **k: calls.append(1) or extrapolated_context(*a, **k))
    moving(x, t, None, {FRAMES: given, FRAME_MASK: mask})
    moving(x + 1, t * 2, None, {FRAMES: given.clone(), FRAME_MASK: mask.clone()})
    assert len(calls) == 1  # equal given frames (another noisy x, another level): the cached extrapolation
    moving(x, t, None, {FRAMES: still, FRAME_MASK: mask})
    assert len(calls) == 2
    dropped = {FRAMES: given, FRAME_MASK: mask, "drop": torch.tensor([True, True])}
    assert not moving.extrapolated(x, dropped).any()
    assert torch.allclose(moving(x, t, None, dropped), moving(x, t, None, {}), atol=1e-6)

    with pytest.raises(ValueError, match="edge or wrap"):
        SpaceTimeUNet(1, **SMALL, context=True, context_extrapolation="reflect")
    with pytest.raises(ValueError, match="takes given frames"):
        SpaceTimeUNet(1, **SMALL, context_extrapolation="edge")
