"""Built-in domain plugins, installed as the package ``sciffusion_domains``."""
