"""FSPO meta-training on a tiny random Llama: rows in FSPO's layout, seeded, never leaking the
target into its shots; a real SFT then IPO run that moves the LoRA; clear errors."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from persona.adapters.fspo import FSPOTrainConfig, build_rows, heldout_rows, train_fspo
from persona.errors import InvalidInputError, PersonaError
from persona.learn.fspo import few_shot_prompt


@dataclass(frozen=True)
class Pair:
    prompt: str
    chosen: str
    rejected: str


@dataclass(frozen=True)
class User:
    id: str
    split: str
    shots: tuple[Pair, ...]
    test: tuple[Pair, ...] = ()


def _user(uid: str, split: str, n: int, test: int = 0) -> User:
    def pair(i: int) -> Pair:
        return Pair(
            f"{uid}: question {i}?",
            f"- short answer {i}",
            f"A long paragraph that answers question {i} for {uid}.",
        )

    return User(
        uid, split, tuple(pair(i) for i in range(n)), tuple(pair(100 + i) for i in range(test))
    )


def users() -> list[User]:
    return [_user("ann", "train", 6), _user("bob", "train", 6), _user("cy", "heldout", 3, 2)]


def test_rows_use_fspo_layout_and_never_put_the_target_among_its_shots() -> None:
    cfg = FSPOTrainConfig(shots=3, contexts=5)
    rows = build_rows(users(), cfg)
    assert [r.user for r in rows] == ["ann"] * 5 + ["bob"] * 5  # train users only
    by_user = {u.id: u for u in users()}
    for row in rows:
        assert len(row.shots) == 3 and row.target not in row.shots
        assert set(row.shots) <= set(by_user[row.user].shots)  # the same user's pairs
        assert row.prompt == few_shot_prompt(row.shots, row.target.prompt, limit=cfg.limit)
        for heading in ("# Example 1\n## Question", "## Preferred Response", "# Task"):
            assert heading in row.prompt
        assert row.prompt.rstrip().endswith(row.target.prompt)
        dpo = row.dpo_row()
        assert dpo["prompt"] == [{"role": "user", "content": row.prompt}]
        assert dpo["chosen"][0]["content"] == row.target.chosen
        assert [r["completion"][0]["content"] for r in row.sft_rows()] == [
            row.target.chosen,
            row.target.rejected,
        ]
    # targets go round the user's pairs: 5 contexts on 6 pairs, 5 different targets
    assert len({r.target for r in rows if r.user == "ann"}) == 5
    (held,) = heldout_rows(users(), FSPOTrainConfig(shots=3, eval_pairs=1))
    assert held.shots == users()[2].shots and held.target == users()[2].test[0]


def test_seeded_rows_are_reproducible() -> None:
    cfg = FSPOTrainConfig(shots=2, contexts=4)
    assert build_rows(users(), cfg, seed=7) == build_rows(users(), cfg, seed=7)
    assert build_rows(users(), cfg, seed=7) != build_rows(users(), cfg, seed=8)
    # a user's rows do not depend on who else is in the set
    alone = build_rows([users()[1]], cfg, seed=7)
    assert alone == [r for r in build_rows(users(), cfg, seed=7) if r.user == "bob"]


def test_bad_input_names_the_value_and_the_fix() -> None:
    with pytest.raises(
        InvalidInputError, match=r"no meta-train user among 1 users.*users > heldout"
    ):
        build_rows([users()[2]], FSPOTrainConfig())
    with pytest.raises(PersonaError, match=r"'ann' has 6 labeled pairs.*shots=6.*lower shots to 5"):
        build_rows(users(), FSPOTrainConfig(shots=6))
    with pytest.raises(InvalidInputError, match=r"held-out user 'cy' has 3 shots.*lower shots"):
        heldout_rows(users(), FSPOTrainConfig(shots=4))
    with pytest.raises(InvalidInputError, match=r"shots=0"):
        build_rows(users(), FSPOTrainConfig(shots=0))


def test_sft_then_ipo_moves_the_lora_and_records_finite_losses(
    tiny_dir: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    snapshots: list[dict[str, Any]] = []

    def tick(n: int) -> None:  # after every optimizer step: the LoRA as it stands
        snapshots.append(
            {k: v.detach().clone() for k, v in model.named_parameters() if "lora_B.default" in k}
        )

    cfg = FSPOTrainConfig(
        shots=2,
        contexts=2,
        sft_steps=2,
        ipo_steps=2,
        batch_size=2,
        rank=4,
        alpha=8,
        sft_learning_rate=1e-2,
        ipo_learning_rate=1e-2,
        max_length=512,
        eval_pairs=2,
    )
    out = tmp_path / "fspo"
    record = train_fspo(users(), out, cfg, model=model, tokenizer=tok, tick=tick)
    assert record["steps"] == {"sft": 2, "ipo": 2}
    assert record["rows"]["contexts"] == 4 and record["rows"]["sft"] == 8
    assert len(snapshots) == 6  # 2 SFT steps, eval (1 tick), 2 IPO steps, eval
    after_sft, after_ipo = snapshots[1], snapshots[4]
    assert after_sft and all(float(v.abs().sum()) > 0 for v in after_sft.values())  # B was 0
    assert any(not torch.equal(after_sft[k], after_ipo[k]) for k in after_sft)
    # IPO's reference is the SFT model: trl's frozen "ref" copy holds the SFT weights
    ref = {k: v for k, v in model.named_parameters() if "lora_B.ref" in k}
    assert ref and all(
        torch.equal(v, after_sft[k.replace(".ref.", ".default.")]) for k, v in ref.items()
    )

    saved = json.loads((out / "fspo.json").read_text())
    assert saved["losses"]["sft"] and len(saved["losses"]["ipo"]) == 2
    for phase in ("sft", "ipo"):
        assert all(math.isfinite(step["loss"]) for step in saved["losses"][phase])
    acc = saved["heldout_implicit_accuracy"]
    assert saved["heldout_pairs"] == 2 and 0 <= acc["after_ipo"] <= 1
    assert len(saved["data_sha256"]) == 64 and saved["config"]["beta"] == 0.01
    assert (out / "adapter_config.json").is_file() and not (out / "ref").exists()
    assert not (out / "checkpoints").exists()
    from safetensors.torch import load_file

    weights = load_file(str(out / "adapter_model.safetensors"))
    assert weights and all(".ref." not in k for k in weights)


def test_a_context_that_does_not_fit_is_a_clear_error(tiny_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_dir)
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    with pytest.raises(InvalidInputError, match=r"max_length=16 tokens.*raise max_length"):
        train_fspo(
            users(),
            tmp_path / "x",
            FSPOTrainConfig(shots=2, max_length=16),
            model=model,
            tokenizer=tok,
        )


class Killed(Exception):
    """Stands in for a SIGKILL between two optimizer steps."""


def test_a_killed_run_continues_where_it_stopped(tiny_dir: Path, tmp_path: Path) -> None:
    """Ticks: SFT step 1, SFT step 2, held-out eval, IPO step 1, IPO step 2, eval. Killed in
    the 2nd IPO step, before its checkpoint: the rerun skips SFT (its adapter was saved) and
    resumes IPO from the step-1 checkpoint, so one step is redone."""
    kill_after, redone = 5, 1
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cfg = FSPOTrainConfig(
        shots=2, contexts=2, sft_steps=2, ipo_steps=2, batch_size=2, rank=4, alpha=8,
        max_length=512, eval_pairs=2, save_steps=1,
    )  # fmt: skip
    out = tmp_path / "fspo"
    ticks: list[int] = []

    def dies(n: int) -> None:
        ticks.append(n)
        if len(ticks) == kill_after:
            raise Killed

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    with pytest.raises(Killed):
        train_fspo(users(), out, cfg, model=AutoModelForCausalLM.from_pretrained(tiny_dir),
                   tokenizer=tok, tick=dies)  # fmt: skip
    assert (out / "checkpoints").is_dir() and not (out / "fspo.json").exists()
    again: list[int] = []
    record = train_fspo(users(), out, cfg, model=AutoModelForCausalLM.from_pretrained(tiny_dir),
                        tokenizer=tok, tick=again.append)  # fmt: skip
    assert record["steps"] == {"sft": 2, "ipo": 2}
    assert len(again) - 2 == redone  # minus the two held-out evaluations
    assert not (out / "checkpoints").exists() and not (out / "sft").exists()
    assert not (out / "resume.json").exists()
    # another recipe never resumes from these leftovers
    train_fspo(users(), out, cfg, model=AutoModelForCausalLM.from_pretrained(tiny_dir),
               tokenizer=tok)  # fmt: skip
