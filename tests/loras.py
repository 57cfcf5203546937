"""LoRAs with random non-zero weights on a model folder, saved by peft, as a trained one
would be: for the adapter tests that need several distinct adapters and no training."""

from __future__ import annotations

from pathlib import Path


def random_lora(base_dir: Path, out: Path, seed: int, *, alpha: int = 8) -> Path:
    """A rank-4 LoRA on ``q_proj``/``v_proj`` of ``base_dir`` with weights drawn from ``seed``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    cfg = LoraConfig(
        r=4, lora_alpha=alpha, target_modules=["q_proj", "v_proj"], init_lora_weights=False
    )
    get_peft_model(model, cfg).save_pretrained(out)
    return out
