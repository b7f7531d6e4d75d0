"""Train the HadISST forecast model as mean + residual diffusion: the LIM's one-month forecast mean is
the predictor, the EDM model learns the residual (``sciffusion.residual``). Same recipe as
``experiment=hadisst_forecast`` otherwise; any overrides of it go on the command line.

    python experiments/weather/train_residual.py RUN_DIR [modes=15] [override ...]

The checkpoint's config carries ``residual: {predictor: lim, modes: M}``; forecast with
``python -m sciffusion_domains.weather.forecast checkpoint=RUN_DIR/checkpoints/last.ckpt residual=lim``.
"""
import sys
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from sciffusion.cli import build
from sciffusion.residual import ResidualLoss
from sciffusion.training import Trainer, seed_everything
from sciffusion_domains.weather.baselines import LIMPredictor


def main(argv: list[str]) -> None:
    run_dir, overrides = Path(argv[0]), argv[1:]
    modes = next((int(o.split("=")[1]) for o in overrides if o.startswith("modes=")), 15)
    overrides = [o for o in overrides if not o.startswith("modes=")]
    with initialize_config_module("sciffusion.conf", version_base="1.3"):
        cfg = compose("train", overrides=["experiment=hadisst_forecast", *overrides])
    plain = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
    plain["residual"] = {"predictor": "lim", "modes": modes}
    seed_everything(plain["train"]["seed"])
    parts = build.build(plain)
    loss = ResidualLoss(parts.loss, LIMPredictor(parts.domain, modes=modes))
    trainer = Trainer(domain=parts.domain, model=parts.model, process=parts.process, loss=loss,
                      optimizer=parts.optimizer, run_dir=run_dir, options=build.train_options(plain),
                      sampling=build.sampling_options(plain), config=plain)
    trainer.restore()
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(plain))
    record = trainer.fit()
    print(f"train_residual: done, final loss {record['loss']:.4g}; outputs in {run_dir}")


if __name__ == "__main__":
    main(sys.argv[1:])
