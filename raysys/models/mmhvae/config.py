"""Typed, frozen configuration of the MMHVAE family, its two presets and the level plan.

Groups are numbered as in the paper: group 1 is the finest latent (full resolution), group
``max_levels`` the coarsest (a vector). With ``channels`` of length n the ladder has n spatial
groups (resolution ``image_size / 2**(g-1)`` for group g) plus the vector group n + 1.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal, Mapping

from raysys.models.presets import PresetBudgets

# The paper's ablation (Sec. 4.4.2) at L_max = 7: which groups carry a latent for each L.
PAPER_GROUPS_AT_7: dict[int, tuple[int, ...]] = {
    1: (7,),
    2: (1, 7),
    3: (1, 4, 7),
    5: (1, 3, 4, 5, 7),
    7: (1, 2, 3, 4, 5, 6, 7),
}


def latent_groups(levels: int, max_levels: int) -> tuple[int, ...]:
    """The groups (1 = finest, ``max_levels`` = coarsest) that carry a latent for L = ``levels``.

    L = 1 keeps only the coarsest group (MoPoE). Otherwise the finest and the coarsest are always
    kept; at ``max_levels == 7`` the paper's choices are used where it gives one, else the groups
    are evenly spaced (``floor(x + 0.5)`` of a linspace from 1 to ``max_levels``).
    """
    if not 1 <= levels <= max_levels:
        raise ValueError(f"levels must be in 1..{max_levels} for this ladder, got {levels}")
    if levels == 1:
        return (max_levels,)
    if max_levels == 7 and levels in PAPER_GROUPS_AT_7:
        return PAPER_GROUPS_AT_7[levels]
    step = (max_levels - 1) / (levels - 1)
    return tuple(int(1 + i * step + 0.5) for i in range(levels))


# The MHVAE baseline (Dorent et al. 2023, the paper's [29]) as overrides of this family: one
# full-input PoE posterior, no subset mixture. Its two modalities are chosen by the run
# (``train.modalities``), not by the model config.
MHVAE_OVERRIDES: dict[str, str] = {"posterior": "full"}


@dataclasses.dataclass(frozen=True)
class MMHVAEConfig(PresetBudgets):
    """Every knob of the model, the objective and the optimisers (defaults = the paper preset).

    ``data_range`` is mapped linearly onto [-1, 1] (the tanh heads' range) and back; the train
    loop sets it from the store's fixed ``value_range`` and metrics use it as PSNR/SSIM range.
    """

    # Training budget of each preset (``budget(preset)``): ``cpu`` trains in about 10 minutes with 2
    # DDP CPU workers. 2 workers x batch 8 see the 12 training subjects' ~840 slices in ~52 steps each,
    # so an epoch is about one pass; the cap keeps a 1-worker epoch (the demo's trials) as short.
    PRESET_BUDGETS: ClassVar[Mapping[str, Mapping[str, int]]] = {
        "paper": {},
        "tiny": {},
        "cpu": {"epochs": 10, "max_steps_per_epoch": 55, "batch_size": 8, "max_val_steps": 4},
    }

    data_range: tuple[float, float] = (0.0, 1.0)
    # Data-space range of the ENCODER inputs when they are not the targets' space: raw images
    # (``train.inputs=raw``, the store's ``raw_range``) encoded, normalised ones reconstructed,
    # the paper's harmonisation (Sec. 4.4.1). None: the inputs are the targets (``data_range``).
    input_range: tuple[float, float] | None = None
    # Data-space value outside the brain mask, written by the model there (targets and outputs).
    # The store contract: every normalisation sets voxels outside the mask to 0 (clipped to data_range).
    background: float = 0.0
    # --- architecture -------------------------------------------------------------------
    image_size: int = 192
    # Feature channels of encoder and top-down path at each spatial group, finest first; the
    # latent of spatial group g has channels[g-1] // 2 channels (z1 = 8 @ 192 ... z6 = 64 @ 6).
    channels: tuple[int, ...] = (16, 32, 64, 128, 128, 128)
    top_latent_dim: int = 256  # z_L, the coarsest group, a vector
    levels: int = 7  # L, number of latent groups used (see latent_groups)
    decoder_expansion: int = 6  # MobileNetV2 expansion of the top-down cells
    head_channels: int = 8
    head_blocks: int = 5  # ResNet blocks per image head (paper Sec. 4.2: 5; released code: 6)
    head_kernel: int = 7  # kernel of the heads' two last convs (released code: 7x7)
    # What the heads read: "z1" (eq. 6, the sampled finest latent only) or "z1_state" (z1 concatenated
    # with the deterministic finest top-down features it was drawn from, as NVAE/VDVAE output layers).
    head_input: Literal["z1", "z1_state"] = "z1"
    # Last activation of the heads: "tanh" (released code, model space [-1, 1]) or "linear".
    head_activation: Literal["tanh", "linear"] = "tanh"
    soft_clamp: float = 10.0  # mu and log-variances pass through c * tanh(x / c)
    weight_norm: bool = True  # on the latent heads (priors, posteriors, bottleneck linears)
    # Added to every expert's log-variance before the soft clamp (0 = the released code). Negative
    # values start the experts sharper than the prior, so z carries the input from the first step.
    expert_logvar_offset: float = 0.0
    fusion: Literal["poe", "average", "concat_zeros"] = "poe"
    # --- objective ----------------------------------------------------------------------
    # The training posterior: "mixture" (the paper, eq. 7-8: T subsets r' of the observed set r
    # drawn from p_alpha per step) or "full" (one PoE of every observed input, r' = r, no subset
    # sampling; the MHVAE baseline and the ablation "subset mixture vs a single full posterior").
    posterior: Literal["mixture", "full"] = "mixture"
    subset_sampling: Literal["uniform", "paper"] = "paper"
    anchor_modality: int = 0  # index of the modality drawn alone with p = 1/3 ("paper" scheme)
    subsets_per_step: int = 3  # T
    recon: Literal["l1", "l2"] = "l1"
    kl: Literal["analytic", "sample"] = "analytic"
    lambda_kl: float = 1e-3
    kl_warmup_epochs: float = 0.0  # linear ramp of lambda_kl over this many epochs (0 = off)
    lambda_gan: float = 0.025
    gan_start_fraction: float = 0.8  # lambda_gan is exactly 0 before this fraction of epochs
    gan_start_epoch: int | None = None  # overrides gan_start_fraction when set
    disc_start_fraction: float = 0.79  # discriminators train from here on
    disc_start_epoch: int | None = None  # overrides disc_start_fraction when set
    memory_size: int = 32  # real images remembered per modality (the paper's m_j)
    disc_channels: int = 64
    disc_layers: int = 6
    # --- inference / evaluation -----------------------------------------------------------
    temperature: float = 0.5  # scales every posterior std at inference and validation
    eval_seed: int = 0  # validation noise is drawn from a generator seeded with this
    # --- optimisation ---------------------------------------------------------------------
    lr: float = 2e-3  # Adamax, cosine decay to lr_min over all steps
    lr_min: float = 1e-4
    # Adamax's beta2 (decay of the infinity norm). 0.999 (the released code) keeps the large
    # gradients of the first steps in the denominator for thousands of steps; 0.9 forgets them.
    beta2: float = 0.999
    disc_lr: float = 2e-4  # Adam
    # --- execution ------------------------------------------------------------------------
    compile_model: bool = False  # torch.compile the generator (in place; state-dict keys unchanged)

    def __post_init__(self) -> None:
        for name in ("data_range", "input_range"):
            value = getattr(self, name)
            if value is not None and not (len(value) == 2 and value[1] > value[0]):
                raise ValueError(f"{name} must be (low, high) with high > low, got {value}")
        if not self.channels:
            raise ValueError("channels must name at least one spatial group")
        for c in self.channels:
            if c < 2 or c % 2:
                raise ValueError(f"channels must be even and >= 2 (latent = channels // 2), got {self.channels}")
        if self.image_size % (2 ** len(self.channels)):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2**len(channels) = {2 ** len(self.channels)}"
            )
        if self.bottom_size < 2:
            # InstanceNorm needs more than one spatial element on the coarsest feature map.
            raise ValueError(
                f"image_size {self.image_size} is too small for {len(self.channels)} spatial groups: the coarsest "
                f"feature map would be {self.bottom_size}x{self.bottom_size}; use image_size >= "
                f"{2 * 2 ** len(self.channels)} or fewer channels"
            )
        latent_groups(self.levels, self.max_levels)  # raises with the allowed range
        positive = {
            "top_latent_dim": self.top_latent_dim, "decoder_expansion": self.decoder_expansion,
            "head_channels": self.head_channels, "subsets_per_step": self.subsets_per_step,
            "memory_size": self.memory_size, "disc_channels": self.disc_channels, "disc_layers": self.disc_layers,
            "soft_clamp": self.soft_clamp, "lr": self.lr, "disc_lr": self.disc_lr,
        }
        for name, value in positive.items():
            if not value > 0:
                raise ValueError(f"{name} must be > 0, got {value}")
        non_negative = {
            "head_blocks": self.head_blocks, "lambda_kl": self.lambda_kl, "lambda_gan": self.lambda_gan,
            "kl_warmup_epochs": self.kl_warmup_epochs, "temperature": self.temperature, "lr_min": self.lr_min,
            "anchor_modality": self.anchor_modality,
        }
        for name, value in non_negative.items():
            if value < 0:
                raise ValueError(f"{name} must be >= 0, got {value}")
        if not 0.0 <= self.beta2 < 1.0:
            raise ValueError(f"beta2 must be in [0, 1), got {self.beta2}")
        for name in ("gan_start_fraction", "disc_start_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (1 = never), got {getattr(self, name)}")
        for name in ("gan_start_epoch", "disc_start_epoch"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 or None, got {getattr(self, name)}")
        # PatchGAN: disc_layers stride-2 convs then two 4x4 stride-1 convs (each -1 pixel).
        if self.image_size // 2**self.disc_layers < 3:
            raise ValueError(
                f"disc_layers={self.disc_layers} is too deep for image_size={self.image_size} "
                f"(needs image_size / 2**disc_layers >= 3)"
            )
        if self.fusion not in ("poe", "average", "concat_zeros"):
            raise ValueError(f"fusion must be 'poe', 'average' or 'concat_zeros', got {self.fusion!r}")
        if self.posterior not in ("mixture", "full"):
            raise ValueError(f"posterior must be 'mixture' or 'full', got {self.posterior!r}")
        if self.subset_sampling not in ("uniform", "paper"):
            raise ValueError(f"subset_sampling must be 'uniform' or 'paper', got {self.subset_sampling!r}")
        if self.head_kernel < 1 or self.head_kernel % 2 == 0:
            raise ValueError(f"head_kernel must be odd and >= 1, got {self.head_kernel}")
        if self.head_input not in ("z1", "z1_state"):
            raise ValueError(f"head_input must be 'z1' or 'z1_state', got {self.head_input!r}")
        if self.head_activation not in ("tanh", "linear"):
            raise ValueError(f"head_activation must be 'tanh' or 'linear', got {self.head_activation!r}")
        if self.recon not in ("l1", "l2"):
            raise ValueError(f"recon must be 'l1' or 'l2', got {self.recon!r}")
        if self.kl not in ("analytic", "sample"):
            raise ValueError(f"kl must be 'analytic' or 'sample', got {self.kl!r}")

    # --- derived ----------------------------------------------------------------------------
    @property
    def max_levels(self) -> int:
        """L_max: one group per spatial resolution plus the coarsest vector group."""
        return len(self.channels) + 1

    @property
    def groups(self) -> tuple[int, ...]:
        """The latent groups in use (1 = finest), see ``latent_groups``."""
        return latent_groups(self.levels, self.max_levels)

    @property
    def bottom_size(self) -> int:
        """Spatial size of the encoder's last feature map (flattened into the vector group)."""
        return self.image_size // 2 ** len(self.channels)

    @classmethod
    def preset(cls, name: str) -> "MMHVAEConfig":
        """``paper``: 192x192, L = 7, the released code's widths (13.8 M parameters).
        ``tiny``: 64x64, L_max = 6, narrow; CPU tests and the demo.
        ``cpu``: 64x64, L = 4, sized to train in about 12 minutes on 2 CPU cores (see ``budget``)."""
        if name == "paper":
            return cls()
        if name == "tiny":
            return cls(
                image_size=64,
                channels=(8, 8, 16, 16, 32),
                top_latent_dim=32,
                levels=6,
                decoder_expansion=3,
                head_channels=4,
                head_blocks=1,
                memory_size=16,
                disc_channels=8,
                disc_layers=3,
            )
        if name == "cpu":
            # Sized for a 2-core CPU box (README "cpu preset"): a wider finest level than tiny
            # (z1 = 8 channels, as the paper), 4 latent groups, cheap image heads that also read
            # the finest top-down state, one subset draw per step, no GAN.
            return cls(
                image_size=64,
                channels=(16, 16, 32, 32, 64),
                top_latent_dim=64,
                levels=4,
                decoder_expansion=2,
                head_channels=8,
                head_blocks=0,
                head_kernel=3,
                head_input="z1_state",
                subsets_per_step=1,
                expert_logvar_offset=-6.0,
                beta2=0.9,
                lambda_gan=0.0,
                memory_size=16,
                disc_channels=8,
                disc_layers=3,
            )
        raise ValueError(f"unknown MMHVAE preset {name!r}; known: {list(cls.PRESET_BUDGETS)}")
