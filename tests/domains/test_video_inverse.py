"""Super-resolution and assimilation of clips: the operators by hand (block means in space and time,
observation masks), the guidance against the exact posterior of Gaussian clips (x ~ N(0, v I), whose
denoiser is closed-form and for which the linear-Gaussian posterior of the observation is known), and
both through the CLI on a 3-step checkpoint."""
import json

import numpy as np
import pytest
import torch

import sciffusion
from sciffusion.processes import make_process
from sciffusion.samplers import prior_sample, sample
from sciffusion.space import DenseSpace
from sciffusion.testing import run_app
from sciffusion.timesteps import make_grid
from sciffusion_domains.video import inverse
from sciffusion_domains.video.domain import VideoDomain

pytest.importorskip("PIL")


def clip_domain(shape=(1, 4, 4, 4)) -> VideoDomain:
    """A domain that knows only its clip shape (a checkpoint's state): nothing to read or simulate."""
    domain = VideoDomain(size=shape[-1], frames=shape[1], formats=["npy"])
    domain.load_state_dict({"shape": list(shape), "mean": None, "std": None})
    return domain


# -- operators ---------------------------------------------------------------------------------------
def test_pooling_averages_blocks_in_space_and_time():
    x = torch.arange(16.0).reshape(1, 1, 2, 2, 4)  # frames [[0..3], [4..7]] and [[8..11], [12..15]]
    both = inverse.pool_clip(x, factor=2, time_factor=2)
    assert torch.equal(both, torch.tensor([[[[[6.5, 8.5]]]]]))  # (0+1+4+5+8+9+12+13)/8, (2+3+6+7+10+11+14+15)/8
    assert torch.equal(inverse.pool_clip(x, time_factor=2), (x[:, :, :1] + x[:, :, 1:]) / 2)
    assert torch.equal(inverse.pool_clip(x, factor=2)[0, 0, :, 0], torch.tensor([[2.5, 4.5], [10.5, 12.5]]))
    odd = torch.arange(3.0).reshape(1, 1, 3, 1, 1)  # the third frame fills no block of two: not observed
    assert torch.equal(inverse.pool_clip(odd, time_factor=2), torch.tensor([[[[[0.5]]]]]))
    shown, covered = inverse.unpool_clip(inverse.pool_clip(odd, time_factor=2), 1, 2, (3, 1, 1))
    assert shown.flatten().tolist() == [0.5, 0.5, 0.0] and covered.flatten().tolist() == [True, True, False]
    y = torch.randn(1, 2, 2, 3, 3)
    big, covered = inverse.unpool_clip(y, 2, 3, (7, 6, 7))
    assert big.shape == (1, 2, 7, 6, 7) and covered.sum() == 6 * 6 * 6
    torch.testing.assert_close(inverse.pool_clip(big, 2, 3), y)
    assert inverse.pooled_shape((2, 16, 32, 32), 4, 2) == (2, 8, 8, 8)
    with pytest.raises(ValueError, match="not both 1"):
        inverse.pooled_shape((1, 4, 8, 8), 1, 1)
    with pytest.raises(ValueError, match="integer guidance.factor"):
        inverse.pooled_shape((1, 4, 8, 8), 1.5, 1)
    with pytest.raises(ValueError, match="leave no block"):
        inverse.pooled_shape((1, 4, 8, 8), 16, 1)


def test_observation_masks_pick_a_seeded_fraction_per_frame_or_a_grid():
    mask = inverse.observation_mask((2, 5, 10, 10), fraction=0.07, seed=3)
    assert mask.shape == (2, 5, 10, 10) and mask.dtype == torch.bool
    assert mask[0].sum(dim=(1, 2)).tolist() == [7] * 5  # round(0.07 * 100) in every frame
    assert torch.equal(mask[0], mask[1])  # all channels of an observed pixel
    assert not torch.equal(mask[0, 0], mask[0, 1])  # each frame its own pixels
    assert torch.equal(mask, inverse.observation_mask((2, 5, 10, 10), fraction=0.07, seed=3))
    assert not torch.equal(mask, inverse.observation_mask((2, 5, 10, 10), fraction=0.07, seed=4))
    assert inverse.observation_mask((1, 1, 4, 4), fraction=0.01).sum() == 1  # at least one pixel
    grid = inverse.observation_mask((1, 2, 5, 5), fraction=0.5, every=2)  # every replaces fraction
    expected = torch.zeros(5, 5, dtype=torch.bool)
    expected[::2, ::2] = True
    assert torch.equal(grid[0, 0], expected) and torch.equal(grid[0, 1], expected)
    with pytest.raises(ValueError, match="in \\(0, 1\\]"):
        inverse.observation_mask((1, 1, 4, 4), fraction=1.5)
    with pytest.raises(ValueError, match="positive integer"):
        inverse.observation_mask((1, 1, 4, 4), every=0)
    with pytest.raises(ValueError, match="guidance.fraction .* or guidance.every"):
        inverse.observation_mask((1, 1, 4, 4))


# -- the guidance against exact posteriors -------------------------------------------------------------
V = 0.5  # the data variance of the Gaussian clips
PROCESS = make_process("edm")


def gaussian_denoiser(x, t, space=None, cond=None):
    """E[x0 | x_t] for x0 ~ N(0, V I): the exact denoiser of Gaussian clips."""
    alpha, sigma = PROCESS.alpha(t).to(x), PROCESS.sigma(t).to(x)
    return (alpha * V / (alpha**2 * V + sigma**2)).reshape(-1, 1, 1, 1, 1) * x


def draw(denoiser, shape, n=2000, seed=1):
    g = torch.Generator().manual_seed(seed)
    x = prior_sample(PROCESS, torch.zeros(n, *shape), generator=g, space=DenseSpace())
    return sample("heun", denoiser, x, make_grid("karras", PROCESS, 40), process=PROCESS, generator=g,
                  space=DenseSpace())


def write_clip(path, shape, seed=0):
    clip = torch.zeros(shape).uniform_(-0.6, 0.6, generator=torch.Generator().manual_seed(seed))
    np.save(path, clip.numpy())
    return clip


def test_superres_in_space_and_time_samples_the_exact_posterior_of_gaussian_clips(tmp_path):
    """Block means over 2 frames x 2 x 2 pixels (n = 8) of x ~ N(0, V I), observed with noise s, have
    E[A x | y] = (V/n) / (V/n + s^2) y and Var = (V/n) s^2 / (V/n + s^2), and every pixel of a block the
    same posterior mean; the rescaled guidance (A A^T = I / n) must reproduce them, and pull the block
    means to y far closer than unguided samples are."""
    shape, factor, time_factor, s = (1, 4, 4, 4), 2, 2, 0.1
    write_clip(tmp_path / "clip.npy", shape)
    guided = inverse.superres(gaussian_denoiser, process=PROCESS, domain=clip_domain(shape),
                              input=str(tmp_path / "clip.npy"), factor=factor, time_factor=time_factor, noise_std=s,
                              data_var=V, unconditional=False, out_dir=str(tmp_path))
    y = torch.from_numpy(np.load(tmp_path / "observation.npy"))  # [1, 2, 2, 2], data units = model units here
    assert y.shape == (1, 2, 2, 2)
    samples = draw(guided, shape)
    observed = inverse.pool_clip(samples, factor, time_factor)
    n = factor * factor * time_factor
    prior = V / n
    exact_mean, exact_var = prior / (prior + s**2) * y, prior * s**2 / (prior + s**2)
    torch.testing.assert_close(observed.mean(0), exact_mean, atol=0.01, rtol=0)
    assert abs(observed.var(0).mean().item() / exact_var - 1) < 0.1
    pixel_mean, _ = inverse.unpool_clip(exact_mean[None], factor, time_factor, shape[1:])
    torch.testing.assert_close(samples.mean(0), pixel_mean[0], atol=0.06, rtol=0)
    # within a block the samples keep the prior's detail: variance V (1 - 1/n) around the block mean
    detail = samples - inverse.unpool_clip(observed, factor, time_factor, shape[1:])[0]
    assert abs(detail.var(0).mean().item() / (V * (1 - 1 / n)) - 1) < 0.1
    free = inverse.pool_clip(draw(gaussian_denoiser, shape), factor, time_factor)
    guided_error, free_error = ((observed - y) ** 2).mean().item(), ((free - y) ** 2).mean().item()
    assert guided_error < 0.2 * free_error, (guided_error, free_error)
    # what the model was given: the observation enlarged, the settings, the full clip
    assert json.loads((tmp_path / "observation.json").read_text())["time_factor"] == 2
    assert (tmp_path / "observation.png").is_file() and np.load(tmp_path / "input.npy").shape == shape


def test_assimilation_samples_the_exact_posterior_of_gaussian_clips(tmp_path):
    """Point observations y = x_i + N(0, s^2) of x ~ N(0, V I): observed entries have posterior mean
    V / (V + s^2) y_i and variance V s^2 / (V + s^2), unobserved ones keep N(0, V)."""
    shape, s = (2, 4, 4, 4), 0.1
    write_clip(tmp_path / "clip.npy", shape)
    guided = inverse.assimilate(gaussian_denoiser, process=PROCESS, domain=clip_domain(shape),
                                input=str(tmp_path / "clip.npy"), fraction=0.25, noise_std=s, data_var=V,
                                unconditional=False, seed=2, out_dir=str(tmp_path))
    mask = torch.from_numpy(np.load(tmp_path / "observation_mask.npy"))
    y = torch.from_numpy(np.load(tmp_path / "observation.npy"))
    assert torch.equal(mask, inverse.observation_mask(shape, fraction=0.25, seed=2)) and mask.sum() == 2 * 4 * 4
    assert torch.isnan(y[~mask]).all() and torch.isfinite(y[mask]).all()
    truth = torch.from_numpy(np.load(tmp_path / "input.npy"))
    noise = (y[mask] - truth[mask]).std().item()
    assert 0.05 < noise < 0.15  # the observations carry noise_std's noise
    samples = draw(guided, shape)
    at = samples[:, mask]
    torch.testing.assert_close(at.mean(0), V / (V + s**2) * y[mask], atol=0.01, rtol=0)
    assert abs(at.var(0).mean().item() / (V * s**2 / (V + s**2)) - 1) < 0.1
    away = samples[:, ~mask]
    assert away.mean(0).abs().max().item() < 0.08 and abs(away.var(0).mean().item() / V - 1) < 0.1
    free = draw(gaussian_denoiser, shape)[:, mask]
    guided_error, free_error = ((at - y[mask]) ** 2).mean().item(), ((free - y[mask]) ** 2).mean().item()
    assert guided_error < 0.1 * free_error, (guided_error, free_error)
    assert json.loads((tmp_path / "observation.json").read_text())["observed"] == 32


def test_observations_given_as_files(tmp_path):
    """degrade=false: a low-resolution clip, or observations with NaN where unobserved, read as given."""
    shape = (1, 4, 4, 4)
    domain = clip_domain(shape)
    low = torch.randn(1, 2, 2, 2)
    np.save(tmp_path / "low.npy", low.numpy())
    inverse.superres(gaussian_denoiser, process=PROCESS, domain=domain, input=str(tmp_path / "low.npy"), factor=2,
                     time_factor=2, degrade=False, data_var=V, unconditional=False, out_dir=str(tmp_path / "sr"))
    assert np.array_equal(np.load(tmp_path / "sr" / "observation.npy"), low.numpy())
    assert not (tmp_path / "sr" / "input.npy").exists()
    with pytest.raises(ValueError, match=r"\(1, 2, 2, 2\)"):
        inverse.superres(gaussian_denoiser, process=PROCESS, domain=domain, input=str(tmp_path / "low.npy"),
                         factor=2, degrade=False)
    obs = np.full(shape, np.nan, dtype=np.float32)
    obs[0, 1, 2, 3], obs[0, 3, 0, 0] = 0.5, -0.25
    np.save(tmp_path / "obs.npy", obs)
    guided = inverse.assimilate(gaussian_denoiser, process=PROCESS, domain=domain, input=str(tmp_path / "obs.npy"),
                                degrade=False, noise_std=0.0, method="replace", unconditional=False,
                                out_dir=str(tmp_path / "da"))
    mask = np.load(tmp_path / "da" / "observation_mask.npy")
    assert mask.sum() == 2 and mask[0, 1, 2, 3] and mask[0, 3, 0, 0]
    samples = draw(guided, shape, n=3)  # replace: the observed values exactly
    assert samples[:, 0, 1, 2, 3].tolist() == [0.5] * 3 and samples[:, 0, 3, 0, 0].tolist() == [-0.25] * 3
    np.save(tmp_path / "none.npy", np.full(shape, np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="nothing is observed"):
        inverse.assimilate(gaussian_denoiser, process=PROCESS, domain=domain, input=str(tmp_path / "none.npy"),
                           degrade=False)
    with pytest.raises(ValueError, match="reconstruction or dps"):
        inverse.superres(gaussian_denoiser, process=PROCESS, domain=domain, input=str(tmp_path / "low.npy"),
                         method="replace")


# -- through the CLI -----------------------------------------------------------------------------------
def test_guidance_configs_are_the_videos_own_and_name_only_factory_options():
    """``guidance=video_superres|video_assimilate``: names no other domain ships (the images domain has
    ``superres``), targets in this module, every option one of the factory's."""
    from omegaconf import OmegaConf

    from sciffusion.cli import checks

    by_domain = checks.guidances_by_domain()
    for name, factory in (("video_superres", "superres"), ("video_assimilate", "assimilate")):
        assert by_domain["video"][name] == f"sciffusion_domains.video.inverse.{factory}"
        assert [domain for domain, targets in by_domain.items() if name in targets] == ["video"]
        node = OmegaConf.load(VideoDomain.config_dir() / "guidance" / f"{name}.yaml").guidance
        checks.guidance_options_known(OmegaConf.to_container(node))


def test_superres_and_assimilation_from_a_tiny_checkpoint(tmp_path):
    run_app("train", "experiment=moving_digits_tiny", "domain.frames=6", "domain.train_clips=16",
            f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    out = tmp_path / "superres"
    run_app("sample", f"checkpoint={ckpt}", "num_samples=2", "steps=2", "guidance=video_superres",
            "guidance.input=test:1", "guidance.factor=4", "guidance.time_factor=2", "progress=false",
            f"out_dir={out}", cwd=tmp_path)
    clip = np.load(out / "input.npy")
    y = np.load(out / "observation.npy")
    assert clip.shape == (1, 6, 32, 32) and y.shape == (1, 3, 8, 8)
    expected = inverse.pool_clip(torch.from_numpy(clip)[None], 4, 2)[0].numpy()
    assert np.abs(y - expected).max() < 0.1 and not np.array_equal(y, expected)  # pooled, plus 0.02 noise
    assert all(np.load(out / f"sample_0000{i}.npy").shape == (1, 6, 32, 32) for i in range(2))
    assert {"observation.png", "observation.json", "figure.png", "sample_00000.mp4"} <= {p.name for p in out.iterdir()}
    model = sciffusion.load(ckpt)  # assimilation in-process: a second app subprocess would double the time
    guidance = {"_target_": "sciffusion_domains.video.inverse.assimilate", "_partial_": True, "input": "test:1",
                "every": 4, "noise_std": 0.05, "out_dir": str(tmp_path / "da")}
    clips = model.sample(2, steps=2, guidance=guidance, cond={"unconditional": True}, progress=False, verbose=False)
    assert len(clips) == 2 and clips[0].values.shape == (1, 6, 32, 32)
    mask = np.load(tmp_path / "da" / "observation_mask.npy")
    assert mask.shape == (1, 6, 32, 32) and mask.sum() == 6 * 8 * 8 and mask[0, :, ::4, ::4].all()
