"""Inverse problems on images: masks and operators, the super-resolution guidance against the exact
posterior of Gaussian images, and inpainting / super-resolution / denoising end to end through
``sciffusion-sample`` with a checkpoint trained here through ``sciffusion-train``."""
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("PIL")

from sciffusion.processes import make_process  # noqa: E402
from sciffusion.samplers import prior_sample, sample  # noqa: E402
from sciffusion.space import DenseSpace  # noqa: E402
from sciffusion.testing import run_app  # noqa: E402
from sciffusion.timesteps import make_grid  # noqa: E402
from sciffusion_domains.images import data, inverse  # noqa: E402



run = run_app


def test_masks_mark_the_missing_pixels(tmp_path):
    centre = inverse.make_mask("center", 8, 6)
    assert centre.shape == (1, 1, 8, 6) and centre.sum() == 4 * 3 and centre[0, 0, 2:6, 1:4].all()
    box = inverse.make_mask("box", 8, 8, box=[1, 2, 3, 4])
    assert box.sum() == 12 and box[0, 0, 1:4, 2:6].all()
    rand = inverse.make_mask("random", 28, 28, fraction=0.3, seed=1)
    assert abs(rand.float().mean().item() - 0.3) < 0.06
    assert torch.equal(rand, inverse.make_mask("random", 28, 28, fraction=0.3, seed=1))
    drawn = torch.full((1, 8, 8), -1.0)
    drawn[:, :, :4] = 1.0  # white = missing
    data.save_png(drawn, tmp_path / "mask.png")
    assert torch.equal(inverse.make_mask(str(tmp_path / "mask.png"), 8, 8)[0], drawn > 0)
    with pytest.raises(ValueError, match="leaves"):
        inverse.box_mask(8, 8, [6, 0, 4, 2])
    with pytest.raises(FileNotFoundError, match="neither"):
        inverse.make_mask("nowhere.png", 8, 8)


def test_downsample_averages_blocks_and_upsample_shows_them():
    x = torch.arange(16.0).reshape(1, 1, 4, 4)
    y = inverse.downsample(x, 2)
    assert torch.equal(y, torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]]))
    assert torch.equal(inverse.downsample(inverse.upsample(y, 2, (4, 4)), 2), y)


def test_superres_guidance_samples_the_exact_posterior_of_gaussian_images(tmp_path):
    """For x ~ N(0, v I) the exact denoiser is known and block averages y = A x + n have the posterior
    E[A x | y] = (v/4) / (v/4 + s^2) y, Var = (v/4) s^2 / (v/4 + s^2): the guidance with its rescaled
    operator (A A^T = I / 4 for 2x2 blocks) must reproduce both."""
    torch.manual_seed(0)
    v, noise_std, factor = 0.5, 0.1, 2
    process = make_process("edm")

    def gaussian_denoiser(x, t, space=None, cond=None):
        alpha, sigma = process.alpha(t).to(x), process.sigma(t).to(x)
        return (alpha * v / (alpha**2 * v + sigma**2)).reshape(-1, 1, 1, 1) * x

    image = torch.zeros(1, 4, 4).uniform_(-0.6, 0.6)
    data.save_png(image, tmp_path / "input.png")
    guided = inverse.superres(gaussian_denoiser, process=process, input=str(tmp_path / "input.png"), factor=factor,
                              noise_std=noise_std, data_var=v, unconditional=False, out_dir=str(tmp_path))
    y = torch.from_numpy(np.load(tmp_path / "observation.npy"))
    g = torch.Generator().manual_seed(1)
    x = prior_sample(process, torch.zeros(4000, 1, 4, 4), generator=g, space=DenseSpace())
    samples = sample("heun", guided, x, make_grid("karras", process, 48), process=process, generator=g,
                     space=DenseSpace())
    observed = inverse.downsample(samples, factor)
    prior_var = v / factor**2
    exact_mean = prior_var / (prior_var + noise_std**2) * y
    exact_var = prior_var * noise_std**2 / (prior_var + noise_std**2)
    torch.testing.assert_close(observed.mean(0), exact_mean, atol=0.01, rtol=0)
    assert abs(observed.var(0).mean().item() / exact_var - 1) < 0.1
    # the unobserved directions keep their prior variance
    detail = samples - inverse.upsample(observed, factor, (4, 4))
    assert abs(detail.var(0).mean().item() / (v * (1 - 1 / factor**2)) - 1) < 0.1


def test_replacement_inpainting_pastes_the_known_pixels_of_a_random_mask(tmp_path):
    process = make_process("edm")
    denoiser = lambda x, t, space=None, cond=None: 0.1 * x  # anything: replacement does not depend on it
    image = torch.zeros(1, 8, 8).uniform_(-1, 1, generator=torch.Generator().manual_seed(0))
    data.save_png(image, tmp_path / "input.png")
    guided = inverse.inpaint(denoiser, process=process, input=str(tmp_path / "input.png"), mask="random",
                             fraction=0.4, method="replace", unconditional=False, out_dir=str(tmp_path))
    g = torch.Generator().manual_seed(1)
    x = prior_sample(process, torch.zeros(3, 1, 8, 8), generator=g, space=DenseSpace())
    samples = sample("euler", guided, x, make_grid("karras", process, 6), process=process, generator=g,
                     space=DenseSpace())
    known = ~inverse.random_mask(8, 8, 0.4)[0]
    torch.testing.assert_close(samples[:, known], data.read_png(tmp_path / "input.png")[known].expand(3, -1))
    assert {"mask.png", "observation.png", "observation.npy"} <= {p.name for p in tmp_path.iterdir()}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("inverse")
    run("train", "experiment=digits8_tiny", "train.steps=120", "train.save_every=120", f"hydra.run.dir={root / 'run'}",
        cwd=root)
    test_digits, _ = data.sklearn_digits("test").tensors(3)
    for i, digit in enumerate(test_digits):
        data.save_png(digit, root / f"digit{i}.png")
    return root / "run" / "checkpoints" / "last.ckpt"


def samples_of(out_dir: Path) -> torch.Tensor:
    files = sorted(out_dir.glob("sample_*.png"))
    return torch.stack([data.read_png(f) for f in files])


SAMPLE = ["num_samples=6", "batch_size=6", "steps=16", "sampler=heun"]


def test_inpainting_from_the_command_line_keeps_the_known_pixels(checkpoint, tmp_path):
    digit = checkpoint.parents[2] / "digit0.png"
    out = tmp_path / "inpaint"
    run("sample", f"checkpoint={checkpoint}", *SAMPLE, "guidance=inpaint", f"guidance.input={digit}",
        "guidance.mask=center", f"out_dir={out}", cwd=tmp_path)
    assert {"figure.png", "observation.png", "observation.npy", "input.png", "mask.png"} <= {p.name for p in out.iterdir()}
    samples, x = samples_of(out), data.read_png(digit)
    assert samples.shape == (6, 1, 8, 8)
    known = ~inverse.center_mask(8, 8)[0]
    assert (samples - x)[:, known].abs().max() < 0.05
    assert (samples - x)[:, ~known].std() > 0.05  # the missing pixels are sampled, not copied


def test_superresolution_from_the_command_line_matches_the_low_resolution_image(checkpoint, tmp_path):
    digit = checkpoint.parents[2] / "digit2.png"
    noise_std = 0.1
    out = tmp_path / "superres"
    run("sample", f"checkpoint={checkpoint}", *SAMPLE, "guidance=superres", f"guidance.input={digit}",
        "guidance.factor=2", f"guidance.noise_std={noise_std}", f"out_dir={out}", cwd=tmp_path)
    y = torch.from_numpy(np.load(out / "observation.npy"))
    assert y.shape == (1, 4, 4) and (out / "figure.png").stat().st_size > 1000
    # Pi-GDM is approximate for a real model: allow twice the noise level (unguided samples of this
    # model are at ~0.5 from y)
    assert (inverse.downsample(samples_of(out), 2) - y).pow(2).mean().sqrt() < 2 * noise_std


def test_denoising_from_the_command_line_writes_reconstructions(checkpoint, tmp_path):
    digit = checkpoint.parents[2] / "digit0.png"
    out = tmp_path / "denoise"
    run("sample", f"checkpoint={checkpoint}", *SAMPLE, "guidance=denoise", f"guidance.input={digit}",
        "guidance.noise_std=0.3", f"out_dir={out}", cwd=tmp_path)
    assert len(list(out.glob("sample_*.png"))) == 6 and (out / "observation.png").is_file()
    y = torch.from_numpy(np.load(out / "observation.npy"))
    assert abs((y - data.read_png(digit)).std().item() - 0.3) < 0.1
