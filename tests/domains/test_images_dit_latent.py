"""The DiT sized for latents (Peebles & Xie 2023): patch size 1-2 on a 4x7x7 latent, adaLN-Zero on noise
level and class, selectable with network.kind=dit in the images domain (and the latent domain)."""
import pytest
import torch

from sciffusion.testing import assert_adaln_zero_class_conditioning
from sciffusion_domains.dense.networks import DiT
from sciffusion_domains.images.domain import ImagesDomain


def latent_batch(b: int = 4):
    g = torch.Generator().manual_seed(0)
    return torch.randn(b, 4, 7, 7, generator=g), torch.rand(b, generator=g)


@pytest.mark.parametrize("patch_size", [1, 2])
def test_latent_shapes_and_zero_output_at_initialisation(patch_size):
    torch.manual_seed(0)
    net = DiT(4, patch_size=patch_size, width=64, depth=2, num_heads=4, num_classes=10)
    x, t = latent_batch()
    out = net(x, t, None, {"label": torch.tensor([0, 1, 2, 3])})
    assert out.shape == x.shape
    assert torch.count_nonzero(out) == 0  # adaLN-Zero: every block is the identity and the output layer is zero


@pytest.mark.parametrize("patch_size", [1, 2])
def test_the_class_acts_from_the_second_training_step(patch_size):
    """adaLN-Zero: at initialisation only the output projection has a gradient (the modulations' gradients
    pass through it, and it is zero), so after one step the output is still blind to the class; the
    second step opens the final modulation, and the class changes the output."""
    torch.manual_seed(0)
    net = DiT(4, patch_size=patch_size, width=64, depth=2, num_heads=4, num_classes=10)
    x, t = latent_batch()
    assert_adaln_zero_class_conditioning(net, x, t, torch.tensor([0, 1, 2, 3]), 10)


def test_images_domain_selects_the_dit():
    domain = ImagesDomain(dataset="sklearn_digits", conditional=True)
    domain.load_state_dict({"shape": [1, 8, 8], "class_names": [str(k) for k in range(10)]})  # as from a checkpoint
    net = domain.network(kind="dit", dit={"patch_size": 1, "width": 32, "depth": 1, "num_heads": 4})
    assert isinstance(net, DiT) and net.patch_size == 1 and net.in_channels == 1
    assert net.embedding.classes.num_embeddings == 11  # ten digits and the null class
    with pytest.raises(ValueError, match="kind 'vit'"):
        domain.network(kind="vit")
