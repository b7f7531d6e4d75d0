"""The audio domain: spectrogram batches, checkpoint state, decoding to WAV, metrics, and the CLI."""
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

pytest.importorskip("librosa")
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")

from sciffusion_domains.audio.domain import AudioDomain  # noqa: E402

TINY = dict(accents=["en-us"], variants=["m1", "f2", "klatt"], renders_per_voice=1, val_variants=["f2"],
            test_variants=["klatt"])


@pytest.fixture(scope="module")
def domain(tmp_path_factory):
    return AudioDomain(digits=TINY, griffin_lim_iters=8, cache=str(tmp_path_factory.mktemp("cache")))


@needs_espeak
def test_batches_are_standardised_spectrograms(domain):
    train = domain.dataset("train")
    batch = domain.collate([train[i] for i in range(len(train))])
    assert batch.x.shape == (10, 1, 80, 63) and batch.cond["label"].tolist() == list(range(10))
    per_bin = batch.x[:, 0].transpose(0, 1).reshape(80, -1)
    torch.testing.assert_close(per_bin.mean(1), torch.zeros(80), atol=1e-4, rtol=0)
    x_like, _ = domain.template(3)
    assert x_like.shape == (3, 1, 80, 63)


@needs_espeak
def test_normaliser_comes_from_training_voices_and_travels_in_the_state(domain, tmp_path):
    state = domain.state_dict()
    torch.save(state, tmp_path / "state.pt")
    fresh = AudioDomain(digits=dict(TINY, variants=["m1", "f2", "klatt", "m3"]), cache=domain.cache)
    fresh.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    x = domain.dataset("test")[0][0][None]
    a, b = domain.decode(x, None)[0].log_spec, fresh.decode(x, None)[0].log_spec
    np.testing.assert_allclose(a, b, rtol=1e-6)
    with pytest.raises(ValueError, match="spectrograms"):
        AudioDomain(n_mels=64).load_state_dict(state)


@needs_espeak
def test_decode_round_trips_real_clips_and_saves_playable_wav(domain, tmp_path):
    import soundfile

    x, labels = domain.dataset("test").tensors
    samples = domain.decode(x[:3], None, {"label": labels[:3]})
    assert [s.label for s in samples] == [0, 1, 2]
    files = domain.save(samples, tmp_path)
    audio, rate = soundfile.read(files[2])
    assert rate == 16000 and audio.shape == (16000,) and np.abs(audio).max() > 0.01
    assert files[2].name == "sample_0002_two.wav"
    figure = domain.figure(samples, tmp_path / "figure.png")
    assert figure.stat().st_size > 10_000


def test_condition_by_name_and_errors():
    d = AudioDomain()
    assert d.condition(2, label="seven")["label"].tolist() == [7, 7]
    assert d.condition(5, label=[0, "two", 9])["label"].tolist() == [0, 2, 9, 0, 2]
    assert d.condition(3, unconditional=True) == {}
    with pytest.raises(ValueError, match="unconditional"):
        d.condition(1, label=3, unconditional=True)
    with pytest.raises(ValueError, match="unknown class"):
        d.condition(1, label="eleven")
    with pytest.raises(ValueError, match="root="):
        AudioDomain(dataset="folder")


@needs_espeak
def test_metrics_separate_real_clips_from_noise(domain):
    reference = domain.reference("train")
    real = domain.reference("test")
    rng = np.random.default_rng(0)
    noise = domain.decode(torch.from_numpy(rng.standard_normal((10, 1, 80, 63))).float(), None,
                          {"label": torch.arange(10)})
    on_real, on_noise = domain.metrics(real, reference), domain.metrics(noise, reference)
    assert on_real["fd"] < on_noise["fd"] / 3
    assert on_real["class_accuracy"] >= 0.5 and on_noise["class_accuracy"] <= 0.5


@needs_espeak
def test_train_sample_evaluate_through_the_cli(tmp_path):
    run = tmp_path / "run"
    cache = f"domain.cache={tmp_path / 'cache'}"
    python = [sys.executable, "-m"]
    subprocess.run(python + ["sciffusion.cli.train", "experiment=audio_tiny", cache, f"hydra.run.dir={run}"],
                   check=True, capture_output=True)
    checkpoint = run / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()
    out = tmp_path / "samples"
    subprocess.run(python + ["sciffusion.cli.sample", f"checkpoint={checkpoint}", "num_samples=2", "steps=3",
                             "cond.label=7", f"out_dir={out}"], check=True, capture_output=True)
    wavs = sorted(out.glob("*.wav"))
    assert [w.name for w in wavs] == ["sample_0000_seven.wav", "sample_0001_seven.wav"]
    assert (out / "figure.png").is_file()
    scores = tmp_path / "scores"
    subprocess.run(python + ["sciffusion.cli.evaluate", f"checkpoint={checkpoint}", "num_samples=4", "steps=3",
                             f"out_dir={scores}"], check=True, capture_output=True)
    metrics = json.loads((scores / "metrics.json").read_text())["metrics"]
    assert {"fd", "class_accuracy"} <= set(metrics) and all(np.isfinite(v) for v in metrics.values())
    for task, span in [("gap", ["guidance.start=0.3", "guidance.end=0.6"]), ("continue", ["guidance.start=0.5"])]:
        edited = tmp_path / task
        subprocess.run(python + ["sciffusion.cli.sample", f"checkpoint={checkpoint}", "num_samples=2", "steps=3",
                                 f"guidance={task}", "guidance.input=test:0", *span, f"out_dir={edited}"],
                       check=True, capture_output=True)
        written = {p.name for p in edited.iterdir()}
        assert {"input.wav", "observation.wav", "observation.png", "edit.json", "figure.png",
                "sample_0000.wav", "sample_0001.wav"} <= written, written


@needs_espeak
@pytest.mark.parametrize("method", ["replace", "reconstruction"])
def test_gap_filling_keeps_the_known_frames(domain, method):
    """Replacement pastes the known frames exactly; reconstruction guidance pulls a model that knows
    nothing of them (a Gaussian prior) close to them, and the generated span differs between samples."""
    from sciffusion.processes import VPCosine
    from sciffusion.samplers import sample
    from sciffusion.timesteps import uniform_t
    from sciffusion_domains.audio.inverse import edit, edited_frames

    process = VPCosine()
    prior = lambda x, t, space=None, cond=None: x * process.alpha(t).view(-1, 1, 1, 1) / (  # noqa: E731
        process.alpha(t) ** 2 + process.sigma(t) ** 2).view(-1, 1, 1, 1)  # E[x0 | xt] for x0 ~ N(0, I)
    guided = edit(prior, process=process, domain=domain, input="test:0", task="gap", start=0.3, end=0.6,
                  method=method)
    x_t, space = domain.template(3)
    x = sample("ddim", guided, torch.randn(x_t.shape, generator=torch.Generator().manual_seed(0)),
               uniform_t(process, 50), process=process, space=space)
    gap = edited_frames(domain, "gap", 0.3, 0.6)
    truth = domain.encode(domain.waveforms("test")[0][:1].numpy())[0, 0]
    error = (x[:, 0][..., ~gap] - truth[..., ~gap]).abs().max()
    assert error < (1e-4 if method == "replace" else 0.1), error
    assert (x[0, 0][..., gap] - x[1, 0][..., gap]).abs().mean() > 0.1


def test_gap_and_continuation_spans_are_checked():
    from sciffusion_domains.audio.inverse import edited_frames

    d = AudioDomain()
    gap = edited_frames(d, "gap", 0.25, 0.5)
    assert gap.sum() == 16 and gap[16] and not gap[15] and gap[31] and not gap[32]  # 256/16000 s a frame
    assert edited_frames(d, "continue", 0.5, None).sum() == 63 - 32
    for task, start, end, message in [("gap", 0.5, None, "needs guidance.end"), ("gap", 0.6, 0.5, "start < end"),
                                      ("continue", 0.5, 0.8, "leave guidance.end unset"), ("cut", 0.1, 0.2, "task")]:
        with pytest.raises(ValueError, match=message):
            edited_frames(d, task, start, end)


def test_metrics_refuse_a_classifier_trained_on_other_spectrograms():
    """The judge reads the model's spectrograms: a 128-band domain cannot be scored by the 80-band one."""
    assert AudioDomain().classifier().meta["spectrogram"]["n_mels"] == 80
    with pytest.raises(ValueError, match="train one for these settings"):
        AudioDomain(n_mels=128, hop_length=128).classifier()


@needs_espeak
def test_keeps_the_domain_contract(domain, tmp_path):
    from sciffusion.testing import assert_domain_contract

    assert_domain_contract(domain, tmp_path, fresh=lambda: AudioDomain(digits=TINY, griffin_lim_iters=8,
                                                                       cache=str(tmp_path / "unused")))
