"""Typed config of the disentanglement family (Ouyang et al. 2021), its presets and their training budgets."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Literal, Mapping

from raysys.models.presets import PresetBudgets


@dataclasses.dataclass(frozen=True)
class DisentangleConfig(PresetBudgets):
    """Every knob of the model, its losses and its optimiser. Defaults = the ``paper`` preset.

    Values marked "paper" are stated in the paper (sec. 4.2); "code" came from the released
    code; "ours" is a choice the paper does not make (see docs/readme/40-disentangle.md).
    """

    # Training budget of each preset (``budget(preset)``): ``cpu`` is ~12 min of training +
    # validation with 2 Ray Train CPU workers, 1 thread each (``batch_size`` is per worker;
    # batches hold distinct subjects).
    PRESET_BUDGETS: ClassVar[Mapping[str, Mapping[str, int]]] = {
        "paper": {},
        "tiny": {},
        "cpu": {"epochs": 12, "max_steps_per_epoch": 65, "batch_size": 6, "max_val_steps": 10},
    }

    # --- input -----------------------------------------------------------------------
    image_size: tuple[int, int] = (192, 160)  # [H, W]; paper's BraTS crop
    context: int = 3  # K adjacent slices as channels (paper 3, code 7); odd, centre = K // 2
    data_range: tuple[float, float] = (-5.0, 5.0)  # fixed metric range; the loop sets it from the store
    # --- anatomical encoder E^A (U-Net) ----------------------------------------------
    unet_widths: tuple[int, ...] = (32, 64, 128, 256, 256)  # C32-C64-C128-C256-C256 (paper)
    anatomy_channels: int = 4  # C: channels of s (paper)
    # --- modality encoder E^M -------------------------------------------------------
    modality_widths: tuple[int, ...] = (16, 32, 64, 128, 128)  # 3x3 stride-2 convs (paper)
    z_dim: int = 16  # (paper)
    # --- encoders: one pair per modality, or one CondConv pair for all ------------------
    encoder: Literal["conv", "condconv"] = "condconv"
    n_experts: int = 3  # CondConv experts (code)
    # --- SPADE decoder D(s, z | target) -------------------------------------------------
    decoder_widths: tuple[int, ...] = (128, 128, 64, 32, 16)  # FC(z) -> widths[0] x H/2^n x W/2^n (code: 128)
    spade_hidden: int = 64  # hidden channels of each SPADE modulation net (ours)
    decoder_head: Literal["per_target", "condconv"] = "per_target"  # how D is conditioned on the TARGET
    # x -> E^A's last conv and s -> D's head at full resolution (ours; False = the paper's networks,
    # where everything passes through H/2: a 2x down/up-sampled ground truth scores SSIM 0.70 at 64x64)
    full_resolution_skips: bool = False
    # --- losses ------------------------------------------------------------------------
    regulariser: Literal["na", "adv", "sim"] = "sim"  # Table 1 rows: +NA, +Adv, +Sim
    lambda_c: float = 2.0  # cross-reconstruction (paper)
    lambda_l: float = 0.1  # latent consistency, eq. (1) (paper)
    lambda_s: float = 10.0  # similarity on f(s), eq. (2) (paper)
    lambda_z: float = 2.0  # similarity on z, eq. (2) (paper)
    alpha_s: float = 0.1  # margin on f(s) (paper)
    alpha_z: float = 0.1  # margin on z (paper)
    sim_pool: int = 16  # f = MaxPool(sim_pool x sim_pool) + flatten (code: 16)
    sim_warmup_steps: int = 0  # lambda_s, lambda_z ramped linearly from 0 over these steps (ours; 0 = paper)
    recon_background_weight: float = 1.0  # L1 weight of pixels outside the brain mask (ours; 1 = paper's plain L1)
    lambda_adv: float = 0.1  # +Adv: weight of the encoder's fool-the-discriminator term (ours)
    discriminator_widths: tuple[int, ...] = (32, 64, 128, 128)  # +Adv discriminator on s (ours)
    # --- optimisation --------------------------------------------------------------------
    lr: float = 2e-4  # (paper)
    weight_decay: float = 1e-5  # (paper)
    betas: tuple[float, float] = (0.9, 0.999)  # Adam defaults (code)
    amsgrad: bool = True  # (code)
    discriminator_lr: float = 2e-4  # +Adv discriminator (ours)
    plateau_factor: float = 0.1  # ReduceLROnPlateau on val psnr_cross (code: 0.1 on val cross L1)
    plateau_patience: int = 5  # (code)

    def __post_init__(self) -> None:
        def need(ok: bool, field: str, why: str) -> None:
            if not ok:
                raise ValueError(f"DisentangleConfig.{field}={getattr(self, field)!r}: {why}")

        need(len(self.image_size) == 2 and all(int(v) > 0 for v in self.image_size), "image_size",
             "must be (H, W), positive")
        need(self.context >= 1 and self.context % 2 == 1, "context",
             "must be a positive odd number (the centre slice is the target)")
        need(len(self.data_range) == 2 and self.data_range[0] < self.data_range[1], "data_range",
             "must be (low, high) with low < high")
        for field in ("unet_widths", "modality_widths", "decoder_widths"):
            widths = getattr(self, field)
            need(len(widths) >= 1 and all(int(w) > 0 for w in widths), field,
                 "must be a non-empty tuple of positive ints")
        need(self.anatomy_channels >= 2, "anatomy_channels", "must be >= 2 (softmax over channels)")
        need(self.z_dim >= 1, "z_dim", "must be >= 1")
        need(self.encoder in ("conv", "condconv"), "encoder", "must be 'conv' or 'condconv'")
        need(self.decoder_head in ("per_target", "condconv"), "decoder_head", "must be 'per_target' or 'condconv'")
        need(self.regulariser in ("na", "adv", "sim"), "regulariser", "must be 'na', 'adv' or 'sim'")
        need(self.n_experts >= 1, "n_experts", "must be >= 1")
        need(self.spade_hidden >= 1, "spade_hidden", "must be >= 1")
        need(len(self.discriminator_widths) >= 1, "discriminator_widths", "must be non-empty")
        for field in ("lambda_c", "lambda_l", "lambda_s", "lambda_z", "lambda_adv", "alpha_s", "alpha_z",
                      "weight_decay", "recon_background_weight"):
            need(getattr(self, field) >= 0, field, "must be >= 0")
        for field in ("lr", "discriminator_lr"):
            need(getattr(self, field) > 0, field, "must be > 0")
        need(0 < self.plateau_factor < 1, "plateau_factor", "must be in (0, 1)")
        need(self.sim_warmup_steps >= 0, "sim_warmup_steps", "must be >= 0")
        need(self.plateau_patience >= 0, "plateau_patience", "must be >= 0")
        # Spatial sizes: every stride-2 path must land on whole pixels, f must pool whole windows.
        for field in ("unet_widths", "modality_widths", "decoder_widths"):
            depth = len(getattr(self, field))
            stride = 2**depth
            if any(int(v) % stride for v in self.image_size):
                raise ValueError(
                    f"DisentangleConfig.image_size={tuple(self.image_size)!r} must be divisible by {stride} "
                    f"(total stride of {field} with {depth} levels)"
                )
        if self.sim_pool < 1 or any(int(v) % self.sim_pool for v in self.image_size):
            raise ValueError(
                f"DisentangleConfig.sim_pool={self.sim_pool!r}: image_size {tuple(self.image_size)!r} "
                "must be divisible by it"
            )

    @classmethod
    def preset(cls, name: str) -> "DisentangleConfig":
        """``"paper"``: 192x160, the paper's widths. ``"tiny"``: 64x64, narrow (CPU tests, demo).

        ``"cpu"``: ``tiny``'s widths with the settings that learn within minutes on a 2-core CPU
        (measured on the 64x64 phantom, docs/readme/40-disentangle.md): one slice of context,
        full-resolution skips, lr 2e-3 without amsgrad, the similarity terms ramped in over the
        first 500 steps, background pixels weighted 0.1 in the reconstruction L1, one Conv encoder
        pair per modality (CondConv is the weakest Table 1 row at this budget), 8 anatomy channels
        (4 cannot hold FLAIR's contrasts: its self-reconstruction stalls). Train it with
        ``budget("cpu")``.
        """
        if name == "paper":
            return cls()
        tiny = dict(
            image_size=(64, 64),
            unet_widths=(8, 16, 32, 32),
            modality_widths=(8, 16, 32, 32),
            decoder_widths=(32, 32, 16, 16),
            spade_hidden=16,
            discriminator_widths=(8, 16, 32),
        )
        if name == "tiny":
            return cls(**tiny)
        if name == "cpu":
            # encoder "conv": at this budget CondConv+Sim is the weakest Table 1 row on every target
            # (docs/reports/ouyang-table1: self-reconstruction SSIM T2 0.34 vs 0.89 with Conv+Sim)
            # anatomy_channels 8: with the paper's 4, FLAIR self-reconstruction stalls at SSIM 0.71 and falls
            # with more steps (0.63 at 16 epochs); 8 gives 0.86 (docs/readme/40-disentangle.md)
            return cls(**tiny, context=1, full_resolution_skips=True, lr=2e-3, amsgrad=False, sim_warmup_steps=500,
                       recon_background_weight=0.1, encoder="conv", anatomy_channels=8)
        raise ValueError(f"unknown DisentangleConfig preset {name!r}; known: {list(cls.PRESET_BUDGETS)}")
