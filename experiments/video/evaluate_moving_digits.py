"""Score Moving-MNIST clips with the judge (``sciffusion_domains.video.judge``) and the judge-free clip
statistics (``metrics.clip_metrics``), against real clips of the training split, beside real calibration
rows scored the same way at the same N (Frechet distances depend on N):

    real_test        real test clips (other digit images): the floor every score can reach
    persistence      the first --given frames of each test clip, then its last given frame repeated
    extrapolation    the first --given frames, then the last carried along the optical flow between the last
                     two (``extrapolation``: the classical nowcast, persistence with motion)
    shuffled         the test clips with their frames in a random order (the same frames, no motion):
                     video_fd must see it, frame_fd cannot
    model_free       with --checkpoint: --samples clips drawn without given frames (a model trained with
                     domain.given_frames and loss.cond_dropout draws them with the frames dropped)
    model_forecast   with --checkpoint: a continuation of each test clip's first --given frames (by
                     conditioning if the model was trained with given frames, else by inpainting in time)

Forecast rows (persistence, extrapolation, model_forecast) leave the given frames out of the per-frame scores; every
row built on test clips also gets ``digits_recognised`` (frames showing exactly the test clip's digits).
The reference clips are training-split clips from index 50,000 on: the digit images the models and the
judge learnt from, on trajectories neither was trained on. Writes ``scores.json``, ``scores.md`` and
``frames.png`` (a frame grid: clip 0 of each row, then more model clips) into --out.

    python experiments/video/evaluate_moving_digits.py --references-only --out experiments/video/moving_digits_references
    python experiments/video/evaluate_moving_digits.py --checkpoint runs/fc/checkpoints/last.ckpt --out eval/fc
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sciffusion_domains.video import judge as judging
from sciffusion_domains.video.data import pair_label
from sciffusion_domains.video.rollout import START_FROM
from sciffusion_domains.video.extrapolation import extrapolation
from sciffusion_domains.video.metrics import clip_metrics

REFERENCE_START = 50_000  # training-split clip indices no model (train_clips=10000) or judge (6000) saw
COLUMNS = ("frame_fd", "video_fd", "identity_kept", "digits_recognised", "digits_per_frame", "judged_real",
           "motion_ratio", "std_ratio", "mean_error")


def persistence(clips: torch.Tensor, given: int) -> torch.Tensor:
    """The first ``given`` frames of ``clips [N, C, T, H, W]``, then the last of them repeated to T."""
    out = clips.clone()
    out[:, :, given:] = clips[:, :, given - 1:given]
    return out


def shuffled(clips: torch.Tensor, seed: int) -> torch.Tensor:
    """``clips [N, C, T, H, W]`` with each clip's frames in its own random order."""
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([c[:, torch.randperm(c.shape[1], generator=generator)] for c in clips])


def load_model(checkpoint: str, size: int | None, device: str = "cpu"):
    import sciffusion

    model = sciffusion.load(checkpoint, device=device)
    domain = model.domain
    if domain.source != "moving_digits":
        raise SystemExit(f"{checkpoint} models source={domain.source}; this evaluation scores Moving MNIST")
    c, _, h, _ = domain.shape
    if c != 1 or (size is not None and h != size):
        raise SystemExit(f"{checkpoint} draws clips {tuple(domain.shape)}; --size {size} asks for {size}x{size} "
                         "frames (leave --size out to take the checkpoint's)")
    return model


@torch.no_grad()
def free_clips(model, count: int, *, steps: int, seed: int, labels: torch.Tensor | None,
               batch_size: int = 16, frames: int | None = None, given: int = 4,
               new_frames: int | None = None) -> torch.Tensor:
    """``count`` clips ``[N, C, frames, H, W]`` in data units drawn with no given frames (dropped, for a
    model trained with them), class-conditional on ``labels`` where the model is. Past the model's window
    T, each clip is rolled out from its last ``given`` frames (``new_frames`` a window)."""
    from tqdm.auto import tqdm

    from sciffusion.guidance import device_of
    from sciffusion.samplers import prior_sample, sample
    from sciffusion.space import DenseSpace
    from sciffusion.timesteps import make_grid

    settings = model.settings(steps=steps)
    denoiser, process, domain = model.guided(None), model.process, model.domain
    ts = make_grid(settings.grid, process, settings.steps, **settings.grid_options)
    device = device_of(model.denoiser)
    if domain.given_frames and labels is not None:
        raise SystemExit("free clips of a class-conditional forecaster would drop the class with the frames")
    out = []
    for index, start in enumerate(tqdm(range(0, count, batch_size), desc="free clips")):
        n = min(batch_size, count - start)
        cond = {} if labels is None else {"label": labels[start:start + n].to(device)}
        if domain.given_frames:  # cond["drop"] and no cond["frames"]: what cond_dropout trained it on
            cond["drop"] = torch.ones(n, dtype=torch.bool, device=device)
        generator = torch.Generator(device).manual_seed(seed * 1_000_003 + index)
        x = prior_sample(process, torch.zeros(n, *domain.shape, device=device), space=DenseSpace(),
                         generator=generator)
        x0 = sample(settings.sampler, denoiser, x, ts, process=process, space=DenseSpace(), cond=cond,
                    generator=generator, **settings.sampler_options)
        out.append(domain.to_data(x0.cpu()))
    clips = torch.cat(out)
    window = domain.shape[1]
    if frames is not None and frames > window:
        from sciffusion_domains.video.rollout import rollout

        rest = rollout(model.denoiser, process, domain, clips[:, :, -given:], frames=frames - window + given,
                       sampler=settings.sampler, steps=settings.steps, grid=settings.grid, seed=seed + 1,
                       new_frames=new_frames, progress=True)
        clips = torch.cat([clips, rest[:, :, given:]], dim=2)
    return clips


def forecasts(model, test: torch.Tensor, given: int, *, steps: int, seed: int,
              new_frames: int | None = None, context_guidance: float = 1.0,
              start_sigma: float | None = None, start_from: str = "persistence") -> torch.Tensor:
    """Continuations ``[N, C, T, H, W]`` of each test clip's first ``given`` frames (``rollout.rollout``:
    one window, or more past the model's window or with ``new_frames`` a window). ``context_guidance`` > 1
    applies classifier-free guidance to the given frames (a model trained with ``loss.cond_dropout``);
    ``start_sigma`` starts each window's new frames from the last given one at that noise level (SDEdit), or
    with ``start_from="extrapolation"`` from its optical-flow extrapolation."""
    from sciffusion.cli.checks import CFG_TARGET
    from sciffusion_domains.video.rollout import rollout

    settings = model.settings(steps=steps)
    guidance = {"_target_": CFG_TARGET, "_partial_": True, "scale": context_guidance}
    denoiser = model.denoiser if context_guidance == 1.0 else model.guided(guidance)  # checked: cond_dropout > 0
    return rollout(denoiser, model.process, model.domain, test[:, :, :given], frames=test.shape[2],
                   sampler=settings.sampler, steps=settings.steps, grid=settings.grid, seed=seed, progress=True,
                   new_frames=new_frames, start_sigma=start_sigma, start_from=start_from)


def to_pixels(clip: torch.Tensor) -> np.ndarray:
    """``[1, T, H, W]`` in [-1, 1] -> uint8 ``[T, H, W, 1]``."""
    return ((clip.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 3, 0).numpy()


def markdown(scores: dict, n: int, reference: int) -> str:
    title = f"Moving MNIST, {n} clips a row against {reference} real training-split clips (settings: scores.json)"
    lines = [title, "",
             "| row | " + " | ".join(COLUMNS) + " |", "|---|" + "---|" * len(COLUMNS)]
    for name, s in scores.items():
        lines.append(f"| {name} | " + " | ".join(f"{s[c]:.3f}" if c in s else "-" for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="folder for scores.json, scores.md and frames.png")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="a trained domain=moving_digits model")
    source.add_argument("--references-only", action="store_true", help="only the real calibration rows")
    parser.add_argument("--samples", type=int, default=64, help="clips per row (test clips, model clips)")
    parser.add_argument("--reference", type=int, default=256, help="real training-split clips to score against")
    parser.add_argument("--steps", type=int, default=20, help="sampler steps of the model")
    parser.add_argument("--given", type=int, default=4, help="frames given to forecasts (the model's given_frames)")
    parser.add_argument("--size", type=int, help="frame size (default: the checkpoint's, else 32)")
    parser.add_argument("--frames", type=int, help="frames per clip (default: the model's window, else 16); past "
                        "the window, model clips are rolled out")
    parser.add_argument("--new-frames", type=int, help="frames a rollout window adds (default: all the window "
                        "less the given frames)")
    parser.add_argument("--context-guidance", type=float, default=1.0, help="classifier-free guidance scale on "
                        "the given frames of forecasts (1: none; needs a model trained with loss.cond_dropout)")
    parser.add_argument("--start-sigma", type=float, help="forecast windows start their new frames from the last "
                        "given frame noised to this level, not from pure noise (SDEdit; default: pure noise)")
    parser.add_argument("--start-from", default="persistence", choices=START_FROM,
                        help="with --start-sigma: what the new frames start as under the noise")
    parser.add_argument("--forecast-only", action="store_true", help="score the model's forecasts, not its free "
                        "clips (to compare rollout settings at half the cost)")
    parser.add_argument("--device", default="cpu", help="where the model samples (cuda on a GPU machine); the "
                        "judge scores on the CPU")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    started = time.time()
    model = load_model(args.checkpoint, args.size, args.device) if args.checkpoint else None
    if model is not None:
        _, window, size, _ = model.domain.shape
        frames = args.frames or window
        if model.domain.given_frames and model.domain.given_frames != args.given:
            parser.error(f"the model forecasts from {model.domain.given_frames} given frames; pass --given "
                         f"{model.domain.given_frames}")
    else:
        frames, size = args.frames or 16, args.size or 32
    if args.forecast_only and model is None:
        parser.error("--forecast-only scores a model's forecasts: give --checkpoint")
    if not 0 < args.given < frames:
        parser.error(f"--given must be in 1..{frames - 1}")
    judge = judging.load_judge(size)
    reference, _ = judging.real_clips("train", args.reference, size=size, frames=frames, seed=args.seed,
                                      start=REFERENCE_START)
    test, digits = judging.real_clips("test", args.samples, size=size, frames=frames, seed=args.seed)
    # name: (clips, given frames left out of the per-frame scores, true digits of each clip or None)
    rows = {"real_test": (test, 0, digits), "persistence": (persistence(test, args.given), args.given, digits),
            "shuffled": (shuffled(test, args.seed), 0, digits)}
    if args.given >= 2:  # the flow needs two known frames
        rows["extrapolation"] = (extrapolation(test, args.given), args.given, digits)
    seconds = {}
    if model is not None:
        tick = time.time()
        conditional = model.domain.conditional
        pair_labels = torch.tensor([pair_label(d) for d in digits]) if conditional else None
        if not args.forecast_only:
            rows["model_free"] = (free_clips(model, args.samples, steps=args.steps, seed=args.seed,
                                             labels=pair_labels, frames=frames, given=args.given,
                                             new_frames=args.new_frames), 0, digits if conditional else None)
            seconds["model_free"] = round(time.time() - tick, 1)
        if conditional and model.domain.given_frames:
            print("skipping model_forecast: rollout of a class-conditional forecaster is not supported")
        else:
            tick = time.time()
            rows["model_forecast"] = (forecasts(model, test, args.given, steps=args.steps, seed=args.seed,
                                                new_frames=args.new_frames, context_guidance=args.context_guidance,
                                                start_sigma=args.start_sigma, start_from=args.start_from),
                                      args.given, digits)
            seconds["model_forecast"] = round(time.time() - tick, 1)
    ref_values = reference.numpy()
    scores = {}
    for name, (clips, given, truth) in rows.items():
        scores[name] = {**judging.judge_metrics(clips, reference, given_digits=truth, given_frames=given, judge=judge),
                        **clip_metrics(clips.numpy(), ref_values), "given_frames": given}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    shown = {name: [to_pixels(clips[0])] for name, (clips, _, _) in rows.items()}
    for name in ("model_free", "model_forecast"):
        if name in rows:
            shown[name] = [to_pixels(c) for c in rows[name][0][:4]]
    from sciffusion_domains.video.figures import frame_grid

    frame_grid([r for pixels in shown.values() for r in pixels], out / "frames.png",
               names=[name[:10] for name, pixels in shown.items() for _ in pixels])
    result = {"command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
              "settings": {**vars(args), "size": size, "frames": frames, "reference_start": REFERENCE_START},
              "judge": {"file": f"domains/video/weights/{judging.weights_path(size).name}", "test_accuracy": judge.meta.get("test_accuracy")},
              "model": None if model is None else {"checkpoint": args.checkpoint, "step": model.step,
                                                    "given_frames": model.domain.given_frames},
              "scores": scores, "seconds": {**seconds, "total": round(time.time() - started, 1)}}
    (out / "scores.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "scores.md").write_text(markdown(scores, args.samples, args.reference))
    print(markdown(scores, args.samples, args.reference))
    return result


if __name__ == "__main__":
    main()
