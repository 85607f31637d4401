"""The offload plan with a draft model (Modelfile DRAFT): placed first and whole, counted in the memory."""

from __future__ import annotations

from engine.machine.memory import FIXED_OVERHEAD
from engine.machine.offload import DraftWeights, default_num_parallel, plan_offload
from tests.test_offload import CPU, GEMMA_270M, GEMMA_270M_Q4_K_M, QWEN_7B, QWEN_7B_Q4_K_M, card

DRAFT = DraftWeights(GEMMA_270M_Q4_K_M, GEMMA_270M)  # the shapes matter here, not the vocabulary
CTX = 8192


def plan(machine, *, draft=DRAFT, **kw):  # type: ignore[no-untyped-def]
    return plan_offload(QWEN_7B_Q4_K_M, QWEN_7B, machine, n_ctx=CTX, draft=draft, **kw)


def alone(machine):  # type: ignore[no-untyped-def]
    """The draft model planned as a model of its own: what it adds to its target's plan."""
    return plan_offload(GEMMA_270M_Q4_K_M, GEMMA_270M, machine, n_ctx=CTX)


def test_on_a_cpu_the_draft_adds_its_ram() -> None:
    with_draft, without = plan(CPU), plan(CPU, draft=None)
    assert with_draft.ram == without.ram + alone(CPU).ram - FIXED_OVERHEAD  # one runtime, not two
    assert with_draft.vram == 0 and with_draft.draft_gpu_layers == 0
    assert with_draft.reason.endswith(")") and "draft model on the CPU (CPU only" in with_draft.reason


def test_on_a_large_card_the_draft_goes_whole_on_the_gpu_beside_its_model() -> None:
    machine = card(78)
    with_draft, without, draft = plan(machine), plan(machine, draft=None), alone(machine)
    assert with_draft.full and draft.full
    assert with_draft.draft_gpu_layers == GEMMA_270M.n_layers + 1
    assert with_draft.vram == without.vram + draft.vram
    assert with_draft.ram == without.ram + draft.ram - FIXED_OVERHEAD  # its token embeddings stay in RAM
    assert "draft model on the GPU" in with_draft.reason


def test_the_draft_takes_its_vram_first_so_the_model_keeps_fewer_layers() -> None:
    whole = plan(card(78), draft=None).vram
    machine = card((whole + alone(card(78)).vram // 2 + 600 * 2**20) / 2**30)  # fits the model, not both
    assert plan(machine, draft=None).full
    squeezed = plan(machine)
    assert squeezed.draft_gpu_layers == GEMMA_270M.n_layers + 1 and not squeezed.full
    assert squeezed.vram <= machine.gpu_free_vram  # type: ignore[operator]


def test_a_card_too_small_for_the_draft_leaves_it_on_the_cpu() -> None:
    tiny = card(0.5)
    placed = plan(tiny)
    assert placed.draft_gpu_layers == 0 and "draft model on the CPU (it does not fit in VRAM" in placed.reason
    assert placed.ram == plan(tiny, draft=None).ram + alone(CPU).ram - FIXED_OVERHEAD


def test_slots_are_chosen_with_the_draft_counted() -> None:
    machine = card(7.5)  # 4 slots of 8k fit the 7B whole, not with the draft beside it
    assert default_num_parallel(QWEN_7B_Q4_K_M, QWEN_7B, machine, n_ctx=CTX) == 4
    assert default_num_parallel(QWEN_7B_Q4_K_M, QWEN_7B, machine, n_ctx=CTX, draft=DRAFT) == 1
